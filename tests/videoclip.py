"""Video clips made from real face photos, for the camera and ``watch`` tests and benchmarks.

A clip is a timeline of segments, each one person's photo (drifting a little, as a face in a
doorway does) or an empty scene, encoded with FFmpeg's H.264 (through PyAV) at 640x480. The
truth (who is on screen from when to when) is known exactly, so events can be checked person by
person. Photos come from ../shared/data (research terms: never copied into the repository).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 640, 480


@dataclass(frozen=True)
class Segment:
    person: str | None  # None: nobody on screen
    start: float
    end: float
    photo: Path | None = None


def place(
    photo: Path, t: float, size: tuple[int, int] = (W, H), face_side: int = 300
) -> np.ndarray:
    """``photo`` fitted into a frame (grey background), drifting sideways with time ``t``."""
    img = Image.open(photo).convert("RGB")
    img.thumbnail((face_side, face_side))
    canvas = Image.new("RGB", size, (96, 96, 96))
    dx = int(20 * np.sin(t * 1.3))
    x = (size[0] - img.width) // 2 + dx
    y = (size[1] - img.height) // 2
    canvas.paste(img, (x, y))
    return np.asarray(canvas)


def empty(size: tuple[int, int] = (W, H)) -> np.ndarray:
    return np.full((size[1], size[0], 3), 96, np.uint8)


def make_clip(
    path: Path,
    segments: list[Segment],
    fps: int = 15,
    size: tuple[int, int] = (W, H),
    codec: str = "libx264",
) -> Path:
    """Encode the timeline to ``path`` (MP4/H.264 by default; ``mjpeg`` for an .avi)."""
    import av

    duration = max(s.end for s in segments)
    n = round(duration * fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "g": str(fps)}
        for i in range(n):
            t = i / fps
            seg = next((s for s in segments if s.start <= t < s.end), None)
            rgb = place(seg.photo, t, size) if seg and seg.photo else empty(size)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def pick_people(
    wild: Path, count: int, enrol_photos: int = 3
) -> dict[str, tuple[list[Path], Path]]:
    """``count`` celeba-wild people with ``enrol_photos`` photos to enrol and one more for the
    clip (their first photos in name order: tune nothing to a particular person)."""
    people: dict[str, tuple[list[Path], Path]] = {}
    for person in sorted(p for p in wild.iterdir() if p.is_dir()):
        photos = sorted(person.glob("*.jpg"))
        if len(photos) < enrol_photos + 1:
            continue
        people[person.name] = (photos[:enrol_photos], photos[enrol_photos])
        if len(people) == count:
            break
    return people


def ffmpeg() -> str | None:
    return shutil.which("ffmpeg")


def mjpeg_server(
    clip: Path, port: int, realtime: bool = True, loop: bool = True
) -> subprocess.Popen[bytes]:
    """``ffmpeg -listen 1`` serving ``clip`` as an HTTP multipart MJPEG stream on ``port``."""
    cmd = [ffmpeg() or "ffmpeg", "-hide_banner", "-loglevel", "error"]
    if realtime:
        cmd.append("-re")
    if loop:
        cmd += ["-stream_loop", "-1"]
    cmd += ["-i", str(clip), "-an", "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen", "1",
            f"http://127.0.0.1:{port}/video.mjpg"]  # fmt: skip
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)


def build_gallery(db: Path, people: dict[str, tuple[list[Path], Path]]) -> None:
    """Enrol each person's enrolment photos with the pretrained model into ``db``."""
    from facemetric.recognize.recognizer import Recognizer

    recognizer = Recognizer.from_paths("dlib", db)
    for name, (photos, _) in people.items():
        images = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
        recognizer.enroll(name, images, [p.name for p in photos])
    recognizer.close()


def known_clip(
    folder: Path, wild: Path, fps: int = 15, gap: float = 2.5, each: float = 2.5
) -> tuple[Path, Path, list[Segment]]:
    """Three known people and a stranger, one after another with empty scenes between, the
    first person again at the end: (clip, gallery, truth)."""
    chosen = pick_people(wild, 4)
    names = list(chosen)
    known = {n: chosen[n] for n in names[:3]}
    db = folder / "gallery.db"
    build_gallery(db, known)
    order = [names[0], names[1], names[3], names[2], names[0]]
    segments, t = [], 0.5
    for name in order:
        segments.append(Segment(name if name in known else None, t, t + each, chosen[name][1]))
        t += each + gap
    clip = make_clip(folder / "known.mp4", segments, fps=fps)
    return clip, db, segments


def cut_clip(
    folder: Path, wild: Path, fps: int = 15, each: float = 3.0
) -> tuple[Path, Path, list[Segment]]:
    """An enrolled person, then at once (a hard cut, the same place) a stranger, then nobody:
    (clip, gallery of three people, truth). The old tracker followed the box and named the
    stranger after the person before (issue 26)."""
    chosen = pick_people(wild, 4)
    names = list(chosen)
    known = {n: chosen[n] for n in names[:3]}
    db = folder / "gallery.db"
    build_gallery(db, known)
    segments = [
        Segment(names[0], 0.5, 0.5 + each, chosen[names[0]][1]),
        Segment(None, 0.5 + each, 0.5 + 2 * each, chosen[names[3]][1]),  # the stranger
        Segment(None, 0.5 + 2 * each, 0.5 + 2 * each + 2.5),  # nobody
    ]
    return make_clip(folder / "cut.mp4", segments, fps=fps), db, segments
