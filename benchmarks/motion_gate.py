"""The camera side's least work: CPU per still camera with the motion gate on and off, and
four cameras with a face moving in view (round a 40 px circle every 3 s: never still): recognised
frames/s each without and with the gate and fair turns (one slot) (``facemetric.video.motion``),
all in one run, alternating::

    PYTHONPATH=src .venv/bin/python benchmarks/motion_gate.py [--seconds 30] [--skip still,moving]

Every camera is a real RTSP stream (scripts/rtsp_server.py on the system Python, through
``rtsp_cameras.py`` as in ``cameras.py``) of 640x480 at 15 frames/s, H.264, budget 15; the model
is the pretrained dlib one, detection at 320 px (the live default). Still scene: one photo of a face
(../shared/data/celeba-wild, research terms: nothing is kept) with sensor noise (Gaussian,
sigma ``--noise`` grey levels, new every frame), so H.264 and the gate see what a real still
camera sends. CPU: this process's user+system time (every thread: decoding, the gate,
recognition; the RTSP server is the camera, not counted) over wall time, per camera.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from facemetric.video.motion import FairTurns, MotionSettings
from facemetric.video.pipeline import CameraWorker, PipelineOptions
from facemetric.video.sources import Camera
from rtsp_cameras import Rtsp, one_person, photos_missing, wait_live


def noisy_clip(
    path: Path, photo: Path, seconds: float, noise: float, move: float, fps: int = 15
) -> Path:
    """One face with fresh sensor noise in every frame: still (``move`` 0) or going round a
    circle of ``move`` pixels' radius every 3 s (never still: ~``move`` x 2 px a frame)."""
    import av
    from PIL import Image

    rng = np.random.default_rng(0)
    face = Image.open(photo).convert("RGB")
    face.thumbnail((300, 300))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = 640, 480
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        for i in range(round(seconds * fps)):
            a = 2 * np.pi * i / (3 * fps)
            canvas = Image.new("RGB", (640, 480), (96, 96, 96))
            x = (640 - face.width) // 2 + round(move * np.cos(a))
            y = (480 - face.height) // 2 + round(move * np.sin(a))
            canvas.paste(face, (x, y))
            base = np.asarray(canvas, np.float32)
            rgb = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_cameras(
    recognizer: Any, url: str, count: int, seconds: float, gate: bool, slots: int | None
) -> dict[str, Any]:
    motion = MotionSettings(enabled=gate)
    turns = FairTurns(slots) if slots else None
    options = PipelineOptions(detect_size=320)
    workers = [
        CameraWorker(Camera(f"cam{i}", url, fps=15), recognizer, [], options, turns=turns,
                     motion=motion)
        for i in range(count)
    ]  # fmt: skip
    try:
        for w in workers:
            w.start()
        for w in workers:
            wait_live(w)
        time.sleep(3)  # past the first frames' warm-up
        rec0 = [w.pipeline.recognised for w in workers]
        dec0 = [w.reader.decoded for w in workers]
        still0 = [w.reader.gate.still if w.reader.gate else 0 for w in workers]
        cpu0, t0 = cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(), time.monotonic()
        wall = t1 - t0
        out = {
            "recognised": [
                (w.pipeline.recognised - r) / wall for w, r in zip(workers, rec0, strict=True)
            ],
            "decoded": [(w.reader.decoded - d) / wall for w, d in zip(workers, dec0, strict=True)],
            "still": [
                ((w.reader.gate.still if w.reader.gate else 0) - s) / wall
                for w, s in zip(workers, still0, strict=True)
            ],
            "cpu_per_camera": (cpu1 - cpu0) / wall / count * 100,
        }
    finally:
        for w in workers:
            w.stop()
    return out


def fmt(v: list[float]) -> str:
    return ", ".join(f"{x:.1f}" for x in v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--noise", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip", default="")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["off", "on", "off/1", "on/1"],
        help="moving cameras' settings in order: gate off|on, /N: fair turns of N slots",
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if photos_missing():
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _, photo, recognizer = one_person(folder)
        if "still" not in skip:
            rtsp = Rtsp(noisy_clip(folder / "still.mp4", photo, 20.0, args.noise, 0.0))
            rtsp.start()
            try:
                for r in range(args.rounds):
                    for gate in (False, True):
                        got = run_cameras(recognizer, rtsp.url, args.cameras, args.seconds,
                                          gate, None)  # fmt: skip
                        print(
                            f"round {r + 1} {args.cameras} still cameras, gate "
                            f"{'on ' if gate else 'off'}: CPU {got['cpu_per_camera']:.1f}% of "
                            f"a core per camera; recognised/s {fmt(got['recognised'])}; held "
                            f"back still/s {fmt(got['still'])}; decoded/s {fmt(got['decoded'])}",
                            flush=True,
                        )
            finally:
                rtsp.kill()
        if "moving" not in skip:
            rtsp = Rtsp(noisy_clip(folder / "moving.mp4", photo, 15.0, args.noise, 40.0))
            rtsp.start()
            try:
                for r in range(args.rounds):
                    for config in args.configs:
                        gate, _, n = config.partition("/")
                        slots = int(n) if n else None
                        got = run_cameras(recognizer, rtsp.url, args.cameras, args.seconds,
                                          gate == "on", slots)  # fmt: skip
                        each = got["recognised"]
                        print(
                            f"round {r + 1} {args.cameras} cameras, a face moving: gate "
                            f"{gate}, turns {slots or 'none'}: recognised "
                            f"frames/s {fmt(each)} (total {sum(each):.1f}, min {min(each):.1f});"
                            f" held back still/s {fmt(got['still'])}; CPU "
                            f"{got['cpu_per_camera']:.0f}% a camera",
                            flush=True,
                        )
            finally:
                rtsp.kill()
        recognizer.close()
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
