"""Notifications against real servers: Debian's mosquitto broker (started here on a free port)
watched by a paho subscriber, and a local HTTP receiver for webhooks; both also down first and
up later (the messages wait, are retried and arrive), and credentials never shown."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from facemetric.events.model import Event
from facemetric.events.notify import FanOut, display_target
from webutil import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
needs_mosquitto = pytest.mark.skipif(
    not Path(MOSQUITTO).exists(), reason="Debian's mosquitto is not installed (make apt)"
)
T0 = 1_764_750_000.0


def event(track: int = 1, person: str | None = "Eileen Collins", eid: int | None = 7) -> Event:
    return Event(
        camera="front door",
        person=person,
        first_seen=T0,
        last_seen=T0 + 4.5,
        similarity=0.8123,
        track_id=track,
        frames=12,
        nearest=person or "Ann",
        snapshot=b"\xff\xd8fake-jpeg\xff\xd9",
        id=eid,
        closed=True,
    )


def wait_for(check: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ---- a real broker ------------------------------------------------------------------------------
@contextmanager
def mosquitto(tmp_path: Path, port: int | None = None) -> Iterator[int]:
    port = port or free_port()
    conf = tmp_path / f"mosquitto-{port}.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    with open(tmp_path / f"mosquitto-{port}.log", "w") as log:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        import socket

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(up, 10, "mosquitto to listen")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


class Subscriber:
    """A paho client subscribed to everything, keeping (topic, payload, retain)."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe("#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self.lock:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@needs_mosquitto
def test_mqtt_topics_retained_last_seen_and_home_assistant_discovery(tmp_path: Path) -> None:
    from facemetric.events.mqtt import MqttNotifier

    with mosquitto(tmp_path) as port:
        sub = Subscriber(port)
        time.sleep(0.3)
        notifier = MqttNotifier(f"mqtt://127.0.0.1:{port}", people=["Ann"])
        ev = event()
        sent = time.monotonic()
        notifier.update(ev)  # the opening
        notifier.update(ev)  # a later improvement: not told again
        notifier.close_event(ev)
        assert notifier.flush(15)
        latency = time.monotonic() - sent
        payloads = wait_for(
            lambda: len(sub.on("facemetric/events")) >= 2 and sub.on("facemetric/events")
        )
        kinds = [json.loads(p)["type"] for p, _ in payloads]
        assert kinds == ["new", "end"]
        end = json.loads(payloads[1][0])
        assert end["event"]["person"] == "Eileen Collins" and end["event"]["camera"] == "front door"
        assert end["snapshot_path"] == "/api/events/7/snapshot.jpg"
        topic = "facemetric/camera/front_door/person/eileen_collins"
        # its own topic's messages may arrive after the events topic's: wait for them too
        per = wait_for(lambda: len(sub.on(topic)) >= 2 and sub.on(topic))
        assert len(per) == 2
        # Home Assistant discovery: people of the gallery at start and anyone seen since
        ann = wait_for(lambda: sub.on("homeassistant/sensor/facemetric/ann/config"))
        config = json.loads(ann[0][0])
        assert config["name"] == "Ann" and config["device_class"] == "timestamp"
        assert config["state_topic"] == "facemetric/person/ann/last_seen"
        assert config["availability_topic"] == "facemetric/status"
        eileen = json.loads(sub.on("homeassistant/sensor/facemetric/eileen_collins/config")[0][0])
        assert eileen["unique_id"] == "facemetric_eileen_collins_last_seen"
        assert sub.on("facemetric/status")[-1][0] == b"online"
        snap = wait_for(lambda: sub.on("facemetric/camera/front_door/snapshot"))
        assert snap[-1][0] == ev.snapshot
        sub.close()

        late = Subscriber(port)  # retained: someone subscribing later knows at once
        last = wait_for(lambda: late.on("facemetric/person/eileen_collins/last_seen"))
        data, retained = last[-1]
        assert retained and json.loads(data)["camera"] == "front door"
        assert json.loads(data)["last_seen"] == "2025-12-03T08:20:04.500Z"
        assert wait_for(lambda: late.on("homeassistant/sensor/facemetric/ann/config"))[0][1]
        status = notifier.status()
        assert status["state"] == "ok" and status["sent"] == 2 and status["queued"] == 0
        notifier.close()
        # the retained "online" is there already: wait for what comes after it
        said = wait_for(
            lambda: (s := late.on("facemetric/status")) and s[-1][0] == b"offline" and s
        )
        assert said[-1][0] == b"offline"
        late.close()
    print(f"\nmqtt: close_event -> broker acknowledged both messages in {latency * 1000:.0f} ms")


