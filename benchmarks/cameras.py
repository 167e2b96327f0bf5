"""Cameras and ``watch``: frames/s, capture->event delay, memory, watch speed, reconnect.

    PYTHONPATH=src .venv/bin/python benchmarks/cameras.py [--minutes 2] [--skip four,watch,...]

Needs ../shared/data/celeba-wild (face photos, research terms: nothing is kept), ffmpeg and
GStreamer's RTSP server (Debian: gir1.2-gst-rtsp-server-1.0, python3-gi; the server runs on the
system Python, scripts/rtsp_server.py). Every camera is a real RTSP stream of 640x480 at 15
frames/s, H.264, from a clip made of real face photos; the model is the pretrained dlib one.

1. one camera, one face: frames/s recognised (budget 15) and the delay from the capture of the
   first frame showing the face to its event's first ``update`` (capture: the time the RTSP
   server sent the stream's first frame plus the face's media time; same machine, same clock;
   encoding, network and decoding included).
2. four cameras at once (four RTSP sessions of one shared stream): frames/s each, RSS and the
   readers' dropped-frame counts before and after ``--minutes``.
3. ``watch`` on a 60 s 640x480 clip: ratio to real time; events' first/last seen against the truth.
4. reconnect: the RTSP server killed and restarted, seconds until the camera is live again.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from facemetric.events.model import Event
from facemetric.video.pipeline import CameraWorker, PipelineOptions
from facemetric.video.sources import Camera
from rtsp_cameras import WILD, Rtsp, one_person, photos_missing, wait_live
from videoclip import Segment, build_gallery, make_clip, pick_people


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class TimedSink:
    """Records when each event first reached a sink (its first ``update``)."""

    def __init__(self) -> None:
        self.opened: list[tuple[float, Event]] = []
        self.closed: list[Event] = []
        self._seen: set[int] = set()

    def update(self, event: Event) -> None:
        if id(event) not in self._seen:
            self._seen.add(id(event))
            self.opened.append((time.time(), event))

    def close_event(self, event: Event) -> None:
        self.closed.append(event)

    def close(self) -> None:
        pass


def one_camera(recognizer: Any, clip: Path, seconds: float, face_at: float, period: float) -> None:
    rtsp = Rtsp(clip)
    rtsp.start()
    sink = TimedSink()
    worker = CameraWorker(Camera("door", rtsp.url, fps=15), recognizer, [sink], PipelineOptions())
    worker.start()
    try:
        live_at = wait_live(worker)
        time.sleep(seconds)
        fps = worker.pipeline.recognised / max(time.time() - live_at, 1e-6)
        step = statistics.median(worker.pipeline.step_ms) if worker.pipeline.step_ms else 0.0
    finally:
        worker.stop()
        rtsp.kill()
    print(
        f"1 camera 640x480@15 one face: {fps:.1f} frames/s recognised (budget 15), median "
        f"{step:.0f} ms a frame, {worker.reader.dropped} frames dropped unread"
    )
    if rtsp.started is None or not sink.opened:
        print("  no event opened (or the server's start unknown)")
        return
    delays, inside = [], []
    for opened, event in sink.opened:
        loops = round((event.first_seen - rtsp.started - face_at) / period)
        capture = rtsp.started + face_at + loops * period
        delays.append(opened - capture)
        inside.append(opened - event.first_seen)
    print(
        f"  capture -> event: median {statistics.median(delays):.2f} s (max {max(delays):.2f} s, "
        f"{len(delays)} events); of which arrival of the first sighting -> event "
        f"{statistics.median(inside):.2f} s (an event opens at its 2nd sighting)"
    )


def four_cameras(recognizer: Any, clip: Path, minutes: float) -> None:
    rtsp = Rtsp(clip)
    rtsp.start()
    sinks = [TimedSink() for _ in range(4)]
    workers = [
        CameraWorker(Camera(f"cam{i}", rtsp.url, fps=15), recognizer, [sinks[i]]) for i in range(4)
    ]
    try:
        for w in workers:
            w.start()
        for w in workers:
            wait_live(w)
        time.sleep(10)
        before = rss_mib()
        counts0 = [w.pipeline.recognised for w in workers]
        dropped0 = [w.reader.dropped for w in workers]
        t0 = time.time()
        time.sleep(minutes * 60)
        elapsed = time.time() - t0
        after = rss_mib()
        pairs = zip(workers, counts0, strict=True)
        each = [(w.pipeline.recognised - c) / elapsed for w, c in pairs]
        dropped = [w.reader.dropped - d for w, d in zip(workers, dropped0, strict=True)]
        states = {w.reader.state for w in workers}
    finally:
        for w in workers:
            w.stop()
        rtsp.kill()
    print(
        f"4 cameras at once over {minutes:g} min: frames/s recognised each "
        f"{', '.join(f'{v:.2f}' for v in each)} (total {sum(each):.1f}); RSS {before:.0f} -> "
        f"{after:.0f} MiB ({after - before:+.0f}); frames dropped unread (newest wins) "
        f"{', '.join(map(str, dropped))}; states {sorted(states)}"
    )


def watch_clip(folder: Path) -> None:
    from facemetric.video.watch import WatchConfig, watch

    people = pick_people(WILD, 6)
    names = list(people)
    segments, t = [], 1.0
    for name in names:
        segments.append(Segment(name, t, t + 6.0, people[name][1]))
        t += 10.0
    clip = make_clip(folder / "sixty.mp4", [*segments, Segment(None, 59.0, 60.0)], fps=15)
    gallery = folder / "watch.db"
    build_gallery(gallery, people)
    out = io.StringIO()
    start = time.perf_counter()
    watch(WatchConfig(str(clip), db=str(gallery), model="dlib", json=True, progress=False), out)
    elapsed = time.perf_counter() - start
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    print(
        f"watch on a 60 s 640x480 clip (15 fps, 5 recognised a second): {elapsed:.1f} s, "
        f"{60 / elapsed:.2f}x real time (model and gallery loading included)"
    )
    worst = 0.0
    for seg in segments:
        match = [e for e in events if abs(e["start_s"] - seg.start) < 3]
        if not match:
            print(f"  {seg.person} {seg.start:.1f}-{seg.end:.1f}: no event")
            worst = float("inf")
            continue
        e = match[0]
        d1, d2 = e["start_s"] - seg.start, e["end_s"] - seg.end
        worst = max(worst, abs(d1), abs(d2))
        ok = "right" if e["person"] == seg.person else f"WRONG ({e['person']})"
        print(
            f"  {seg.person}: truth {seg.start:.1f}-{seg.end:.1f} s, event {e['start_s']:.1f}-"
            f"{e['end_s']:.1f} s ({d1:+.1f}/{d2:+.1f}), {ok}"
        )
    print(
        f"  {len(events)} events for {len(segments)} appearances; worst first/last error "
        f"{worst:.2f} s"
    )


def reconnect(recognizer: Any, clip: Path, tries: int = 3) -> None:
    rtsp = Rtsp(clip)
    rtsp.start()
    worker = CameraWorker(Camera("door", rtsp.url, fps=5), recognizer, [], read_timeout=3.0)
    worker.start()
    times = []
    try:
        wait_live(worker)
        for _ in range(tries):
            rtsp.kill()
            while worker.reader.state == "live":
                time.sleep(0.02)
            rtsp.start()
            started = time.time()
            wait_live(worker, 30)
            times.append(time.time() - started)
            time.sleep(2)
    finally:
        worker.stop()
        rtsp.kill()
    print(
        "reconnect after the RTSP server was killed and restarted: "
        f"{', '.join(f'{t:.1f}' for t in times)} s to live (backoff 0.5 s doubling to 4 s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="four cameras' run")
    parser.add_argument("--skip", default="", help="comma-separated: one,four,watch,reconnect")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if photos_missing():
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        name, photo, recognizer = one_person(folder)
        timeline = [Segment(name, 3.0, 9.0, photo), Segment(None, 9, 12)]
        clip = make_clip(folder / "door.mp4", timeline)
        if "one" not in skip:
            one_camera(recognizer, clip, 40.0, face_at=3.0, period=12.0)
        if "four" not in skip:
            always = make_clip(folder / "always.mp4", [Segment(name, 0.0, 10.0, photo)])
            four_cameras(recognizer, always, args.minutes)
        if "reconnect" not in skip:
            reconnect(recognizer, clip)
        if "watch" not in skip:
            watch_clip(folder)
        recognizer.close()
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
