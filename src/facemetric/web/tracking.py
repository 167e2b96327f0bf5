"""Kept for imports written before tracking moved to ``facemetric.tracking`` (cameras and the
event builder share it with the live page)."""

from facemetric.tracking import Track, Tracker, iou

__all__ = ["Track", "Tracker", "iou"]
