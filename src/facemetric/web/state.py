"""What the running app holds: settings, admin token, gallery store, recognizer, worker threads.

Built in the app's lifespan (never at import). A missing or broken model does not stop the server:
the gallery stays browsable and health/model endpoints say what is wrong.

Two thread pools: ``workers`` threads decode and recognise (slow, CPU-bound), and a small pool
answers quick gallery reads (health, people, face images), so those never wait behind
recognition. At most ``decode_concurrency`` images are decoded at once over all requests.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from facemetric.data.image import DecodedImage
from facemetric.errors import ModelError
from facemetric.gallery.backend import StoreUnavailableError
from facemetric.paths import default_gallery_path, gallery_location
from facemetric.web.settings import WebSettings
from facemetric.web.uploads import decode_checked

if TYPE_CHECKING:
    from facemetric.data.detection import FaceDetector
    from facemetric.gallery.store import GalleryStore
    from facemetric.recognize.recognizer import Recognizer

T = TypeVar("T")


class ServiceUnavailable(Exception):
    """The request needs a model (or gallery) that the server does not have."""


@dataclass
class WebState:
    settings: WebSettings
    admin_token: str
    token_generated: bool
    db_path: Path | str
    store: GalleryStore
    detector: FaceDetector
    recognizer: Recognizer | None
    model_error: str | None  # as shown to clients: without folders
    executor: ThreadPoolExecutor
    quick: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="facemetric-quick")
    )
    model_error_detail: str | None = None  # with full paths, for the operator's console
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    decoding: asyncio.Semaphore | None = None
    _detect_lock: threading.Lock = field(default_factory=threading.Lock)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (decoding, inference, writes) on the worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run_quick(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a quick SQLite read on its own threads: never queued behind recognition."""
        return await asyncio.get_running_loop().run_in_executor(self.quick, fn, *args)

    async def decode(self, data: bytes, name: str, limit: int) -> DecodedImage:
        """Check and decode untrusted image bytes within the pixel budget, a bounded number at
        a time over the whole server (each decode may briefly hold max_decode_pixels)."""
        if self.decoding is None:
            self.decoding = asyncio.Semaphore(self.settings.decode_concurrency)
        s = self.settings
        async with self.decoding:
            return await self.run(
                decode_checked, data, name, limit, s.decode_pixels, s.max_decode_pixels
            )

    def detect(self, image: Any) -> list[Any]:
        """Every face of an image, aligned for the model (largest first); thread-safe."""
        if self.recognizer is not None:
            return self.recognizer.detect(image)
        from facemetric.data.align import detect_and_align
        from facemetric.gallery.records import CHIP_SIZE, CHIP_TEMPLATE

        with self._detect_lock:  # no model: show the chips the gallery would keep
            return detect_and_align(image, self.detector, CHIP_SIZE, template=CHIP_TEMPLATE)

    def require_recognizer(self) -> Recognizer:
        if self.recognizer is None:
            raise ServiceUnavailable(f"no model loaded: {self.model_error}")
        return self.recognizer

    @property
    def threshold(self) -> float:
        if self.settings.threshold is not None:
            return self.settings.threshold
        if self.recognizer is not None:
            # the open-set decision's, calibrated for this gallery's size (as last computed)
            return float(self.recognizer.last_threshold)
        return 0.5

    def start_following(self) -> None:
        """Load the gallery now and keep it up to date with changes made anywhere (other
        servers, the CLI) from a thread of its own; a database that is away is said in
        ``/api/health`` and retried, not fatal."""
        if self.recognizer is None:
            return
        try:
            self.recognizer.gallery.current()
            self.recognizer.calibration_now()  # the decision's threshold for this gallery
        except StoreUnavailableError as exc:
            print(f"facemetric serve: {exc}; retrying", file=sys.stderr, flush=True)
        self.recognizer.gallery.follow()

    def close(self) -> None:
        if self.recognizer is not None:
            self.recognizer.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.quick.shutdown(wait=False, cancel_futures=True)
        closer = getattr(self.store, "close", None)
        if callable(closer):
            closer()


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(?:~|[A-Za-z]:)?[/\\](?:[^/\\\s'\"]+[/\\])+")


def public_message(text: str) -> str:
    """``text`` without the folders of any absolute path in it (file names are kept), for
    messages shown to anyone who can reach the server."""
    return _ABSOLUTE_PATH.sub("", text)


def resolve_admin_token(settings: WebSettings) -> tuple[str, bool]:
    """The configured admin token, or a fresh random one (``generated`` = True)."""
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        return settings.admin_token.get_secret_value(), False
    return secrets.token_urlsafe(24), True


def load_state(settings: WebSettings, admin_token: str, token_generated: bool) -> WebState:
    """Open the gallery and try to load the model; a model failure is recorded, not raised."""
    from facemetric.data.detect import create_detector
    from facemetric.gallery.store import GalleryStore
    from facemetric.models import load_embedder
    from facemetric.recognize.recognizer import Recognizer

    db_path = gallery_location(settings.db) if settings.db else default_gallery_path()
    store = GalleryStore(db_path)
    detector = create_detector(settings.detector)  # a bad name is a config error: fail
    recognizer: Recognizer | None = None
    model_error: str | None = None
    model_error_detail: str | None = None
    try:
        embedder = load_embedder(settings.model, engine=settings.engine)
    except ModelError as exc:
        model_error_detail = str(exc)
        model_error = public_message(model_error_detail)
    else:
        from facemetric.recognize.decision import DecisionSettings

        decision = DecisionSettings(fpir=settings.fpir, margin=settings.margin)
        recognizer = Recognizer(
            embedder,
            store,
            detector,
            threshold=settings.threshold,
            top_k=settings.top_k,
            decision=decision,
        )
    return WebState(
        settings=settings,
        admin_token=admin_token,
        token_generated=token_generated,
        db_path=db_path,
        store=store,
        detector=detector,
        recognizer=recognizer,
        model_error=model_error,
        model_error_detail=model_error_detail,
        executor=ThreadPoolExecutor(settings.workers, thread_name_prefix="facemetric-web"),
    )
