"""Events: what handing an event over costs the recogniser, how fast the history writes and
prunes, and how long a notification takes to arrive (real mosquitto, real HTTP receiver).

- hand-over: ``HistorySink.update`` + ``close_event`` and the notifiers' ``close_event`` as the
  recogniser calls them (microseconds; the work is done on the sinks' threads)
- history: events (150 px chip PNG + 320x240 snapshot JPEG) written per second to SQLite by the
  HistorySink, the query of one page of 50, and a prune of half of them
- MQTT: ``close_event`` -> a paho subscriber on the same broker has the message (ms, p50/p95)
- webhook: ``close_event`` -> a local HTTP server has the POST (ms, p50/p95), and the retry
  timing when the receiver answers 503 twice

The machine is shared with other jobs: figures are indicative, ratios more than absolutes.

    .venv/bin/python benchmarks/events_notify.py             # 500 events, 200 notifications
    .venv/bin/python benchmarks/events_notify.py --events 100 --notify 50   # quick
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from facemetric.events.history import EventStore
from facemetric.events.model import Event
from facemetric.events.writer import HistorySink


def images() -> tuple[np.ndarray, bytes]:
    from PIL import Image
    from skimage import data

    photo = data.astronaut()
    chip = np.asarray(Image.fromarray(photo[20:220, 150:350]).resize((150, 150)))
    img = Image.fromarray(photo)
    img.thumbnail((320, 240))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return chip, buf.getvalue()


def make_event(i: int, chip: np.ndarray, snap: bytes, t0: float) -> Event:
    return Event(
        camera=("door", "hall")[i % 2],
        person="Eileen Collins" if i % 3 else None,
        first_seen=t0 + i,
        last_seen=t0 + i + 4,
        similarity=0.8,
        track_id=i,
        frames=20,
        chip=chip,
        snapshot=snap,
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_history(n: int, folder: Path) -> None:
    chip, snap = images()
    history = EventStore(folder / "events.db")
    sink = HistorySink(history)
    t0 = time.time() - 10 * n
    handed: list[float] = []
    start = time.perf_counter()
    for i in range(n):
        ev = make_event(i, chip, snap, t0)
        a = time.perf_counter()
        sink.update(ev)
        sink.close_event(ev)
        handed.append((time.perf_counter() - a) * 1e6)
    sink.flush(600)
    wall = time.perf_counter() - start
    count, size = history.totals()
    print(
        f"history (SQLite): {n} events handed over in {statistics.median(handed):.0f} us each "
        f"(p95 {pct(handed, 0.95):.0f} us); written {n / wall:.0f} events/s "
        f"({count} rows kept after merging updates, {size / count / 1024:.1f} KiB each)"
    )
    a = time.perf_counter()
    for _ in range(20):
        history.query(limit=50, person="Eileen Collins")
    print(f"history: a page of 50 by person in {(time.perf_counter() - a) / 20 * 1000:.1f} ms")
    a = time.perf_counter()
    pruned = history.prune(max_bytes=size // 2)
    print(
        f"history: prune to half the size deleted {pruned.events} events in "
        f"{(time.perf_counter() - a) * 1000:.0f} ms (secure_delete on, WAL truncated)"
    )
    sink.close()
    history.close()


def bench_mqtt(n: int, folder: Path) -> None:
    import paho.mqtt.client as mqtt

    from facemetric.events.mqtt import MqttNotifier
    from test_events_notify import mosquitto

    chip, snap = images()
    with mosquitto(folder) as port:
        got: dict[int, float] = {}
        ready = threading.Event()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

        def on_message(client: object, userdata: object, msg: object) -> None:
            import json

            data = json.loads(msg.payload)  # type: ignore[attr-defined]
            got[data["event"]["track_id"]] = time.perf_counter()

        sub.on_message = on_message
        sub.on_subscribe = lambda *a: ready.set()
        sub.on_connect = lambda c, *a: c.subscribe("facemetric/events", qos=1)
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        ready.wait(10)
        notifier = MqttNotifier(f"mqtt://127.0.0.1:{port}", discovery_prefix=None)
        time.sleep(0.5)
        sent: dict[int, float] = {}
        for i in range(n):
            ev = make_event(i, chip, snap, time.time())
            sent[i] = time.perf_counter()
            notifier.close_event(ev)
            time.sleep(0.01)
        notifier.flush(60)
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        lat = [(got[i] - sent[i]) * 1000 for i in sent if i in got]
        print(
            f"mqtt (mosquitto on 127.0.0.1): {len(lat)}/{n} events received, close_event -> "
            f"subscriber p50 {statistics.median(lat):.1f} ms, p95 {pct(lat, 0.95):.1f} ms "
            "(4 publishes each, QoS 1, a broker with its default Nagle setting)"
        )
        notifier.close()
        sub.disconnect()
        sub.loop_stop()


def bench_webhook(n: int) -> None:
    from facemetric.events.webhook import WebhookNotifier
    from test_events_notify import Receiver

    chip, snap = images()
    receiver = Receiver()
    notifier = WebhookNotifier(receiver.url)
    sent = []
    for i in range(n):
        sent.append(time.perf_counter())
        notifier.close_event(make_event(i, chip, snap, time.time()))
        time.sleep(0.01)
    notifier.flush(60)
    # the receiver records time.monotonic(); perf_counter and monotonic share a clock on Linux
    lat = [(r - s) * 1000 for s, r in zip(sent, receiver.times, strict=False)]
    print(
        f"webhook (local HTTP server): {len(receiver.bodies)}/{n} delivered, close_event -> "
        f"received p50 {statistics.median(lat):.1f} ms, p95 {pct(lat, 0.95):.1f} ms"
    )
    notifier.close()
    receiver.close()
    receiver = Receiver(fail_first=2)
    notifier = WebhookNotifier(receiver.url)
    queued = time.monotonic()
    notifier.close_event(make_event(0, chip, snap, time.time()))
    notifier.flush(30)
    t = receiver.times
    print(
        f"webhook retry: 503, 503, then 200: attempts at +{(t[0] - queued):.2f} s, "
        f"+{(t[1] - queued):.2f} s, +{(t[2] - queued):.2f} s (backoff 0.5 s doubling to 30 s)"
    )
    notifier.close()
    receiver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--notify", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_history(args.events, Path(tmp))
        bench_mqtt(args.notify, Path(tmp))
        bench_webhook(args.notify)


if __name__ == "__main__":
    main()
