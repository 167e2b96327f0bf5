"""Tracks and events on clips of enrolled people and strangers at the same place (issue 26).

A clip is made at run time (a temp folder, never kept) from ../shared/data/celeba-wild photos:
``--enrolled`` people are enrolled with 3 photos each (the pretrained dlib model), and the clip
shows, at the same place with hard cuts, an enrolled person's *other* photo, then a stranger's
photo (people never enrolled), and so on; every 4th cut has an empty gap of ``--gap`` s, every
5th appearance is two faces at once (an enrolled person left, a stranger right). Each photo is
on screen ``--each`` s, drifting sideways (``tests/videoclip.place``). The clip is encoded as
H.264 at 15 frames a second and decoded again; it is then recognised at 2, 5 and 15 frames a
second exactly as a camera is (``Tracker.step`` then ``EventBuilder.update``).

Printed per rate: stranger appearances named in events, events spanning two people, enrolled
appearances named right, event boundaries within 0.5 s of the truth; and the same for the
per-frame labels of the live stream (a face's label in each frame against who is there).
``--speed``: the 15 frames/s run again with every face embedded in every frame
(``reembed_s=0``), side by side: faces embedded per second of video, frames recognised a
second. ::

    .venv/bin/python benchmarks/tracks.py --enrolled 20 --appearances 120 --speed
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from facemetric.events.builder import EventBuilder
from facemetric.events.model import Event
from facemetric.recognize.tracking import Tracker, TrackSettings
from videoclip import H, W, build_gallery

DATA = Path(
    os.environ.get(
        "FACEMETRIC_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    )
)
FACE_SIDE = 240


@dataclass(frozen=True)
class Appearance:
    person: str  # the folder name
    enrolled: bool
    start: float
    end: float
    photo: Path
    side: str  # centre | left | right


def pick(wild: Path, enrolled: int, appearances: int, seed: int):
    """(enrolment photos per person, the timeline of appearances)."""
    rng = np.random.default_rng(seed)
    people = sorted(p for p in wild.iterdir() if p.is_dir())
    photos = {p.name: sorted(p.glob("*.jpg")) for p in people}
    eligible = [n for n in photos if len(photos[n]) >= 5]
    rng.shuffle(eligible)
    known = eligible[:enrolled]
    strangers = [n for n in photos if n not in set(known)]
    rng.shuffle(strangers)
    enrol = {n: (photos[n][:3], photos[n][3]) for n in known}
    return enrol, known, strangers, photos


def timeline(
    known: list[str],
    strangers: list[str],
    photos: dict[str, list[Path]],
    appearances: int,
    each: float,
    gap: float,
    seed: int,
) -> list[Appearance]:
    rng = np.random.default_rng(seed + 1)
    out: list[Appearance] = []
    t, k, s = 0.5, 0, 0
    for i in range(appearances):
        if i % 5 == 4:  # two faces at once: an enrolled person left, a stranger right
            a = known[k % len(known)]
            b = strangers[s % len(strangers)]
            k, s = k + 1, s + 1
            out.append(Appearance(a, True, t, t + each, pick_photo(photos[a], rng, True), "left"))
            out.append(Appearance(b, False, t, t + each, pick_photo(photos[b], rng), "right"))
        elif i % 2 == 0:
            a = known[k % len(known)]
            k += 1
            out.append(Appearance(a, True, t, t + each, pick_photo(photos[a], rng, True), "centre"))
        else:
            b = strangers[s % len(strangers)]
            s += 1
            out.append(Appearance(b, False, t, t + each, pick_photo(photos[b], rng), "centre"))
        t += each
        if i % 4 == 3:
            t += gap
    return out


def pick_photo(paths: list[Path], rng: np.random.Generator, enrolled: bool = False) -> Path:
    usable = paths[3:] if enrolled else paths  # never an enrolment photo
    return usable[int(rng.integers(0, len(usable)))]


def render(apps: list[Appearance], t: float, cache: dict[Path, Image.Image]) -> np.ndarray:
    canvas = Image.new("RGB", (W, H), (96, 96, 96))
    for a in apps:
        if not a.start <= t < a.end:
            continue
        img = cache.get(a.photo)
        if img is None:
            img = Image.open(a.photo).convert("RGB")
            img.thumbnail((FACE_SIDE, FACE_SIDE))
            cache[a.photo] = img
        dx = int(15 * np.sin(t * 1.3))
        cx = {"centre": W // 2, "left": W // 4 + 10, "right": 3 * W // 4 - 10}[a.side]
        canvas.paste(img, (cx - img.width // 2 + dx, (H - img.height) // 2))
    return np.asarray(canvas)


def encode(path: Path, apps: list[Appearance], fps: int = 15) -> None:
    import av

    duration = max(a.end for a in apps) + 1.0
    cache: dict[Path, Image.Image] = {}
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = W, H
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        for i in range(round(duration * fps)):
            frame = av.VideoFrame.from_ndarray(render(apps, i / fps, cache), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def frames_at(path: Path, rate: float, until: float | None = None):
    """(time, RGB frame) of the clip at ``rate`` frames a second (the first frame of each
    1/rate slot), as a camera's budget lets frames through."""
    import av

    with av.open(str(path)) as container:
        next_t = 0.0
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            if until is not None and t > until:
                break
            if t + 1e-6 < next_t:
                continue
            next_t += 1.0 / rate
            yield t, frame.to_ndarray(format="rgb24")


