"""What the running app holds: settings, admin token, gallery store, recognizer, worker threads.

Built in the app's lifespan (never at import). A missing or broken model does not stop the server:
the gallery stays browsable and health/model endpoints say what is wrong.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from facemetric.errors import ModelError
from facemetric.paths import default_gallery_path
from facemetric.web.settings import WebSettings

if TYPE_CHECKING:
    from facemetric.data.detect import FaceDetector
    from facemetric.gallery.store import GalleryStore
    from facemetric.recognize import Recognizer

T = TypeVar("T")


class ServiceUnavailable(Exception):
    """The request needs a model (or gallery) that the server does not have."""


@dataclass
class WebState:
    settings: WebSettings
    admin_token: str
    token_generated: bool
    db_path: Path
    store: GalleryStore
    detector: FaceDetector
    recognizer: Recognizer | None
    model_error: str | None
    executor: ThreadPoolExecutor
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (inference, SQLite) on the worker threads, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def require_recognizer(self) -> Recognizer:
        if self.recognizer is None:
            raise ServiceUnavailable(f"no model loaded: {self.model_error}")
        return self.recognizer

    @property
    def threshold(self) -> float:
        if self.settings.threshold is not None:
            return self.settings.threshold
        if self.recognizer is not None:
            return float(self.recognizer.threshold)
        return 0.5

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        closer = getattr(self.store, "close", None)
        if callable(closer):
            closer()


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
    from facemetric.recognize import Recognizer

    db_path = Path(settings.db).expanduser() if settings.db else default_gallery_path()
    store = GalleryStore(db_path)
    detector = create_detector(settings.detector)  # a bad name is a config error: fail
    recognizer: Recognizer | None = None
    model_error: str | None = None
    try:
        embedder = load_embedder(settings.model, engine=settings.engine)
    except ModelError as exc:
        model_error = str(exc)
    else:
        recognizer = Recognizer(
            embedder, store, detector, threshold=settings.threshold, top_k=settings.top_k
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
        executor=ThreadPoolExecutor(settings.workers, thread_name_prefix="facemetric-web"),
    )
