"""The evaluate stage: embed folders, verification and identification metrics, reports, compare.

Re-exports only; importing this package stays light (torch and matplotlib load on use).
"""

from facemetric.evaluate.compare import CompareConfig, Comparison, compare
from facemetric.evaluate.embed import EmbeddingSet, embed_folder
from facemetric.evaluate.metrics import (
    auc,
    calibrate_threshold,
    eer,
    identification_ranks,
    kfold_accuracy,
    open_set_identification,
    rank_k_accuracy,
    roc_curve,
    tar_at_far,
    threshold_at_far,
)
from facemetric.evaluate.promote import promote
from facemetric.evaluate.protocols import (
    IdentificationSplit,
    Pair,
    PairsProtocol,
    check_pairs_images,
    read_pairs,
    split_probe_gallery,
)
from facemetric.evaluate.report import read_report, write_report
from facemetric.evaluate.run import EvaluateConfig, Evaluation, evaluate

__all__ = [
    "CompareConfig",
    "Comparison",
    "EmbeddingSet",
    "EvaluateConfig",
    "Evaluation",
    "IdentificationSplit",
    "Pair",
    "PairsProtocol",
    "auc",
    "calibrate_threshold",
    "check_pairs_images",
    "compare",
    "eer",
    "embed_folder",
    "evaluate",
    "identification_ranks",
    "kfold_accuracy",
    "open_set_identification",
    "promote",
    "rank_k_accuracy",
    "read_pairs",
    "read_report",
    "roc_curve",
    "split_probe_gallery",
    "tar_at_far",
    "threshold_at_far",
    "write_report",
]