def side_of(box: list[float]) -> str:
    cx = (box[0] + box[2]) / 2
    return "left" if cx < W * 0.42 else "right" if cx > W * 0.58 else "centre"


def who_is_there(apps: list[Appearance], t: float, box: list[float]) -> Appearance | None:
    here = [a for a in apps if a.start <= t < a.end]
    if not here:
        return None
    if len(here) == 1:
        return here[0]
    s = side_of(box)
    return next((a for a in here if a.side == s), None)


def run(recognizer: Any, clip: Path, apps: list[Appearance], rate: float, reembed: float,
        until: float | None = None) -> dict[str, Any]:  # fmt: skip
    tracker = Tracker(TrackSettings(reembed_s=reembed, lost_s=2.0))
    builder = EventBuilder("bench", [], gap=2.0)
    builder.keep_closed = True
    labels: list[tuple[float, list[float], str | None, Appearance | None, Any]] = []
    frames = 0
    start = time.perf_counter()
    last_t = 0.0
    for t, image in frames_at(clip, rate, until):
        faces, embs = tracker.step(recognizer, image, t)
        builder.update(faces, t, image, embs)
        for f in faces:
            raw = f["raw"]["identity"] if f["raw"] is not None else "-"  # "-": not embedded
            labels.append((t, f["box"], f["identity"], who_is_there(apps, t, f["box"]), raw))
        frames += 1
        last_t = t
    builder.close_all()
    wall = time.perf_counter() - start
    used = [a for a in apps if until is None or a.end <= until]
    return {
        "events": builder.closed,
        "labels": labels,
        "frames": frames,
        "wall": wall,
        "video_s": last_t,
        "embedded": tracker.embedded,
        "faces": tracker.faces,
        "apps": used,
    }


