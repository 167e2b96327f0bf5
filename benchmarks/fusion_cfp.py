"""LFW-style verification of each model on the shared CFP pairs: TAR@FAR 1e-3, AUC, accuracy.

Embeddings come from ``benchmarks/fusion_data.py``'s cache of ``../shared/data/cfp`` (the
product's detection and crops). Each pairs file has ~2,000 impostor pairs, so TAR@FAR 1e-3 rests
on the 2 highest impostor scores: read it with that in mind (accuracy is 10-fold, as
``facemetric evaluate`` reports it)::

    .venv/bin/python benchmarks/fusion_cfp.py ../shared/data/cfp
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from facemetric.evaluate import metrics as M
from facemetric.evaluate.embed import EmbeddingSet
from facemetric.evaluate.protocols import read_pairs
from fusion_data import MODELS
from openset_data import CACHE


def main(root: Path) -> None:
    print(f"{'model':<20} {'pairs':<9} {'TAR@1e-3':>9} {'TAR@1e-2':>9} {'AUC':>7} {'accuracy':>14}")
    for model in MODELS:
        path = CACHE / f"{root.resolve().name}-{model}.npz"
        if not path.exists():
            print(f"{model:<20} not embedded (fusion_data.py --no-flip leaves out the flips)")
            continue
        es = EmbeddingSet.load(path)
        row = {p: i for i, p in enumerate(es.paths)}
        for name in ("pairs_FF.tsv", "pairs_FP.tsv"):
            pairs = [
                p for p in read_pairs(root / name).pairs if p.image1 in row and p.image2 in row
            ]
            a = es.embeddings[[row[p.image1] for p in pairs]]
            b = es.embeddings[[row[p.image2] for p in pairs]]
            scores = (a * b).sum(axis=1)
            same = np.array([bool(p.same) for p in pairs])
            folds = np.array([int(p.fold) for p in pairs])
            t3 = M.tar_at_far(scores, same, 1e-3).tar
            t2 = M.tar_at_far(scores, same, 1e-2).tar
            acc = M.kfold_accuracy(scores, same, folds)
            print(
                f"{model:<20} {name[6:8]:<9} {t3:>9.1%} {t2:>9.1%} {M.auc(scores, same):>7.4f} "
                f"{acc.mean:>8.2%} ± {acc.std:.2%}"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
