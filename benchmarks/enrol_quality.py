"""Enrolment quality: what each floor refuses, and what refusing does to open-set answers.

Part 1 (``floors``): the quality figures (``facemetric.data.quality``) of ordinary photos
(celeba-wild, CFP frontal) beside planted bad ones (a blurred copy, the photo shrunk until the
face is tiny, CFP's profile photos): per group, the share each default floor refuses and the
figures' percentiles (how the defaults were chosen).

Part 2 (``openset``): celeba-wild people with enough photos, half enrolled with 3 photos each,
the other half strangers. Each enrolled person also gets one planted bad reference (a blurred
copy, a tiny copy, or another stranger's photo, in turn). Probes: the enrolled people's other
photos and every stranger photo, answered by the shipped rule (best reference >= the model's
threshold). Printed: probes named right and stranger photos named, enrolling everything vs
enrolling through the quality checks (``facemetric.enrol.screen``).

    .venv/bin/python benchmarks/enrol_quality.py floors --per-group 150
    .venv/bin/python benchmarks/enrol_quality.py openset --people 100
    .venv/bin/python benchmarks/enrol_quality.py check --people 100 --plants 10

Part 3 (``check``): ``gallery check`` on a gallery of celeba-wild people (3 references each),
clean and then with planted wrong-person references and duplicates under another name.

The machine is shared with other jobs: times are not the point here, counts are.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from facemetric.data.image import load_image
from facemetric.data.quality import QualityFloors, problems
from facemetric.errors import FaceNotFoundError
from facemetric.gallery.records import FaceRecord

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
Degrade = Callable[[np.ndarray], np.ndarray]


def blurred(image: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def shrunk(image: np.ndarray, side: int = 64) -> np.ndarray:
    """The photo shrunk to ``side`` px on its longest side (a face a few px across) and
    padded back onto a grey canvas of its old size, so the detector still sees a photo."""
    h, w = image.shape[:2]
    f = side / max(h, w)
    small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), cv2.INTER_AREA)
    canvas = np.full_like(image, 128)
    canvas[: small.shape[0], : small.shape[1]] = small
    return canvas


def make_recognizer() -> object:
    import tempfile

    from facemetric.recognize.recognizer import Recognizer

    db = Path(tempfile.mkdtemp()) / "bench.db"
    return Recognizer.from_paths("dlib", db)


def record_of(rec: object, image: np.ndarray, label: str) -> FaceRecord | None:
    try:
        return rec.face_record(image, label)  # type: ignore[attr-defined]
    except FaceNotFoundError:
        return None


def floors_part(args: argparse.Namespace) -> None:
    rng = random.Random(0)
    wild = sorted((DATA / "celeba-wild").glob("*/*.jpg"))
    cfp = DATA / "cfp"
    frontal = sorted(cfp.glob("*/frontal_*.jpg"))
    profile = sorted(cfp.glob("*/profile_*.jpg"))
    n = args.per_group
    wild_s = rng.sample(wild, min(n, len(wild)))
    groups: dict[str, list[tuple[Path, Degrade | None]]] = {
        "celeba-wild": [(p, None) for p in wild_s],
        "cfp frontal": [(p, None) for p in rng.sample(frontal, min(n, len(frontal)))],
        "cfp profile": [(p, None) for p in rng.sample(profile, min(n, len(profile)))],
        "wild blurred s=3": [(p, blurred) for p in wild_s],
        "wild blurred s=2": [(p, lambda im: blurred(im, 2.0)) for p in wild_s],
        "wild shrunk to 64": [(p, shrunk) for p in wild_s],
        "wild shrunk to 100": [(p, lambda im: shrunk(im, 100)) for p in wild_s],
    }
    rec = make_recognizer()
    floors = QualityFloors()
    keys = ("eye_px", "sharpness", "yaw", "score")
    print(f"defaults: {floors.to_dict()} (consistency: the model's threshold - 0.05)")
    print(
        f"{'group':22} {'photos':>6} {'no face':>7} {'small':>6} {'blur':>6} {'yaw':>6} "
        f"{'score':>6} {'refused':>8}   p5/p50/p95 of " + ", ".join(keys)
    )
    for name, items in groups.items():
        figs: list[dict] = []
        missed = 0
        for path, degrade in items:
            image = load_image(path)
            if degrade is not None:
                image = degrade(image)
            record = record_of(rec, image, str(path))
            if record is None or record.quality is None:
                missed += 1
                continue
            q = dict(record.quality)
            q["yaw"] = abs(q["yaw"])
            figs.append(q)
        counts = dict.fromkeys(("small", "blur", "yaw", "score", "any"), 0)
        for q in figs:
            why = problems(q, floors)
            for word, key in (
                ("small", "small"),
                ("blurred", "blur"),
                ("turned", "yaw"),
                ("unclear", "score"),
            ):
                counts[key] += any(w.startswith(word) or word in w for w in why)
            counts["any"] += bool(why)
        total = max(1, len(figs))
        pct = {k: 100.0 * v / total for k, v in counts.items()}
        spread = "  ".join(
            "/".join(f"{np.percentile([q[k] for q in figs], p):.3g}" for p in (5, 50, 95))
            for k in keys
        )
        print(
            f"{name:22} {len(items):6d} {missed:7d} {pct['small']:5.1f}% {pct['blur']:5.1f}% "
            f"{pct['yaw']:5.1f}% {pct['score']:5.1f}% {pct['any']:7.1f}%   {spread}"
        )
        sys.stdout.flush()


def openset_part(args: argparse.Namespace) -> None:
    from facemetric.data.quality import consistency_floor
    from facemetric.enrol.screen import screen_records

    rng = random.Random(1)
    root = DATA / "celeba-wild"
    people = sorted(p for p in root.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 6)
    rng.shuffle(people)
    people = people[: args.people]
    half = len(people) // 2
    enrolled, strangers = people[:half], people[half:]
    rec = make_recognizer()
    threshold = rec.threshold  # type: ignore[attr-defined]

    def embed(record: FaceRecord) -> np.ndarray:
        return rec.embed(record.crop[None])[0]  # type: ignore[attr-defined]

    def faces(paths: list[Path], degrade: Degrade | None = None) -> list[FaceRecord]:
        out = []
        for p in paths:
            image = load_image(p)
            r = record_of(rec, image if degrade is None else degrade(image), str(p))
            if r is not None:
                out.append(r)
        return out

    plants: list[Degrade | None] = [blurred, shrunk, None]  # None: another person's photo
    stranger_photos = [sorted(s.glob("*.jpg")) for s in strangers]
    refs: dict[str, list[FaceRecord]] = {}
    planted_kind: dict[str, str] = {}
    probes: list[tuple[str, FaceRecord]] = []
    for i, person in enumerate(enrolled):
        photos = sorted(person.glob("*.jpg"))
        own = faces(photos[:3])
        plant = plants[i % 3]
        if plant is None:
            other = stranger_photos[i % len(stranger_photos)]
            extra = faces(other[-1:])  # the stranger's last photo; it stays a probe too
            planted_kind[person.name] = "another person"
        else:
            extra = faces(photos[3:4], plant)
            planted_kind[person.name] = "blurred" if plant is blurred else "tiny"
            photos = photos[:3] + photos[4:]
        if not extra:
            planted_kind[person.name] = "none (not detected)"
            extra = [own[-1]] if own else []  # a repeat of an own photo stands in (harmless)
        refs[person.name] = own + extra
        probes += [(person.name, r) for r in faces(photos[3:])]
    for photos in stranger_photos:
        probes += [("", r) for r in faces(photos)]
    probe_vecs = np.stack([embed(r) for _, r in probes])
    truth = [who for who, _ in probes]

    def answer(gallery: dict[str, list[np.ndarray]]) -> tuple[float, float, int, int]:
        names, vecs = [], []
        for name, vs in gallery.items():
            names += [name] * len(vs)
            vecs += vs
        sims = probe_vecs @ np.stack(vecs).T
        best = sims.argmax(axis=1)
        right = named = n_known = n_strangers = 0
        for j, who in enumerate(truth):
            hit = sims[j, best[j]] >= threshold
            if who:
                n_known += 1
                right += bool(hit and names[best[j]] == who)
            else:
                n_strangers += 1
                named += bool(hit)
        return 100.0 * right / n_known, 100.0 * named / n_strangers, n_known, n_strangers

    everything = {n: [embed(r) for r in rs] for n, rs in refs.items()}
    floors = QualityFloors()
    screened: dict[str, list[np.ndarray]] = {}
    caught: dict[str, int] = {}
    refused_own = 0
    own_why: dict[str, int] = {}
    consistency: dict[str, list[float]] = {"own": [], "another person": []}
    for name, rs in refs.items():
        vecs = np.stack([embed(r) for r in rs])
        result = screen_records(rs, vecs, None, floors, False, consistency_floor(threshold))
        screened[name] = [v for v, ok in zip(result.vectors, result.accepted, strict=True) if ok]
        refused = [not ok for ok in result.accepted]
        refused_own += sum(refused[:-1])
        for why, no in zip(result.reasons[:-1], refused[:-1], strict=True):
            for w in why if no else []:
                own_why[w.split(" (")[0]] = own_why.get(w.split(" (")[0], 0) + 1
        caught[planted_kind[name]] = caught.get(planted_kind[name], 0) + int(refused[-1])
        c = [float(r.quality.get("consistency", np.nan)) for r in result.records]
        consistency["own"] += c[:-1]
        if planted_kind[name] == "another person":
            consistency["another person"].append(c[-1])
    for k, v in consistency.items():
        spread = np.nanpercentile(v, [5, 25, 50, 95]).round(4)
        print(f"consistency of {k} references: p5/p25/p50/p95 {spread}")
    print(f"why own references were refused: {own_why}")
    kinds = {k: list(planted_kind.values()).count(k) for k in set(planted_kind.values())}
    print(
        f"celeba-wild: {len(enrolled)} people enrolled (3 photos + 1 planted bad reference), "
        f"{len(strangers)} strangers; threshold {threshold:.4f}"
    )
    print(f"planted references refused by the checks: {caught} of {kinds}")
    print(f"own (ordinary) references refused: {refused_own} of {3 * len(enrolled)}")
    for label, gallery in (("no checks", everything), ("quality checks", screened)):
        right, named, nk, ns = answer(gallery)
        print(
            f"{label:15} enrolled probes named right {right:5.1f}% (of {nk})   "
            f"stranger photos named {named:5.1f}% (of {ns})"
        )
    clean = {n: v[:-1] for n, v in everything.items()}
    clean_screened = {}
    for name, rs in refs.items():
        result = screen_records(
            rs[:-1], np.stack(clean[name]), None, floors, False, consistency_floor(threshold)
        )
        clean_screened[name] = [
            v for v, ok in zip(result.vectors, result.accepted, strict=True) if ok
        ]
    print(
        f"without the planted references: {sum(map(len, clean_screened.values()))} of "
        f"{sum(map(len, clean.values()))} own references pass the checks"
    )
    for label, gallery in (("no plants", clean), ("no plants+chk", clean_screened)):
        right, named, nk, ns = answer(gallery)
        print(
            f"{label:15} enrolled probes named right {right:5.1f}% (of {nk})   "
            f"stranger photos named {named:5.1f}% (of {ns})"
        )


def check_part(args: argparse.Namespace) -> None:
    """``gallery check`` on a real gallery with planted duplicates and wrong people."""
    from facemetric.gallery.check import CheckOptions, _cross_person, check_gallery

    rng = random.Random(2)
    root = DATA / "celeba-wild"
    people = sorted(p for p in root.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 5)
    rng.shuffle(people)
    people = people[: args.people]
    rec = make_recognizer()
    store = rec.store  # type: ignore[attr-defined]
    embedder = rec.embedder  # type: ignore[attr-defined]

    def add(name: str, paths: list[Path]) -> None:
        records = [r for p in paths if (r := record_of(rec, load_image(p), str(p))) is not None]
        if records:
            vecs = rec.embed(np.stack([r.crop for r in records]))  # type: ignore[attr-defined]
            store.add_faces(name, records, embedder, vectors=vecs)

    photos = {p.name: sorted(p.glob("*.jpg")) for p in people}
    names = list(photos)
    for name in names:
        add(name, photos[name][:3])
    options = CheckOptions(float(rec.threshold))  # type: ignore[attr-defined]
    clean = check_gallery(store, embedder, options)
    print(
        f"celeba-wild, {len(names)} people x 3 references, nothing planted: "
        f"{clean.counts()} (shared machine)"
    )
    k = args.plants
    wrong = [(names[i], names[-1 - i]) for i in range(k)]  # (who gets it, whose photo)
    dups = [(names[k + i], names[-1 - k - i]) for i in range(k)]
    for who, whose in wrong:
        add(who, photos[whose][3:4])  # a photo of someone else, not among their references
    for who, whose in dups:
        add(who, photos[whose][:1])  # one of ``whose``'s own references, again under ``who``
    start = time.perf_counter()
    report = check_gallery(store, embedder, options)
    seconds = time.perf_counter() - start
    found_wrong = sum(
        any(f.kind == "outlier" and f.people == [who] for f in report.findings) for who, _ in wrong
    )
    found_dup = sum(
        any(f.kind == "duplicate" and set(f.people) == {a, b} for f in report.findings)
        for a, b in dups
    )
    print(f"planted {k} wrong-person references: {found_wrong} found as outliers")
    print(f"planted {k} duplicates under another name: {found_dup} found as duplicates")
    print(
        f"all findings: {report.counts()}; the check took {seconds:.2f} s for {report.faces} faces"
    )
    vecs = np.random.default_rng(0).standard_normal((args.synthetic, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    person = np.arange(args.synthetic) // 5
    start = time.perf_counter()
    _cross_person(vecs, person, 0.99)
    print(
        f"the similarity pass alone on {args.synthetic} random 128-d faces: "
        f"{time.perf_counter() - start:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("floors", help="what each floor refuses, per group of photos")
    p.add_argument("--per-group", type=int, default=150)
    p = sub.add_parser("openset", help="open-set answers with and without the checks")
    p.add_argument("--people", type=int, default=80)
    p = sub.add_parser("check", help="gallery check on planted duplicates and wrong people")
    p.add_argument("--people", type=int, default=100)
    p.add_argument("--plants", type=int, default=10)
    p.add_argument("--synthetic", type=int, default=20_000, help="faces for the timing pass")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA}: no shared data here")
    {"floors": floors_part, "openset": openset_part, "check": check_part}[args.part](args)


if __name__ == "__main__":
    main()