def score_events(
    events: list[Event],
    apps: list[Appearance],
    rate: float,
    said: dict[int, str | None] | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    def overlap(e: Event, a: Appearance) -> float:
        lo, hi = max(e.first_seen, a.start), min(e.last_seen, a.end)
        same_place = a.side == "centre" or e.box is None or side_of(list(e.box)) == a.side
        return hi - lo + 1e-3 if hi >= lo and same_place else 0.0

    stranger_named = spanning = right = bounds_ok = right_of_named = 0
    enrolled = [a for a in apps if a.enrolled]
    strangers = [a for a in apps if not a.enrolled]
    per_app: dict[int, list[Event]] = {}
    for e in events:
        hits = [i for i, a in enumerate(apps) if overlap(e, a) > 0]
        if len({apps[i].person for i in hits}) > 1:
            spanning += 1
        for i in hits:
            per_app.setdefault(i, []).append(e)
    dt = 1.0 / rate
    for i, a in enumerate(apps):
        evs = per_app.get(i, [])
        if not a.enrolled and any(e.person is not None for e in evs):
            stranger_named += 1
            if verbose:
                named = [(e.person, e.decision.get("score"), e.frames) for e in evs if e.person]
                print(f"    stranger {a.person} {a.photo.name} named {named}")
        if not evs:
            continue
        main = max(evs, key=lambda e: overlap(e, a))
        if a.enrolled and main.person == a.person:
            right += 1
            right_of_named += said is not None and said.get(i) == a.person
        # the truth's first and last frame at this rate
        first = np.ceil(a.start / dt - 1e-6) * dt
        last = np.ceil(a.end / dt - 1e-6) * dt - dt
        if abs(main.first_seen - first) <= 0.5 and abs(main.last_seen - last) <= 0.5:
            bounds_ok += 1
    return {
        "stranger appearances named": f"{stranger_named} of {len(strangers)}",
        "events spanning two people": f"{spanning} of {len(events)}",
        "enrolled named right": f"{right / max(1, len(enrolled)):.1%} of {len(enrolled)}",
        "enrolled named right, of those identify names": (
            "-"
            if said is None
            else f"{right_of_named} of {sum(said[i] == a.person for i, a in enumerate(apps))}"
        ),
        "boundaries within 0.5 s": f"{bounds_ok / max(1, len(apps)):.1%} of {len(apps)}",
    }


def per_photo(recognizer: Any, apps: list[Appearance]) -> dict[int, str | None]:
    """What ``identify`` says of each appearance's face in its first frame (the per-photo
    decision on the same pictures), by appearance index."""
    cache: dict[Path, Image.Image] = {}
    out: dict[int, str | None] = {}
    for i, a in enumerate(apps):
        t = a.start + 0.01
        faces = recognizer.recognize(render(apps, t, cache))
        mine = [f for f in faces if who_is_there(apps, t, list(f.box)) == a]
        out[i] = mine[0].identity if mine else "(no face)"
    return out


def score_photos(said: dict[int, str | None], apps: list[Appearance]) -> dict[str, str]:
    enrolled = [i for i, a in enumerate(apps) if a.enrolled]
    strangers = [i for i, a in enumerate(apps) if not a.enrolled]
    right = sum(said[i] == apps[i].person for i in enrolled)
    named = sum(said[i] not in (None, "(no face)") for i in strangers)
    return {
        "stranger appearances named": f"{named} of {len(strangers)}",
        "enrolled named right": f"{right / max(1, len(enrolled)):.1%} of {len(enrolled)}",
    }


def score_labels(labels: list[tuple[float, list[float], str | None, Any, Any]]) -> dict[str, Any]:
    stranger_frames = [x for x in labels if x[3] is not None and not x[3].enrolled]
    enrolled_frames = [x for x in labels if x[3] is not None and x[3].enrolled]
    nobody = [x for x in labels if x[3] is None]
    named_stranger = sum(x[2] is not None for x in stranger_frames)
    wrong = sum(x[2] is not None and x[2] != x[3].person for x in enrolled_frames)
    right = sum(x[2] == x[3].person for x in enrolled_frames)
    ghost = sum(x[2] is not None for x in nobody)
    # each embedded frame's own decision (what per-frame recognition said, no track)
    raw_s = [x for x in stranger_frames if x[4] != "-"]
    raw_e = [x for x in enrolled_frames if x[4] != "-"]
    raw_named = sum(x[4] is not None for x in raw_s)
    raw_right = sum(x[4] == x[3].person for x in raw_e)
    return {
        "stranger faces named (frames)": f"{named_stranger} of {len(stranger_frames)}",
        "enrolled faces named wrong (frames)": f"{wrong} of {len(enrolled_frames)}",
        "enrolled faces named right (frames)": f"{right / max(1, len(enrolled_frames)):.1%}",
        "named boxes where nobody is (frames)": f"{ghost} of {len(nobody)}",
        "per-frame decision: strangers named": f"{raw_named} of {len(raw_s)} embedded frames",
        "per-frame decision: enrolled right": f"{raw_right / max(1, len(raw_e)):.1%}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--enrolled", type=int, default=20)
    parser.add_argument("--appearances", type=int, default=120)
    parser.add_argument("--each", type=float, default=2.0)
    parser.add_argument("--gap", type=float, default=1.0)
    parser.add_argument("--rates", nargs="+", type=float, default=[2, 5, 15])
    parser.add_argument("--speed-until", type=float, default=60.0,
                        help="--speed compares over the first this many seconds")  # fmt: skip
    parser.add_argument("--speed-rate", type=float, default=15.0)
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--fpir", type=float, default=None, help="the decision's (default 0.01)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from facemetric.recognize.recognizer import Recognizer

    wild = args.data / "celeba-wild"
    enrol, known, strangers, photos = pick(wild, args.enrolled, args.appearances, args.seed)
    apps = timeline(known, strangers, photos, args.appearances, args.each, args.gap, args.seed)
    with tempfile.TemporaryDirectory(prefix="facemetric-tracks-") as tmp:
        db = Path(tmp) / "gallery.db"
        t0 = time.perf_counter()
        build_gallery(db, enrol)
        clip = Path(tmp) / "clip.mp4"
        encode(clip, apps)
        n_str = sum(not a.enrolled for a in apps)
        print(
            f"{len(known)} enrolled, {len(apps)} appearances ({n_str} strangers), "
            f"{max(a.end for a in apps):.0f} s clip; gallery + clip in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        from facemetric.recognize.decision import DecisionSettings

        settings = DecisionSettings() if args.fpir is None else DecisionSettings(fpir=args.fpir)
        recognizer = Recognizer.from_paths("dlib", db, decision=settings)
        recognizer.calibration_now()
        print(f"decision threshold {recognizer.decision_threshold:.4f}")
        said = per_photo(recognizer, apps)
        print("per photo (identify on each appearance's first frame):")
        for k, v in score_photos(said, apps).items():
            print(f"  photos: {k:<36} {v}")
        for rate in args.rates:
            r = run(recognizer, clip, apps, rate, 1.0)
            print(f"\n{rate:g} frames/s ({r['frames']} frames, {r['video_s']:.0f} s of video)")
            for k, v in score_events(r["events"], r["apps"], rate, said, True).items():
                print(f"  events: {k:<46} {v}")
            for k, v in score_labels(r["labels"]).items():
                print(f"  live:   {k:<46} {v}")
        if args.speed:
            rate, until = args.speed_rate, args.speed_until
            base = run(recognizer, clip, apps, rate, 0.0, until)
            r = run(recognizer, clip, apps, rate, 1.0, until)
            print(f"\nspeed at {rate:g} frames/s over the first {r['video_s']:.0f} s of video:")
            for name, x in (("every frame embedded", base), ("track recognised", r)):
                print(
                    f"  {name:<22} faces embedded {x['embedded'] / x['video_s']:6.2f}/s "
                    f"of video ({x['embedded']} of {x['faces']} faces), "
                    f"{x['frames'] / x['wall']:5.2f} frames recognised/s"
                )
            print(f"  ratio: {base['wall'] / r['wall']:.2f}x the frames a second")
            for k, v in score_events(base["events"], base["apps"], rate, said).items():
                print(f"  every frame embedded, events: {k:<46} {v}")
        recognizer.close()


if __name__ == "__main__":
    main()
