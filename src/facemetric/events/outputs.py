"""Where a server's events go: the history (with its retention) and the notifiers, as one sink.

``EventOutputs`` is what ``facemetric serve`` (and any other producer of events: cameras,
``watch``) hands events to; it is an ``EventSink`` itself (``update(event)`` /
``close_event(event)``, the same as ``outputs.sink``). It holds
the ``HistorySink`` first (so an event has its id by the time a notifier sends it, most of the
time), then MQTT and webhooks, prunes the history now and every ``prune_every`` seconds, and
reports all of them in ``status()`` (``/api/health``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from facemetric.events.history import EventStore, Pruned
from facemetric.events.model import Event, iso
from facemetric.events.notify import FanOut, QueueNotifier
from facemetric.events.writer import HistorySink
from facemetric.gallery.store import GalleryStore

log = logging.getLogger(__name__)
MB = 1024 * 1024


class EventOutputs:
    def __init__(
        self,
        store: GalleryStore,
        keep_days: float = 30.0,
        max_mb: float = 1024.0,
        mqtt: str | None = None,
        mqtt_prefix: str = "facemetric",
        discovery_prefix: str | None = "homeassistant",
        webhooks: Sequence[str] = (),
        webhook_secret: str | None = None,
        people: Callable[[], Iterable[str]] | None = None,
        prune_every: float = 600.0,
    ) -> None:
        self.history = EventStore(store)
        self.keep_days = keep_days or None
        self.max_bytes = int(max_mb * MB) if max_mb else None
        self.history_sink = HistorySink(self.history)
        self.notifiers: list[QueueNotifier] = []
        if mqtt:
            from facemetric.events.mqtt import MqttNotifier

            self.notifiers.append(
                MqttNotifier(
                    mqtt,
                    prefix=mqtt_prefix,
                    discovery_prefix=discovery_prefix or None,
                    people=people or (),
                )
            )
        for url in webhooks:
            from facemetric.events.webhook import WebhookNotifier

            self.notifiers.append(WebhookNotifier(url, secret=webhook_secret))
        self.sink = FanOut([self.history_sink, *self.notifiers])
        self.last_prune: dict[str, Any] | None = None
        self.trusted_cameras: tuple[str, ...] = ()  # their events are pruned last
        self._stop = threading.Event()
        self._pruner = threading.Thread(
            target=self._prune_loop, args=(prune_every,), name="facemetric-retention", daemon=True
        )
        self._pruner.start()

    # ---- EventSink: the outputs themselves are a sink (cameras hand events to them) ----------
    def update(self, event: Event) -> None:
        self.sink.update(event)

    def close_event(self, event: Event) -> None:
        self.sink.close_event(event)

    def prune_now(self) -> Pruned:
        """Apply the retention settings once (also done every ``prune_every`` seconds)."""
        import time

        done = self.history.prune(
            keep_days=self.keep_days, max_bytes=self.max_bytes, trusted=self.trusted_cameras
        )
        self.last_prune = {"at": iso(time.time()), "events": done.events, "bytes": done.bytes}
        if done.events:
            log.info("event retention: deleted %d events (%d bytes)", done.events, done.bytes)
        return done

    def _prune_loop(self, every: float) -> None:
        if self.keep_days is None and self.max_bytes is None:
            return
        while not self._stop.is_set():
            try:
                self.prune_now()
            except Exception as exc:  # the database away: next time
                log.warning("event retention: %s", exc)
            self._stop.wait(every)

    def status(self) -> dict[str, Any]:
        history = self.history_sink.status()
        history["keep_days"] = self.keep_days
        history["max_mb"] = None if self.max_bytes is None else self.max_bytes / MB
        history["last_prune"] = self.last_prune
        return {"history": history, "notifications": [n.status() for n in self.notifiers]}

    def close(self) -> None:
        self._stop.set()
        self.sink.close()
        self._pruner.join(timeout=2)
