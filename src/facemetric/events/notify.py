"""Telling other systems about events: the queue every notifier shares, and a fan-out sink.

A notifier (``facemetric.events.mqtt``, ``facemetric.events.webhook``) is an ``EventSink``
whose ``update``/``close_event`` only put a message on a bounded queue; a thread of its own
delivers them in order. A delivery that fails for a reason that may pass (a broker or server
down, a timeout, a 5xx) is retried with backoff (``retry_min`` doubling to ``retry_max``) and
the notifier reports ``retrying`` with the reason in ``status()`` (``/api/health``); one that
cannot succeed (a 4xx) is logged and dropped. When the queue is full the oldest message is
dropped and counted. Nothing here ever raises into the recogniser or waits for the network.

Messages: ``{"type": "new" | "end", "event": Event.to_dict(), "snapshot_path": ...}`` when an
event opens (its first update) and when it closes.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from facemetric.events.model import Event, EventSink, iso
from facemetric.gallery.backend import redact

log = logging.getLogger(__name__)


def display_target(url: str) -> str:
    """What logs, pages and ``/api/health`` show of a notifier's URL: scheme, user, host and
    port; never a password, and the path only as ``/...`` (webhook paths often hold a
    secret)."""
    shown = redact(url)
    try:
        parts = urlsplit(shown)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("://", 1)[0] + "://(unreadable URL)"
    if ":" in host:
        host = f"[{host}]"
    user = ""
    if parts.username:
        user = f"{parts.username}:***@" if parts.password else f"{parts.username}@"
    rest = "/..." if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{user}{host}{port}{rest}"


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for what decisions may hold: numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class DeliveryError(Exception):
    """A message could not be delivered; ``retry`` says whether trying again may help."""

    def __init__(self, reason: str, retry: bool = True) -> None:
        super().__init__(reason)
        self.retry = retry


def event_message(kind: str, event: Event) -> dict[str, Any]:
    data = event.to_dict()
    eid = event.id
    return {
        "type": kind,
        "event": data,
        "snapshot_path": None if eid is None else f"/api/events/{eid}/snapshot.jpg",
        "chip_path": None if eid is None else f"/api/events/{eid}/chip.png",
    }


@dataclass
class Queued:
    kind: str
    message: dict[str, Any]
    event: Event  # the caller's object: its id may be known by the time it is delivered
    queued_at: float


class QueueNotifier:
    """The shared machinery: a bounded queue, a delivery thread, retries, status."""

    name = "notifier"

    def __init__(
        self,
        target: str,
        max_queue: int = 1000,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self.target = display_target(target)
        self.max_queue = max_queue
        self.retry_min = retry_min
        self.retry_max = retry_max
        self._queue: collections.deque[Queued] = collections.deque()
        self._open: set[tuple[str, int, float]] = set()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.retries = 0
        self.error: str | None = None
        self.last_sent: float | None = None
        self.latency_ms: float | None = None  # queued -> delivered, of the last message
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"facemetric-{self.name}", daemon=True
        )
        self._thread.start()

    # ---- EventSink -------------------------------------------------------------------------------
    def update(self, event: Event) -> None:
        key = (event.camera, int(event.track_id), float(event.first_seen))
        with self._cond:
            if key in self._open:
                return  # only the opening is told; the rest comes with the end
            self._open.add(key)
        self._put("new", event)

    def close_event(self, event: Event) -> None:
        key = (event.camera, int(event.track_id), float(event.first_seen))
        with self._cond:
            self._open.discard(key)
        self._put("end", event)

    def _put(self, kind: str, event: Event) -> None:
        try:
            item = Queued(kind, event_message(kind, event), event, time.monotonic())
        except Exception:  # a malformed event never reaches the recogniser as an error
            log.exception("%s: cannot describe event", self.name)
            return
        with self._cond:
            if self._stop:
                return
            self._queue.append(item)
            while len(self._queue) > self.max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._cond.notify_all()

    # ---- delivery --------------------------------------------------------------------------------
    def deliver(self, item: Queued) -> None:
        """Send one message (in the notifier's thread); ``DeliveryError`` when it fails."""
        raise NotImplementedError

    def _run(self) -> None:
        delay = self.retry_min
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:
                    return
                item = self._queue[0]
                self._busy = True
            if item.message["event"].get("id") is None and item.event.id is not None:
                item.message = event_message(item.kind, item.event)  # the stored id is known now
            try:
                self.deliver(item)
            except Exception as exc:
                retry = exc.retry if isinstance(exc, DeliveryError) else False
                reason = str(exc) or type(exc).__name__
                with self._cond:
                    self._busy = False
                    if not retry:
                        self._drop_head(item)
                        self.failed += 1
                        log.warning("%s %s: dropped a message: %s", self.name, self.target, reason)
                        self._cond.notify_all()
                        continue
                    if self.error is None:
                        log.warning("%s %s: %s; retrying", self.name, self.target, reason)
                    self.error = reason
                    self.retries += 1
                    self._cond.notify_all()
                    if self._stop:
                        return
                    self._cond.wait(delay)
                delay = min(self.retry_max, delay * 2)
                continue
            delay = self.retry_min
            with self._cond:
                self._drop_head(item)
                if self.error is not None:
                    log.warning("%s %s: delivering again", self.name, self.target)
                self.error = None
                self.sent += 1
                self.last_sent = time.time()
                self.latency_ms = (time.monotonic() - item.queued_at) * 1000
                self._busy = False
                self._cond.notify_all()

    def _drop_head(self, item: Queued) -> None:
        if self._queue and self._queue[0] is item:
            self._queue.popleft()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued message is delivered or dropped (True), or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "kind": self.name,
                "target": self.target,
                "state": self.state(),
                "sent": self.sent,
                "queued": len(self._queue),
                "retries": self.retries,
                "failed": self.failed,
                "dropped": self.dropped,
                "error": self.error,
                "last_sent": iso(self.last_sent),
                "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            }

    def state(self) -> str:
        return "ok" if self.error is None else "retrying"

    def close(self, timeout: float = 3.0) -> None:
        """Deliver what is queued (for up to ``timeout`` s), then stop."""
        self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)


class FanOut:
    """One ``EventSink`` that hands each event to several (history first, then notifiers); a
    sink that raises is logged and the others still get the event."""

    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self.sinks = list(sinks)

    def _each(self, method: str, *args: Any) -> None:
        for sink in self.sinks:
            try:
                getattr(sink, method)(*args)
            except Exception:
                log.exception("event sink %s.%s failed", type(sink).__name__, method)

    def update(self, event: Event) -> None:
        self._each("update", event)

    def close_event(self, event: Event) -> None:
        self._each("close_event", event)

    def close(self) -> None:
        self._each("close")
