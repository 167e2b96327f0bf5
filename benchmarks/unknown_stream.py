"""Unknown faces arriving one by one: is grouping incremental, and as precise as a batch run?

A stream of 2,000 faces of 100 people nobody enrolled (celeba-wild: the 100 people with at least
20 photos, the largest face of each of 20 photos each, in a shuffled order) is kept one face at a
time by ``UnknownKeeper`` into a fresh gallery, the way ``identify --keep-unknown`` and
``serve --keep-unknown`` keep them (chip PNG, embedding, incremental grouping, retention). Printed:

- the time per added face in buckets of 200 as the pool grows (grouping alone in memory, and the
  whole keep: PNG chip + one write transaction on SQLite), which stays flat;
- pairwise precision / recall / BCubed F of the incremental groups against the ground truth, and
  the same for a batch run over the same faces (``facemetric.cluster.core.cluster_embeddings``
  when that module is present, else scipy's average linkage at the same threshold).

Embeddings and chips (dlib's pretrained model, RetinaFace) are computed once and cached in /tmp
(research photos and what is computed from them stay out of the repository)::

    .venv/bin/python benchmarks/unknown_stream.py
    .venv/bin/python benchmarks/unknown_stream.py --postgres   # the keep into PostgreSQL too
    .venv/bin/python benchmarks/unknown_stream.py --sweep 0.92,0.93,0.94,0.95
    .venv/bin/python benchmarks/unknown_stream.py --people 50 --per-person 10   # quick
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEMETRIC_SHARED_DATA", REPO.parent / "shared" / "data"))
CACHE = Path(tempfile.gettempdir()) / "facemetric-unknown-stream"


def embed_faces(people: int, per_person: int) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """(vectors, labels, chip PNGs) of ``per_person`` faces of each of ``people`` people of
    celeba-wild with enough photos; cached in /tmp."""
    from facemetric.data.align import detect_and_align
    from facemetric.data.detect import create_detector
    from facemetric.data.image import load_image
    from facemetric.gallery.records import FaceRecord, encode_png
    from facemetric.models import load_embedder

    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"celeba-wild-{people}x{per_person}.npz"
    if cached.is_file():
        with np.load(cached) as z:
            blob, offsets = z["pngs"].tobytes(), z["offsets"]
            pngs = [blob[a:b] for a, b in itertools.pairwise(offsets)]
            return z["vectors"], z["labels"], pngs
    root = DATA / "celeba-wild"
    if not root.is_dir():
        sys.exit(f"{root} not found: real face photos are needed (set FACEMETRIC_SHARED_DATA)")
    folders = sorted(
        d for d in root.iterdir() if d.is_dir() and len(list(d.iterdir())) >= per_person
    )
    embedder = load_embedder("dlib")
    detector = create_detector("retinaface")
    spec = embedder.spec
    vectors, labels, pngs = [], [], []
    for label, folder in enumerate(folders):
        if label >= people:
            break
        taken = 0
        for path in sorted(folder.iterdir()):
            if taken == per_person:
                break
            image = load_image(path)
            faces = detect_and_align(image, detector, spec.input_size, template=spec.alignment)
            if not faces:
                continue
            record = FaceRecord.from_photo(image, faces[0], str(path))
            vectors.append(embedder.embed(faces[0].crop[None])[0])
            labels.append(label)
            pngs.append(encode_png(record.chip))
            taken += 1
        print(f"  embedded {folder.name}: {taken} faces", file=sys.stderr)
    vecs = np.asarray(vectors, np.float32)
    offsets = np.cumsum([0, *(len(p) for p in pngs)])
    np.savez(
        cached,
        vectors=vecs,
        labels=np.asarray(labels, np.int64),
        pngs=np.frombuffer(b"".join(pngs), np.uint8),
        offsets=offsets,
    )
    return vecs, np.asarray(labels, np.int64), pngs


def pair_scores(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """Pairwise precision, recall and BCubed F; ``pred`` -1 = unsorted (a group of its own)."""
    pred = pred.copy()
    loose = pred < 0
    pred[loose] = pred.max(initial=0) + 1 + np.arange(loose.sum())
    same_t = truth[:, None] == truth[None, :]
    same_p = pred[:, None] == pred[None, :]
    off = ~np.eye(len(truth), dtype=bool)
    tp = float((same_t & same_p & off).sum())
    precision = tp / max(1.0, float((same_p & off).sum()))
    recall = tp / max(1.0, float((same_t & off).sum()))
    both = (same_t & same_p).sum(1)
    bp = float(np.mean(both / same_p.sum(1)))
    br = float(np.mean(both / same_t.sum(1)))
    return precision, recall, 2 * bp * br / (bp + br)


def batch_labels(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, str]:
    try:
        from facemetric.cluster.core import cluster_embeddings
    except ImportError:
        from scipy.cluster.hierarchy import fcluster, linkage

        z = linkage(vectors.astype(np.float64), method="average", metric="cosine")
        raw = fcluster(z, t=1.0 - threshold, criterion="distance")
        return raw, "scipy average linkage"
    return cluster_embeddings(vectors, threshold, method="average", min_size=1), (
        "facemetric.cluster.core average"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--per-person", type=int, default=20)
    parser.add_argument("--bucket", type=int, default=200, help="faces per timing bucket")
    parser.add_argument("--threshold", type=float, default=None, help="grouping threshold")
    parser.add_argument("--seed", type=int, default=0, help="order of the stream")
    parser.add_argument(
        "--sweep",
        metavar="T1,T2,...",
        help="only compare incremental and batch grouping in memory at these thresholds",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also keep the stream into a real PostgreSQL (fsync on; tests/pgserver.py)",
    )
    args = parser.parse_args()

    from facemetric.gallery.records import decode_png
    from facemetric.gallery.store import GalleryStore
    from facemetric.unknown.grouping import DEFAULT_THRESHOLD, Grouper
    from facemetric.unknown.keeper import UnknownKeeper

    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    vectors, labels, pngs = embed_faces(args.people, args.per_person)
    order = np.random.default_rng(args.seed).permutation(len(vectors))
    vectors, labels = vectors[order], labels[order]
    pngs = [pngs[i] for i in order]
    n = len(vectors)
    print(
        f"{n} faces of {len(set(labels.tolist()))} people (celeba-wild, dlib model), "
        f"threshold {threshold}; machine: {os.cpu_count()} CPUs shared with other jobs (loaded)"
    )

    if args.sweep:
        print(f"{'threshold':>9}  incremental P / R / F    batch P / R / F")
        for t in (float(v) for v in args.sweep.split(",")):
            g = Grouper(t)
            for i in range(n):
                g.add(i + 1, vectors[i])
            inc = pair_scores(labels, np.asarray(g.labels(range(1, n + 1))))
            bat = pair_scores(labels, np.asarray(batch_labels(vectors, t)[0]))
            print(f"{t:>9.3f}  " + " / ".join(f"{v:.4f}" for v in inc) + "    "
                  + " / ".join(f"{v:.4f}" for v in bat))  # fmt: skip
        return

    # 1. grouping alone, in memory
    grouper = Grouper(threshold)
    times, pool_groups = [], []
    for i in range(n):
        t0 = time.perf_counter()
        grouper.add(i + 1, vectors[i])
        times.append(time.perf_counter() - t0)
        pool_groups.append(len(grouper.groups))
    mem_labels = grouper.labels(list(range(1, n + 1)))
    greedy = Grouper(threshold, neighbours=0)  # without the local repair, for comparison
    greedy_times = []
    for i in range(n):
        t0 = time.perf_counter()
        greedy.add(i + 1, vectors[i])
        greedy_times.append(time.perf_counter() - t0)
    greedy_labels = greedy.labels(list(range(1, n + 1)))

    # 2. the whole keep: chip PNG + a write transaction per face, into a SQLite gallery
    chips = [decode_png(p) for p in pngs]

    def keep_all(location: str | Path) -> tuple[list[float], np.ndarray]:
        store = GalleryStore(location)
        keeper = UnknownKeeper(store, "dlib-bench", threshold=threshold, interval=0.0)
        spent = []
        for i in range(n):
            t0 = time.perf_counter()
            keeper.keep_chip(chips[i], vectors[i], source=f"stream/{i}")
            spent.append(time.perf_counter() - t0)
        kept = keeper.face_groups()
        store.close()
        return spent, np.array([kept[i] for i in sorted(kept)], np.int64)

    with tempfile.TemporaryDirectory() as tmp:
        keep_times, stored_labels = keep_all(Path(tmp) / "gallery.db")
    pg_times: list[float] = []
    if args.postgres:
        sys.path.insert(0, str(REPO / "tests"))
        import pgserver

        why = pgserver.available()
        if why:
            sys.exit(f"--postgres: {why}")
        server = pgserver.PostgresServer(durable=True)
        try:
            pg_times, pg_labels = keep_all(server.new_database())
        finally:
            server.close()
        if not np.array_equal(pg_labels, stored_labels):
            print("note: the PostgreSQL pool grouped differently from the SQLite one")

    print(f"\ntime per added face (median of each bucket of {args.bucket}, ms):")
    print(
        f"{'faces':>11} {'groups':>7} {'grouping':>9} {'no repair':>10} "
        f"{'keep (PNG + SQLite write)':>26}" + (f" {'keep (PostgreSQL)':>18}" if pg_times else "")
    )
    for start in range(0, n, args.bucket):
        end = min(n, start + args.bucket)
        g = statistics.median(times[start:end]) * 1e3
        q = statistics.median(greedy_times[start:end]) * 1e3
        k = statistics.median(keep_times[start:end]) * 1e3
        groups = pool_groups[end - 1]
        pg = f" {statistics.median(pg_times[start:end]) * 1e3:>18.2f}" if pg_times else ""
        print(f"{start + 1:>5}-{end:>5} {groups:>7} {g:>9.3f} {q:>10.3f} {k:>26.2f}{pg}")

    t0 = time.perf_counter()
    batch, batch_name = batch_labels(vectors, threshold)
    batch_s = time.perf_counter() - t0
    print(f"\n{'':40} {'precision':>9} {'recall':>7} {'BCubed F':>9} {'groups>=2':>10}")
    for name, lab in (
        ("incremental (memory)", mem_labels),
        ("incremental, no local repair", greedy_labels),
        ("incremental (kept, SQLite)", stored_labels),
        (f"batch ({batch_name})", batch),
    ):
        p, r, f = pair_scores(labels, np.asarray(lab))
        _, counts = np.unique(np.asarray(lab)[np.asarray(lab) >= 0], return_counts=True)
        print(f"{name:40} {p:>9.4f} {r:>7.4f} {f:>9.4f} {int((counts >= 2).sum()):>10}")
    print(
        f"\nincremental grouping: {sum(times) * 1e3:.0f} ms for {n} faces in all; "
        f"batch run once: {batch_s * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
