"""Helpers for the web tests: face photos, frames, a real ``facemetric serve`` subprocess."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONSOLE = Path(sys.executable).with_name("facemetric")
if TYPE_CHECKING:
    from facemetric.web.settings import WebSettings

TOKEN = "test-admin-token"


def web_settings(tmp_path: Path, model: Path | None, **kw: object) -> WebSettings:
    """Settings for an app under TestClient: ``model`` (or a missing file inside a folder, whose
    path the app must never show), a gallery in ``tmp_path``, the admin token, and TestClient's
    Host header allowed."""
    from facemetric.web.settings import WebSettings

    return WebSettings(
        model=str(model) if model else str(tmp_path / "models" / "missing.pt"),
        db=str(tmp_path / "gallery.db"),
        admin_token=TOKEN,  # type: ignore[arg-type]
        **{"allowed_hosts": ["testserver"], **kw},  # type: ignore[arg-type]
    )


def astronaut() -> np.ndarray:
    """A real photo with one face that ships with scikit-image (runs anywhere)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def encode(rgb: np.ndarray, fmt: str = "JPEG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def frame_640x480(rgb: np.ndarray) -> np.ndarray:
    """Fit a photo into a 640x480 webcam-sized frame (grey borders)."""
    img = Image.fromarray(rgb)
    img.thumbnail((640, 480))
    canvas = Image.new("RGB", (640, 480), (90, 90, 90))
    canvas.paste(img, ((640 - img.width) // 2, (480 - img.height) // 2))
    return np.asarray(canvas)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/stream"


@contextmanager
def running_server(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90.0
) -> Iterator[Server]:
    """Run the real console script ``facemetric serve`` on 127.0.0.1 and a free port (with
    ``--create``: a test's gallery may start empty)."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(CONSOLE), "serve", "--create", "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after {timeout} s: {log.read_text()}")
            time.sleep(0.3)
        yield Server(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def raw_exchange(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data`` in one write on a fresh connection and read until the server closes it
    (``b"<still open>"`` appended when it is still open after ``wait`` seconds)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(b"<still open>")
    return b"".join(chunks)
