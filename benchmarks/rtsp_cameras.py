"""What the camera benchmarks share (``cameras.py``, ``motion_gate.py``): real RTSP cameras
(scripts/rtsp_server.py, GStreamer on the system Python) serving a clip, waiting for a camera
worker to go live, and one celeba-wild person enrolled with the pretrained dlib model.

Needs ../shared/data/celeba-wild (face photos, research terms: nothing is kept).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from videoclip import build_gallery, pick_people  # noqa: E402

if TYPE_CHECKING:
    from facemetric.recognize.recognizer import Recognizer
    from facemetric.video.pipeline import CameraWorker

SHARED = Path(os.environ.get("FACEMETRIC_SHARED_DATA", REPO.parent / "shared" / "data"))
WILD = SHARED / "celeba-wild"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Rtsp:
    """scripts/rtsp_server.py on a free port; ``started``: when it sent its first frame."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.process: subprocess.Popen[str] | None = None
        self.started: float | None = None

    def start(self) -> None:
        self.started = None
        self.process = subprocess.Popen(
            ["/usr/bin/python3", str(REPO / "scripts" / "rtsp_server.py"), "--print-start",
             "--port", str(self.port), "--path", "/cam", "--video", str(self.clip)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"RTSP server did not start: {line!r}")
        threading.Thread(target=self._watch, args=(self.process,), daemon=True).start()

    def _watch(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("start ") and self.started is None:
                self.started = float(line.split()[1])

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def wait_live(worker: CameraWorker, timeout: float = 30.0) -> float:
    """Wait until ``worker``'s reader is live; the wall-clock time it was seen live."""
    start = time.monotonic()
    while worker.reader.state != "live":
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"camera not live: {worker.reader.status()}")
        time.sleep(0.02)
    return time.time()


def photos_missing() -> bool:
    """True (and says so on stderr) when the face photos are not there."""
    if WILD.is_dir():
        return False
    print(f"benchmark needs face photos at {WILD}", file=sys.stderr)
    return True


def one_person(folder: Path) -> tuple[str, Path, Recognizer]:
    """One celeba-wild person enrolled into ``folder``/gallery.db with the pretrained dlib model
    (the first in name order with enough photos): their name, a photo not enrolled (for the
    clip) and the recognizer with its gallery loaded. Prints the machine and its load first."""
    from facemetric.recognize.recognizer import Recognizer

    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start (shared)")
    people = pick_people(WILD, 1)
    (name,) = people
    db = folder / "gallery.db"
    build_gallery(db, people)
    recognizer = Recognizer.from_paths("dlib", db, create=False)
    recognizer.gallery.current()
    return name, people[name][1], recognizer
