"""One browser set-up for the browser tests: Debian's chromium through Playwright, started once per
session with a fake webcam of scikit-image's astronaut (``chromium``); a browser of its own for
a test whose webcam shows something else (``launch_chromium``, the flag is per browser); a fresh
context per page (``open_page``: cookies and sessionStorage never cross tests); an app served
in a thread (``serving``). The fixtures are registered in conftest.py.

Playwright's sync API marks its event loop as running on the main thread between calls; with one
Playwright for the session that mark is set for a browser test only (as ``with sync_playwright()``
did), so the rest of the suite can still run ``asyncio.run`` and Playwrights of its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from webutil import astronaut, frame_640x480

CHROMIUM = Path("/usr/bin/chromium")
# Where the browser tests keep their screenshots for a person to look at, when asked to
# (FACEMETRIC_TEST_ARTIFACTS=FOLDER); by default they stay in the test's temporary folder: they
# show the research photos, which are not to be written into the checkout.
ARTIFACTS_ENV = "FACEMETRIC_TEST_ARTIFACTS"
SECONDS_EACH = 6  # make_y4m: seconds of each photo
BROWSER_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

BROWSER_TESTS = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed"),
]
NEEDS_FFMPEG = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


# ---- webcam videos (chromium loops the file) ----------------------------------------------------
def still_y4m(png: Path, out: Path, seconds: int = 4) -> Path:
    """``png`` for ``seconds`` at 5 frames/s, as a .y4m chromium can play as its webcam."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "5", "-t", str(seconds), "-i",
         str(png), "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def make_y4m(known: Path, stranger: Path, out: Path) -> None:
    """known for SECONDS_EACH s, then stranger; chromium loops the file."""
    cmd = ["ffmpeg", "-v", "error", "-y"]
    for img in (known, stranger):
        cmd += ["-loop", "1", "-framerate", "5", "-t", str(SECONDS_EACH), "-i", str(img)]
    cmd += [
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
        "-pix_fmt", "yuv420p", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def one_face_photo(folder: Path, detector) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The first photo of ``folder`` (sorted) with exactly one clear, large face."""
    from facemetric.data.image import load_image

    for path in sorted(folder.iterdir()):
        frame = frame_640x480(load_image(path))
        faces = detector.detect(frame)
        if len(faces) == 1 and faces[0].area > 60 * 60:
            return frame
    pytest.skip(f"no single-face photo in {folder}")


def keep_screenshots(*shots: Path) -> None:
    """Copy ``shots`` to ``$FACEMETRIC_TEST_ARTIFACTS`` when it is set."""
    folder = os.environ.get(ARTIFACTS_ENV)
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy(shot, Path(folder) / shot.name)


def preview_enrolment(page: Any, url: str, token: str, name: str, files: list[str]) -> None:
    """On the gallery page of an empty gallery: sign in with ``token``, name the person, pick
    ``files`` and ask for the preview (nothing saved yet)."""
    page.goto(url + "/gallery")
    page.locator("#people-empty").wait_for(state="visible", timeout=30_000)
    page.fill("#token", token)
    page.fill("#enrol-name", name)
    page.set_input_files("#enrol-files", files)
    page.click("#preview")


# ---- one Playwright and one chromium for the session --------------------------------------------
@contextmanager
def _loop_marked(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    asyncio._set_running_loop(loop)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        asyncio._set_running_loop(None)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def _session_playwright() -> Iterator[tuple[Any, asyncio.AbstractEventLoop]]:
    from playwright.sync_api import sync_playwright

    manager = sync_playwright()
    pw = manager.start()
    loop = asyncio.get_running_loop()  # Playwright's, marked running by start()
    asyncio._set_running_loop(None)  # type: ignore[attr-defined]
    try:
        yield pw, loop
    finally:
        with _loop_marked(loop):
            pw.stop()


@pytest.fixture
def playwright(_session_playwright: tuple[Any, asyncio.AbstractEventLoop]) -> Iterator[Any]:
    """The session's Playwright, usable for this test."""
    pw, loop = _session_playwright
    with _loop_marked(loop):
        yield pw


@pytest.fixture(scope="session")
def _session_chromium(
    _session_playwright: tuple[Any, asyncio.AbstractEventLoop],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    pw, loop = _session_playwright
    args = list(BROWSER_ARGS)
    if shutil.which("ffmpeg"):  # the tests that need the webcam skip without ffmpeg
        folder = tmp_path_factory.mktemp("webcam")
        png = folder / "astronaut.png"
        Image.fromarray(frame_640x480(astronaut())).save(png)
        video = still_y4m(png, folder / "webcam.y4m")
        args.append(f"--use-file-for-fake-video-capture={video}")
    with _loop_marked(loop):
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
    try:
        yield browser
    finally:
        with _loop_marked(loop):
            browser.close()


@pytest.fixture
def chromium(playwright: Any, _session_chromium: Any) -> Iterator[Any]:
    """The session's chromium (its webcam: the astronaut, 640x480, still); the pages a test
    leaves open are closed after it."""
    yield _session_chromium
    for context in _session_chromium.contexts:
        context.close()


@pytest.fixture
def launch_chromium(playwright: Any) -> Iterator[Callable[[Path], Any]]:
    """``launch_chromium(video)``: a chromium of this test's own whose webcam plays ``video``
    (a .y4m), closed after the test."""
    launched: list[Any] = []

    def launch(video: Path) -> Any:
        args = [*BROWSER_ARGS, f"--use-file-for-fake-video-capture={video}"]
        launched.append(playwright.chromium.launch(executable_path=str(CHROMIUM), args=args))
        return launched[-1]

    yield launch
    for browser in launched:
        browser.close()


@contextmanager
def open_page(browser: Any, **options: Any) -> Iterator[Any]:
    """A page in a new context of ``browser`` (``options``: the context's, e.g. viewport), closed
    on the way out: before the server it talks to stops, as closing the browser was."""
    context = browser.new_context(**options)
    try:
        yield context.new_page()
    finally:
        context.close()


# ---- an app served in this process --------------------------------------------------------------
@contextmanager
def serving(app: Any, port: int) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a thread; its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
