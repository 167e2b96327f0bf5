"""MQTT: events published to a broker (paho-mqtt), with Home Assistant MQTT discovery.

``mqtt://[user:password@]host[:port]`` (``mqtts://`` for TLS, port 8883). Topics, under a
prefix (default ``facemetric``); names appear in topics as slugs (``Eileen Collins`` ->
``eileen_collins``, unknown faces as ``unknown``), the real name is in the payload:

- ``PREFIX/events``: every message, ``{"type": "new"|"end", "event": {...}, ...}``
- ``PREFIX/camera/CAMERA/person/PERSON``: the same, per camera and person
- ``PREFIX/person/PERSON/last_seen`` (retained): ``{"person", "camera", "last_seen",
  "similarity", "event_id", "snapshot_path"}``, so a subscriber that comes later knows at once;
  only for a person the decision named (never for an unknown or undecided face)
- ``PREFIX/camera/CAMERA/snapshot`` (retained): the JPEG of the last event that ended there
- ``PREFIX/status`` (retained): ``online``; the broker says ``offline`` (last will) when the
  server goes away
- ``DISCOVERY/sensor/facemetric/PERSON/config`` (retained): Home Assistant discovery, so each
  person (known from the gallery at start or seen since) is a timestamp sensor "PERSON"
  (attributes: camera, similarity, event id), sent again when Home Assistant comes online
  (``DISCOVERY/status``).

Messages are QoS 1, handed in order from the notifier's queue to paho's, which sends them and
sends them again after a reconnect until the broker acknowledges each (``unacknowledged`` in
``status()``). While the broker is down paho reconnects by itself (1 s doubling to 10 s) and the
notifier's queue waits, reported ``connecting``/``retrying`` with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from facemetric import __version__
from facemetric.errors import ConfigError
from facemetric.events.notify import (
    DeliveryError,
    Queued,
    QueueNotifier,
    display_target,
    json_default,
)


def slug(name: str | None) -> str:
    """A topic- and Home-Assistant-safe id for a name: ASCII letters, digits and ``_``."""
    if name is None:
        return "unknown"
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    out = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")
    if not out or out == "unknown":
        out = (out or "person") + "_" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return out


def parse_mqtt_url(url: str) -> dict[str, Any]:
    shown = display_target(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"--mqtt {shown}: not a readable URL") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"--mqtt {shown}: use mqtt://[USER:PASSWORD@]HOST[:PORT] (or mqtts://)")
    tls = parts.scheme == "mqtts"
    return {
        "host": parts.hostname,
        "port": port or (8883 if tls else 1883),
        "tls": tls,
        "username": None if parts.username is None else unquote(parts.username),
        "password": None if parts.password is None else unquote(parts.password),
    }


class MqttNotifier(QueueNotifier):
    name = "mqtt"

    def __init__(
        self,
        url: str,
        prefix: str = "facemetric",
        discovery_prefix: str | None = "homeassistant",
        people: Callable[[], Iterable[str]] | Iterable[str] = (),
        client_id: str | None = None,
        start: bool = True,
        **queue: Any,
    ) -> None:
        import paho.mqtt.client as mqtt

        super().__init__(url, retry_max=queue.pop("retry_max", 5.0), **queue)
        self.where = parse_mqtt_url(url)
        self.prefix = prefix.strip("/") or "facemetric"
        self.discovery_prefix = discovery_prefix.strip("/") if discovery_prefix else None
        self._people = people
        self._announced: set[str] = set()
        self._connected = threading.Event()
        self._reason: str | None = "connecting"
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"facemetric-{socket.gethostname()}-{id(self):x}",
            protocol=mqtt.MQTTv311,
        )
        if self.where["username"] is not None:
            self.client.username_pw_set(self.where["username"], self.where["password"])
        if self.where["tls"]:
            self.client.tls_set()
        self.client.will_set(self.topic("status"), "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.max_queued_messages_set(max(1000, 8 * self.max_queue))
        self._acks = threading.Lock()
        self._unacked: set[int] = set()  # events' messages handed to paho, not yet acknowledged
        self._early: set[int] = set()
        if start:
            self.start()

    def start(self) -> None:
        self.client.connect_async(self.where["host"], self.where["port"], keepalive=30)
        self.client.loop_start()
        super().start()

    def topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # ---- connection (paho's thread) ------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._reason = f"broker refused the connection ({reason})"
            return
        self._reason = None
        self._announced.clear()
        sock = client.socket()
        if sock is not None and hasattr(sock, "setsockopt"):
            # small publishes back to back: without this, Nagle's algorithm and the broker's
            # delayed ACK held every other one for ~40 ms
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._publish(self.topic("status"), "online", True)
        if self.discovery_prefix:
            client.subscribe(f"{self.discovery_prefix}/status", qos=1)
            people = self._people() if callable(self._people) else self._people
            for person in people:
                self._announce(person)
        self._connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connected.clear()
        self._reason = f"disconnected from the broker ({reason})"

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._connected.clear()
        where = f"{self.where['host']}:{self.where['port']}"
        self._reason = f"cannot connect to the broker at {where}"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.payload == b"online" and self.discovery_prefix:  # Home Assistant restarted
            for person in list(self._announced):
                self._announce(person, again=True)

    # ---- Home Assistant discovery --------------------------------------------------------------
    def discovery_topic(self, person: str) -> str:
        return f"{self.discovery_prefix}/sensor/facemetric/{slug(person)}/config"

    def discovery_config(self, person: str) -> dict[str, Any]:
        sid = slug(person)
        return {
            "name": person,
            "unique_id": f"{self.prefix}_{sid}_last_seen",
            "object_id": f"{self.prefix}_{sid}_last_seen",
            "state_topic": self.topic("person", sid, "last_seen"),
            "value_template": "{{ value_json.last_seen }}",
            "json_attributes_topic": self.topic("person", sid, "last_seen"),
            "device_class": "timestamp",
            "icon": "mdi:face-recognition",
            "availability_topic": self.topic("status"),
            "device": {
                "identifiers": [f"facemetric_{self.prefix}"],
                "name": "facemetric",
                "manufacturer": "facemetric",
                "model": "face recognition",
                "sw_version": __version__,
            },
        }

    def _announce(self, person: str, again: bool = False) -> None:
        if not self.discovery_prefix or (person in self._announced and not again):
            return
        self._announced.add(person)
        payload = json.dumps(self.discovery_config(person), ensure_ascii=False)
        self._publish(self.discovery_topic(person), payload, True)

    # ---- delivery (the notifier's thread) ------------------------------------------------------
    def state(self) -> str:
        if self.error is None and not self._connected.is_set() and self._reason:
            return "connecting"
        return super().state()

    def deliver(self, item: Queued) -> None:
        if not self._connected.wait(timeout=1.0):
            raise DeliveryError(self._reason or "not connected to the broker")
        data = item.message["event"]
        person, camera = data["person"], data["camera"]
        body = json.dumps(item.message, ensure_ascii=False, default=json_default)
        publishes: list[tuple[str, Any, bool]] = [
            (self.topic("events"), body, False),
            (self.topic("camera", slug(camera), "person", slug(person)), body, False),
        ]
        if person is not None:
            self._announce(person)
        last = {
            "person": person,
            "camera": camera,
            "last_seen": data["last_seen"],
            "first_seen": data["first_seen"],
            "similarity": data["similarity"],
            "event_id": data["id"],
            "snapshot_path": item.message["snapshot_path"],
        }
        if decided(data):  # what automations act on: never an unknown or undecided face
            publishes.append(
                (self.topic("person", slug(person), "last_seen"), json.dumps(last), True)
            )
        if item.kind == "end" and item.event.snapshot is not None:
            publishes.append(
                (self.topic("camera", slug(camera), "snapshot"), bytes(item.event.snapshot), True)
            )
        # Handed to paho's QoS 1 queue, in order: it sends them, and again after a reconnect
        # until the broker acknowledges each. Waiting here for every PUBACK would cost ~40 ms an
        # event against a broker without TCP_NODELAY (mosquitto's default): Nagle's algorithm.
        import paho.mqtt.client as mqtt

        for t, p, r in publishes:
            info = self._publish(t, p, r)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                raise DeliveryError("paho's outgoing queue is full (the broker is slow)")
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise DeliveryError(f"publish refused (paho error {info.rc})", retry=False)

    def _publish(self, topic: str, payload: Any, retain: bool) -> Any:
        """QoS 1 publish, noted until acknowledged. Not under ``_acks``: paho calls
        ``_on_publish`` holding its own lock (the other order would deadlock)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._acks:
            if info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._unacked.add(info.mid)
        return info

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._acks:
            if mid in self._unacked:
                self._unacked.discard(mid)
            else:  # acknowledged before _publish noted it
                self._early.add(mid)

    def status(self) -> dict[str, Any]:
        out = super().status()
        with self._acks:
            out["unacknowledged"] = len(self._unacked)
        if out["error"] is None and self._reason and not self._connected.is_set():
            out["error"] = self._reason
        return out

    def close(self, timeout: float = 3.0) -> None:
        super().close(timeout)
        deadline = time.monotonic() + timeout
        while self._unacked and time.monotonic() < deadline:
            time.sleep(0.02)  # the broker acknowledges what was handed over
        if self._connected.is_set():
            info = self._publish(self.topic("status"), "offline", True)
            info.wait_for_publish(timeout=1.0)
        self.client.disconnect()
        self.client.loop_stop()


def decided(event: dict[str, Any]) -> bool:
    """Whether an event's JSON names a person by the open-set decision (its ``decision``
    says ``match``; an event without one is trusted on its ``person``)."""
    if event.get("person") is None:
        return False
    reason = (event.get("decision") or {}).get("reason")
    return reason in (None, "match")
