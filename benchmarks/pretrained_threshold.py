"""The match threshold a pretrained model ships with: calibrated on every pair of a shared set.

Embeds every photo of each folder the way the product does (RetinaFace, the model's own chips,
largest face), scores ALL pairs (genuine: same folder; impostor: different folders) and prints,
per target FAR, the cosine threshold and the TAR it gives; then the same threshold's rates on the
other folders, to see how it carries over. The ``dlib`` model's threshold in
``facemetric/models/pretrained/dlib.py`` comes from::

    .venv/bin/python benchmarks/pretrained_threshold.py dlib ../shared/data/celeba-wild \\
        ../shared/data/celeba-crops --calibrate-on 0 --far 1e-3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from facemetric.evaluate import metrics as M
from facemetric.evaluate.embed import embed_folder
from facemetric.evaluate.protocols import identity_of
from facemetric.models import load_embedder


def all_pair_scores(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and same-identity flag of every unordered pair (i < j)."""
    sims = emb @ emb.T
    i, j = np.triu_indices(len(labels), k=1)
    return sims[i, j].astype(np.float64), labels[i] == labels[j]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a pretrained model name or a checkpoint")
    parser.add_argument("roots", nargs="+", type=Path, help="photo folders ROOT/person/*")
    parser.add_argument("--calibrate-on", type=int, default=0, help="index of the folder")
    parser.add_argument("--far", type=float, default=1e-3, help="target FAR to calibrate at")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()

    embedder = load_embedder(args.model)
    results: dict[str, dict] = {}
    chosen = None
    order = [args.calibrate_on] + [i for i in range(len(args.roots)) if i != args.calibrate_on]
    for index in order:
        root = args.roots[index]
        start = time.perf_counter()
        es = embed_folder(embedder, root, progress=False)
        labels = np.array([identity_of(p) for p in es.paths])
        scores, same = all_pair_scores(es.embeddings, labels)
        doc: dict = {
            "images": len(es),
            "faces_found": float(es.found.mean()),
            "genuine_pairs": int(same.sum()),
            "impostor_pairs": int((~same).sum()),
            "seconds": round(time.perf_counter() - start, 1),
            "auc": M.auc(scores, same),
        }
        print(
            f"{root}: {len(es)} images ({doc['faces_found']:.1%} with a face), "
            f"{doc['genuine_pairs']:,} genuine and {doc['impostor_pairs']:,} impostor pairs, "
            f"AUC {doc['auc']:.4f}, {doc['seconds']} s"
        )
        for far in (1e-2, 1e-3, 1e-4):
            op = M.tar_at_far(scores, same, far)
            doc[f"far_{far:g}"] = {"threshold": op.threshold, "tar": op.tar, "far": op.far}
            print(f"  FAR {far:g}: threshold {op.threshold:.4f}, TAR {op.tar:.4f}")
        if chosen is None:
            chosen = M.threshold_at_far(scores[~same], args.far)
            print(f"  -> calibrated threshold for FAR {args.far:g}: {chosen:.4f}")
        tar, far = M.rates_at(scores, same, chosen)
        doc["at_calibrated"] = {"threshold": chosen, "tar": tar, "far": far}
        print(f"  at {chosen:.4f}: TAR {tar:.4f}, FAR {far:.5f}")
        results[str(root)] = doc
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
