"""What each model by name costs: ms a face at batch 1 and 16, and the gallery's bytes a face.

Every model runs as the product runs it (``load_embedder``: ONNX Runtime when exported) on the
same random crops of its own input size, interleaved round by round so that load on a shared
machine hits every model alike; the median over rounds is printed, with the ratio to the first
model (the baseline, ``dlib``)::

    .venv/bin/python benchmarks/model_speed.py dlib dlib:flip faceres dlib+faceres \\
        dlib+faceres:flip --rounds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from facemetric.models.loading import load_embedder


def per_face_ms(emb: object, faces: np.ndarray, seconds: float) -> float:
    emb.embed(faces)  # type: ignore[attr-defined]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        emb.embed(faces)  # type: ignore[attr-defined]
        n += len(faces)
    return (time.perf_counter() - start) * 1000 / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.5, help="per model, batch and round")
    args = p.parse_args()
    embs = {m: load_embedder(m) for m in args.models}
    rng = np.random.default_rng(0)
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for m, e in embs.items():
            size = e.spec.input_size
            for batch in (1, 16):
                faces = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
                times.setdefault((m, batch), []).append(per_face_ms(e, faces, args.seconds))
    base = args.models[0]
    print(
        f"{'model':<20} {'engine':<14} {'b1 ms/face':>11} {'b16 ms/face':>12} {'x base':>7} "
        f"{'dim':>5} {'bytes/face':>10}"
    )
    for m, e in embs.items():
        b1 = float(np.median(times[(m, 1)]))
        b16 = float(np.median(times[(m, 16)]))
        ratio = b1 / float(np.median(times[(base, 1)]))
        dim = e.spec.embedding_dim
        print(
            f"{m:<20} {type(e).__name__:<14} {b1:>11.1f} {b16:>12.1f} {ratio:>7.2f} "
            f"{dim:>5} {dim * 4:>10}"
        )


if __name__ == "__main__":
    main()