@needs_mosquitto
def test_mqtt_broker_down_then_up_is_reported_and_retried(tmp_path: Path) -> None:
    from facemetric.events.mqtt import MqttNotifier

    port = free_port()
    notifier = MqttNotifier(f"mqtt://ada:s3cret-pw@127.0.0.1:{port}", retry_min=0.2)
    try:
        notifier.close_event(event())
        status = wait_for(
            lambda: "cannot connect" in (notifier.status()["error"] or "") and notifier.status(),
            15,
            "the failure reported",
        )
        assert status["state"] in ("connecting", "retrying") and status["queued"] == 1
        assert "s3cret" not in json.dumps(status) and status["target"].startswith("mqtt://ada:***@")
        with mosquitto(tmp_path, port):  # the broker comes up: the waiting message goes out
            sub = Subscriber(port)
            wait_for(lambda: notifier.status()["sent"] == 1, 30, "delivery after the broker is up")
            assert notifier.status()["state"] == "ok"
            sub.close()
    finally:
        notifier.close(timeout=1)


def test_notifier_urls_are_shown_without_secrets() -> None:
    assert display_target("mqtt://ada:pw@broker.lan:1883") == "mqtt://ada:***@broker.lan:1883"
    assert display_target("https://hooks.example/T0/B1/secret?x=1") == "https://hooks.example/..."
    assert display_target("http://127.0.0.1:9/") == "http://127.0.0.1:9"


