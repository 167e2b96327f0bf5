"""Gallery search at scale: the approximate indexes (FAISS candidates re-scored exactly) against
the exact scan, in one run, on a synthetic gallery of people.

The gallery: ``--size`` faces of ``size / --per-person`` people, each face a unit vector around
its person's centre (``--spread`` sets how far: 0.42 gives faces of one person a cosine of ~0.85
to each other, as a face model's embeddings of one person have; centres are uniform on the
sphere, harder for an index than real embeddings, which fill a small part of it). Probes: a new
face of ``--queries`` enrolled people (what a camera sends), searched one at a time; and as many
strangers (uniform random vectors: nobody's face), whose top-1 is reported apart because an
open-set decision rejects them whichever face is nearest.

Printed per index: build seconds, p50/p90 milliseconds per single-query search (k = ``--k``),
recall@1 and recall@k against the exact scan, the time to add ``--add`` new faces to the built
index (no rebuild) and to remove them, and memory per million faces (the index's own count and
the process's resident-set growth while building it)::

    .venv/bin/python benchmarks/search.py                        # 1M x 128, ivf
    .venv/bin/python benchmarks/search.py --nprobe 64 128 256    # recall against speed
    .venv/bin/python benchmarks/search.py --size 100000 --methods ivf hnsw --ef-search 32 64
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/search.py --threads 2

Goal (issue 22): 1M x 128, one query, k=10: p50 <= 2 ms with recall@1 >= 0.99 against the
exact scan; adding 10k faces to a 1M index without a rebuild, time printed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_people(
    rng: np.random.Generator, n: int, dim: int, per: int, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """(faces (n, dim), centres (n // per, dim)); face i belongs to person i // per."""
    centres = unit(rng.standard_normal((max(1, n // per), dim), dtype=np.float32))
    faces = np.empty((n, dim), np.float32)
    step = 100_000
    for start in range(0, n, step):  # in blocks: the noise of 1M faces is another 512 MB
        idx = np.arange(start, min(n, start + step))
        noise = rng.standard_normal((len(idx), dim), dtype=np.float32)
        faces[idx] = unit(centres[idx // per] + (spread / np.sqrt(dim)) * noise)
    return faces, centres


def new_faces(rng: np.random.Generator, centres: np.ndarray, spread: float) -> np.ndarray:
    noise = rng.standard_normal(centres.shape, dtype=np.float32)
    return unit(centres + (spread / np.sqrt(centres.shape[1])) * noise)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def per_query(index: object, queries: np.ndarray, k: int) -> tuple[list[float], np.ndarray]:
    """Milliseconds of each single-query search (after one warm-up) and the ids found."""
    index.search(queries[:1], k)  # type: ignore[attr-defined]
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        _, ids = index.search(q[None], k)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - start) * 1000)
        found.append(ids[0])
    return times, np.stack(found)


def p(times: list[float], q: float) -> float:
    return float(np.percentile(times, q))


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, float]:
    at1 = float((found[:, 0] == truth[:, 0]).mean())
    atk = float(
        np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)])
    )
    return at1, atk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--per-person", type=int, default=10)
    parser.add_argument("--spread", type=float, default=0.42)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--add", type=int, default=10_000)
    parser.add_argument("--methods", nargs="+", default=["ivf"], help="ivf and/or hnsw")
    parser.add_argument("--ef-search", type=int, nargs="+", default=None, help="HNSW beams")
    parser.add_argument("--m", type=int, default=None, help="HNSW M")
    parser.add_argument("--ef-construction", type=int, default=None)
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists")
    parser.add_argument("--nprobe", type=int, nargs="+", default=None, help="IVF lists probed")
    parser.add_argument("--codes", default=None, help="IVF codes (faiss factory: PQ32x4fs, SQ8)")
    parser.add_argument("--threads", type=int, default=None, help="faiss OpenMP threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import faiss

    from facemetric.gallery.approximate import ApproximateIndex, params_for
    from facemetric.gallery.index import ExactIndex

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    faces, centres = synthetic_people(rng, args.size, args.dim, args.per_person, args.spread)
    ids = np.arange(args.size, dtype=np.int64) * 3 + 7  # face ids are not rows
    known = new_faces(rng, centres[rng.choice(len(centres), args.queries)], args.spread)
    strangers = unit(rng.standard_normal((args.queries, args.dim), dtype=np.float32))
    print(
        f"{args.size:,} faces x {args.dim} ({len(centres):,} people, spread {args.spread}: "
        f"same-person cosine ~{float(np.mean(np.sum(faces[:-1:2] * faces[1::2], 1)[:1000])):.2f}"
        f"), {args.queries} probes of known people + {args.queries} strangers, k={args.k}; "
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads; "
        f"generated in {time.perf_counter() - start:.1f} s"
    )
    print("machine shared with other agents' tests and benchmarks: timings are noisy")

    before = rss_bytes()
    start = time.perf_counter()
    exact = ExactIndex(ids, faces)
    exact_build = time.perf_counter() - start
    exact_mem = rss_bytes() - before
    t_exact, truth = per_query(exact, known, args.k)
    _, truth_strangers = exact.search(strangers, args.k)
    per_m = 1_000_000 / args.size / 2**20
    print(
        f"exact    build {exact_build:6.1f} s  p50 {p(t_exact, 50):7.2f} ms  "
        f"p90 {p(t_exact, 90):7.2f} ms  memory {exact.memory_bytes() * per_m:6.0f} MiB/M "
        f"(RSS +{exact_mem * per_m:.0f} MiB/M)",
        flush=True,
    )

    for method in args.methods:
        params = params_for(method, args.size, args.dim)
        if method == "hnsw":
            given = (("M", args.m), ("efConstruction", args.ef_construction))
            params.update({k: v for k, v in given if v})
            sweep = [("efSearch", v) for v in (args.ef_search or [params["efSearch"]])]
        else:
            given = (("nlist", args.nlist), ("codes", args.codes))
            params.update({k: v for k, v in given if v})
            sweep = [("nprobe", v) for v in (args.nprobe or [params["nprobe"]])]
        before = rss_bytes()
        start = time.perf_counter()
        index = ApproximateIndex(ids, faces, method, 0, background=False, params=params)
        build = time.perf_counter() - start
        grown = rss_bytes() - before
        cand = index._cand
        assert cand is not None
        built = {k: v for k, v in params.items() if k not in ("efSearch", "nprobe")}
        print(
            f"{method:<8} build {build:6.1f} s  {built}  memory {index.memory_bytes() * per_m:.0f}"
            f" MiB/M (float32 for re-scoring {index.slots.memory_bytes() * per_m:.0f}, faiss "
            f"{cand.memory_bytes() * per_m:.0f}; RSS +{grown * per_m:.0f} MiB/M)",
            flush=True,
        )
        for name, value in sweep:
            cand._params[name] = value  # type: ignore[attr-defined]
            if method == "ivf":
                cand.index.nprobe = value  # type: ignore[attr-defined]
            times, found = per_query(index, known, args.k)
            at1, atk = recall(found, truth, args.k)
            _, found_s = index.search(strangers, args.k)
            s1, _ = recall(found_s, truth_strangers, args.k)
            print(
                f"  {name} {value:<4} p50 {p(times, 50):6.2f} ms  p90 {p(times, 90):6.2f} ms  "
                f"recall@1 {at1:.3f}  recall@{args.k} {atk:.3f}  strangers' recall@1 {s1:.3f}  "
                f"exact/approx p50 {p(t_exact, 50) / p(times, 50):5.1f}x",
                flush=True,
            )
        if args.add:
            more, more_centres = synthetic_people(
                rng, args.add, args.dim, args.per_person, args.spread
            )
            more_ids = ids[-1] + 3 * np.arange(1, args.add + 1, dtype=np.int64)
            start = time.perf_counter()
            index.add(more_ids, more)
            t_add = time.perf_counter() - start
            probe = new_faces(rng, more_centres[:50], args.spread)
            _, got = index.search(probe, 1)
            mine = np.isin(got[:, 0], more_ids).mean()
            start = time.perf_counter()
            index.remove(more_ids)
            t_remove = time.perf_counter() - start
            print(
                f"  add {args.add:,} faces to the {args.size:,}: {t_add * 1000:.0f} ms without a "
                f"rebuild (new people found at once: {mine:.2f}); removing them again: "
                f"{t_remove * 1000:.0f} ms",
                flush=True,
            )
        del index, cand


if __name__ == "__main__":
    main()
