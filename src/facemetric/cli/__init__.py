"""The ``facemetric`` console script: a command group whose subcommands only parse arguments.

Each stage has its own module with ``register(subparsers)``; handlers call the stage's plain
functions. User errors (``FacemetricError``) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from facemetric import __version__
from facemetric.cli.parser import Parser
from facemetric.errors import FacemetricError

# Modules registering subcommands, in the order of the data flow.
STAGES = (
    "data",
    "models",
    "train",
    "evaluate",
    "gallery",
    "identify",
    "export",
    "cluster",
    "unknown",
    "serve",
    "video",
    "events",
)


def build_parser() -> Parser:
    parser = Parser(
        prog="facemetric",
        description="Face recognition by metric learning: prepare photos, train, evaluate, "
        "build a gallery and serve a live webcam web app.",
    )
    parser.add_argument("--version", action="version", version=f"facemetric {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for stage in STAGES:
        importlib.import_module(f"facemetric.cli.{stage}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code so tests can call it in-process."""
    try:
        return _run(argv)
    except KeyboardInterrupt:  # Ctrl-C at any point, while a module loads too: no traceback
        print("facemetric: interrupted", file=sys.stderr)
        return 130


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except FacemetricError as exc:
        print(f"facemetric: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`facemetric ... | head`): not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
