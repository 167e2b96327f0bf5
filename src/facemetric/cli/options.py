"""What the commands over a gallery share: their ``--db``/``--model``/``--engine``/``--detector``
flags (one help text each) and what those flags open (the store, a ``Recognizer``), so that
``gallery ...``, ``identify``, ``cluster`` and the corrections say and check them alike."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from facemetric.errors import ConfigError

# models.inference.Engine's names, without importing the models when the parser is built
ENGINES = ("auto", "torch", "onnx")
DB_HELP = (
    "gallery: a SQLite file or postgresql://USER:PASSWORD@HOST:PORT/DBNAME (default: "
    "$FACEMETRIC_DB, else $FACEMETRIC_HOME/gallery.db)"
)
MODEL_HELP = (
    "checkpoint, run folder, pretrained name (dlib) or 'best' (default: the promoted model, "
    "else dlib)"
)


def add_model_options(p: argparse.ArgumentParser, detect: bool = True, db: bool = True) -> None:
    """``--db`` (unless ``db=False``), ``--model``, ``--engine`` and ``--detector`` (unless
    ``detect=False``)."""
    if db:
        p.add_argument("--db", metavar="PATH", help=DB_HELP)
    p.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="inference engine: auto uses ONNX Runtime when a fresh .onnx sits beside the "
        "checkpoint, else PyTorch (default auto)",
    )
    if detect:
        p.add_argument(
            "--detector", default="retinaface", help="face detector (default retinaface)"
        )


@dataclass(frozen=True)
class GalleryOptions:
    """What every gallery command shares: the store, the model and how to find faces."""

    db: str | None = None
    model: str | None = None
    engine: str = "auto"
    detector: str = "retinaface"
    threshold: float | None = None
    top_k: int = 3
    margin: float | None = None  # the open-set decision's settings (None: shipped defaults)
    fpir: float | None = None
    agree: int | None = None

    def decision(self) -> Any:
        """The decision's settings with the flags given (``facemetric.recognize.decision``)."""
        from facemetric.recognize.decision import DecisionSettings

        given: dict[str, Any] = {"margin": self.margin, "fpir": self.fpir, "agree": self.agree}
        return DecisionSettings(**{k: v for k, v in given.items() if v is not None})

    def check_top_k(self) -> None:
        """``ConfigError`` for a ``--top-k`` below 1 (said before the model loads)."""
        if self.top_k < 1:
            raise ConfigError(f"--top-k: must be at least 1, got {self.top_k}")


def gallery_options(args: argparse.Namespace) -> GalleryOptions:
    """The shared flags of a parsed command (those it does not have take their defaults)."""
    return GalleryOptions(
        db=args.db,
        model=args.model,
        engine=getattr(args, "engine", "auto"),
        detector=getattr(args, "detector", "retinaface"),
        threshold=getattr(args, "threshold", None),
        top_k=getattr(args, "top_k", 3),
        margin=getattr(args, "margin", None),
        fpir=getattr(args, "fpir", None),
        agree=getattr(args, "agree", None),
    )


def open_store(opts: GalleryOptions, create: bool = False) -> Any:
    """The gallery; commands that only read or remove never create one."""
    from facemetric.gallery.store import GalleryStore
    from facemetric.paths import default_gallery_path

    return GalleryStore(opts.db if opts.db else default_gallery_path(), create=create)


def open_recognizer(opts: GalleryOptions, create: bool = False) -> Any:
    """A ``Recognizer`` over the ``--db`` gallery with the ``--model`` and decision flags."""
    from facemetric.recognize.recognizer import Recognizer

    opts.check_top_k()
    return Recognizer.from_paths(
        opts.model,
        opts.db,
        engine=opts.engine,  # type: ignore[arg-type]
        detector=opts.detector,
        create=create,
        threshold=opts.threshold,
        top_k=opts.top_k,
        decision=opts.decision(),
    )


def warn_uncalibrated(rec: Any) -> None:
    """One line on stderr when matches are decided by a threshold never calibrated."""
    warning = rec.threshold_warning()
    if warning:
        print(f"facemetric: warning: {warning}", file=sys.stderr)


def check_inputs(args: argparse.Namespace, *paths: str) -> None:
    """Paths, model and detector checked before the model loads."""
    from facemetric import catalog
    from facemetric.cli.checks import need_model, need_paths

    need_paths(paths)
    need_model(getattr(args, "model", None))
    catalog.check_name(getattr(args, "detector", None), catalog.DETECTORS, "--detector")
