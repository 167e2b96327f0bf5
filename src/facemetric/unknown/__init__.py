"""Faces nobody matched: kept (when asked), grouped incrementally into suggested people, and
named, merged, split or dismissed by the user (``facemetric unknown``, /api/unknown, the
"Unknown faces" page)."""

from facemetric.unknown.grouping import DEFAULT_THRESHOLD, Grouper, Placement
from facemetric.unknown.keeper import UnknownKeeper
from facemetric.unknown.store import Named, UnknownFace, UnknownGroup, UnknownStore

__all__ = [
    "DEFAULT_THRESHOLD",
    "Grouper",
    "Named",
    "Placement",
    "UnknownFace",
    "UnknownGroup",
    "UnknownKeeper",
    "UnknownStore",
]
