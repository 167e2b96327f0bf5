"""CLI for the data stage (placeholder until the stage's issue lands)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add this stage's subcommands to the top-level parser."""
    del sub  # nothing registered yet
