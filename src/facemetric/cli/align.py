"""CLI for ``facemetric data align`` (placeholder until detection and alignment land)."""

from __future__ import annotations

from typing import Any


def register(data_sub: Any) -> None:
    """Add ``align`` to the ``data`` command group's subparsers."""
    del data_sub