# ---- a real HTTP receiver -----------------------------------------------------------------------
class Receiver:
    """A local HTTP server recording POSTed JSON; answers ``fail_first`` times with 503."""

    def __init__(self, port: int = 0, fail_first: int = 0, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.fail_first = fail_first
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.times.append(time.monotonic())
                if owner.fail_first > 0:
                    owner.fail_first -= 1
                    self.send_response(503)
                else:
                    owner.bodies.append(json.loads(body))
                    owner.headers.append(dict(self.headers))
                    owner.raw = body
                    self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook/s3cret-path"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_posts_json_retries_5xx_with_backoff_and_signs() -> None:
    import hashlib
    import hmac

    from facemetric.events.webhook import WebhookNotifier

    receiver = Receiver(fail_first=2)
    notifier = WebhookNotifier(receiver.url, secret="k", retry_min=0.2)
    try:
        queued = time.monotonic()
        notifier.close_event(event())
        wait_for(lambda: receiver.bodies, 15, "the webhook delivery")
        assert len(receiver.times) == 3  # two 503s, then delivered
        gaps = [b - a for a, b in zip(receiver.times, receiver.times[1:], strict=False)]
        assert gaps[1] > gaps[0] * 1.5  # backoff doubles (0.2 s, 0.4 s)
        body = receiver.bodies[0]
        assert body["type"] == "end" and body["event"]["person"] == "Eileen Collins"
        signature = hmac.new(b"k", receiver.raw, hashlib.sha256).hexdigest()
        assert receiver.headers[0]["X-Facemetric-Signature"] == f"sha256={signature}"
        # the receiver has the body before the notifier has read its answer: wait for that too
        status = wait_for(lambda: (st := notifier.status())["sent"] == 1 and st, 15, "sent")
        assert status["state"] == "ok" and status["sent"] == 1 and status["retries"] == 2
        assert "s3cret" not in json.dumps(status)
        print(
            f"\nwebhook: 2 x 503 then 200; retries after {gaps[0]:.2f} s and {gaps[1]:.2f} s, "
            f"delivered {receiver.times[-1] - queued:.2f} s after the event closed"
        )
    finally:
        notifier.close()
        receiver.close()


def test_webhook_down_then_up_and_4xx_dropped() -> None:
    from facemetric.events.webhook import WebhookNotifier

    port = free_port()
    notifier = WebhookNotifier(f"http://127.0.0.1:{port}/hook", retry_min=0.2, retry_max=0.5)
    try:
        start = time.perf_counter()
        for i in range(3):
            notifier.close_event(event(track=i))
        assert time.perf_counter() - start < 0.5  # never waits for the network
        status = wait_for(lambda: notifier.status()["error"] and notifier.status(), 10)
        assert status["state"] == "retrying" and "cannot reach" in status["error"]
        assert status["queued"] == 3
        receiver = Receiver(port=port)
        try:
            wait_for(lambda: len(receiver.bodies) == 3, 15, "the 3 queued deliveries")
            assert [b["event"]["track_id"] for b in receiver.bodies] == [0, 1, 2]  # in order
            assert notifier.status()["state"] == "ok"
            receiver.status = 400  # refused for good: dropped, not retried
            notifier.close_event(event(track=9))
            wait_for(lambda: notifier.status()["failed"] == 1, 10)
            assert notifier.status()["queued"] == 0 and len(receiver.times) == 4
        finally:
            receiver.close()
    finally:
        notifier.close(timeout=1)


def test_fan_out_keeps_going_when_a_sink_fails() -> None:
    got: list[str] = []

    class Broken:
        def update(self, e: Event) -> None:
            raise RuntimeError("boom")

        close_event = update

        def close(self) -> None:
            raise RuntimeError("boom")

    class Good:
        def update(self, e: Event) -> None:
            got.append("update")

        def close_event(self, e: Event) -> None:
            got.append("close_event")

        def close(self) -> None:
            got.append("close")

    sink = FanOut([Broken(), Good()])
    sink.update(event())
    sink.close_event(event())
    sink.close()
    assert got == ["update", "close_event", "close"]


def test_queue_is_bounded_oldest_dropped() -> None:
    from facemetric.events.webhook import WebhookNotifier

    notifier = WebhookNotifier(f"http://127.0.0.1:{free_port()}/", max_queue=5, retry_min=5)
    try:
        for i in range(20):
            notifier.close_event(event(track=i))
        status = notifier.status()
        assert status["queued"] <= 5 and status["dropped"] >= 15
    finally:
        notifier.close(timeout=0.2)


def test_webhook_credentials_in_the_url_are_basic_auth() -> None:
    import base64

    from facemetric.events.webhook import WebhookNotifier

    receiver = Receiver()
    url = receiver.url.replace("http://", "http://hook%40user:p%3Ass@")
    notifier = WebhookNotifier(url)
    try:
        notifier.close_event(event())
        wait_for(lambda: receiver.bodies, 10, "the delivery")
        expected = base64.b64encode(b"hook@user:p:ss").decode()
        assert receiver.headers[0]["Authorization"] == f"Basic {expected}"
        assert "p%3Ass" not in json.dumps(notifier.status())
    finally:
        notifier.close()
        receiver.close()


def test_webhook_body_takes_numpy_values() -> None:
    import numpy as np

    from facemetric.events.webhook import WebhookNotifier

    receiver = Receiver()
    notifier = WebhookNotifier(receiver.url)
    try:
        ev = event()
        ev.decision = {"threshold": np.float32(0.5)}
        ev.similarity = np.float32(0.75)  # type: ignore[assignment]
        notifier.close_event(ev)
        wait_for(lambda: receiver.bodies, 10, "the delivery")
        assert receiver.bodies[0]["event"]["decision"] == {"threshold": 0.5}
    finally:
        notifier.close()
        receiver.close()
