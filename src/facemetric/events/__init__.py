"""Events: tracks of recognised (or unknown) faces become events that are stored, listed and
notified."""

from facemetric.events.model import Event, EventSink, iso

__all__ = ["Event", "EventSink", "iso"]
