"""CLI for ``facemetric export MODEL --onnx``: a model exported for fast inference, checked
against PyTorch (``facemetric.models.export``)."""

from __future__ import annotations

import argparse
from typing import Any

from facemetric.errors import ConfigError


def cmd_export_model(args: argparse.Namespace) -> int:
    if not args.onnx:
        raise ConfigError("export: choose a format; only --onnx exists for now")
    from facemetric.models.export import export_onnx

    report = export_onnx(args.model_path, out=args.out, opset=args.opset)
    print(
        f"wrote {report.path} (opset {report.opset}); max abs difference to PyTorch "
        f"{report.max_abs_diff:.2e}"
    )
    return 0


def register(sub: Any) -> None:
    """Add ``export`` to the top-level parser."""
    p = sub.add_parser(
        "export",
        help="export a model for fast inference (ONNX)",
        description="Export MODEL to ONNX, checked against PyTorch on random input.",
    )
    p.add_argument(
        "model_path", metavar="MODEL", help="checkpoint, run folder, pretrained name or 'best'"
    )
    p.add_argument("--onnx", action="store_true", help="export to ONNX (checked against PyTorch)")
    p.add_argument("--out", help="output file (default: the checkpoint with .onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    p.set_defaults(func=cmd_export_model)
