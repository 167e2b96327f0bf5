"""Gallery search speed: 1 and 64 queries against 10k, 100k and 1M random unit vectors.

Back ends: ``exact`` (numpy matrix product + argpartition), ``faiss`` (IndexFlatIP with the BLAS
threshold lowered, as ``facemetric.gallery.index`` sets it), ``faiss-default`` (faiss-cpu's own
threshold of 128,000 queries, to show why it is lowered) and ``half`` (float16 scan + float32
re-ranking for few queries, exact for batches; ``auto`` picks it above 200,000 entries). Median
milliseconds per search call over ``--repeats`` calls, and each back end's ratio to exact.
Results are checked to agree::

    .venv/bin/python benchmarks/search.py
    .venv/bin/python benchmarks/search.py --sizes 10000 100000 --dims 128 --repeats 20

Goal (issue 5): one query against 1M faces in <= 50 ms (``half``, the ``auto`` choice there).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import numpy as np


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def timed(index: object, queries: np.ndarray, k: int, repeats: int, budget_s: float = 5.0) -> float:
    """Median milliseconds of ``index.search(queries, k)`` after one warm-up call: ``repeats``
    calls, fewer (at least 3) when they would take more than ``budget_s``."""
    fn = functools.partial(index.search, queries, k)  # type: ignore[attr-defined]
    fn()
    times: list[float] = []
    begin = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - begin < budget_s):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--queries", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--faiss-threads", type=int, default=None, help="OMP threads (default: the index's own)"
    )
    args = parser.parse_args()

    import faiss

    from facemetric.gallery.index import ExactIndex, FaissIndex, HalfIndex

    rng = np.random.default_rng(0)
    FaissIndex(unit(rng, 2, 8), threads=args.faiss_threads)  # sets threshold and threads
    lowered = int(faiss.cvar.distance_compute_blas_threshold)
    print(f"faiss {faiss.__version__} (BLAS threshold {lowered}), k={args.k}, ", end="")
    print(f"median of {args.repeats} calls (fewer past 5 s), ms per call, ", end="")
    print(f"{faiss.omp_get_max_threads()} OMP threads")
    header = f"{'entries':>9} {'dim':>4} {'queries':>7} {'exact':>9} {'faiss':>9} "
    header += f"{'faiss-default':>13} {'half':>9} {'faiss/exact':>11} {'default/exact':>13}"
    print(header + f" {'half/exact':>10}")
    for dim in args.dims:
        for n in args.sizes:
            gallery = unit(rng, n, dim)
            exact = ExactIndex(gallery)
            fast = FaissIndex(gallery, threads=args.faiss_threads)
            half = HalfIndex(gallery)
            for q in args.queries:
                queries = unit(rng, q, dim)
                s1, _ = exact.search(queries, args.k)
                s2, _ = fast.search(queries, args.k)
                s3, _ = half.search(queries, args.k)
                assert np.allclose(s1, s2, atol=1e-4), "faiss and exact disagree"
                assert np.allclose(s1, s3, atol=1e-5), "half and exact disagree"
                t_exact = timed(exact, queries, args.k, args.repeats)
                faiss.cvar.distance_compute_blas_threshold = lowered
                t_faiss = timed(fast, queries, args.k, args.repeats)
                faiss.cvar.distance_compute_blas_threshold = 128_000  # faiss-cpu's default
                t_default = timed(fast, queries, args.k, args.repeats)
                faiss.cvar.distance_compute_blas_threshold = lowered
                t_half = timed(half, queries, args.k, args.repeats)
                print(
                    f"{n:>9,} {dim:>4} {q:>7} {t_exact:>9.2f} {t_faiss:>9.2f} {t_default:>13.2f} "
                    f"{t_half:>9.2f} {t_faiss / t_exact:>11.2f} {t_default / t_exact:>13.2f} "
                    f"{t_half / t_exact:>10.2f}",
                    flush=True,
                )
            del exact, fast, half, gallery


if __name__ == "__main__":
    main()
