"""Issue 23: limits that did not hold in an attack run. Each test sends what got through (bombs
answered as unreadable, foreign pages spending CPU, a large head in one write, streams past the
connection limit) and checks the answer; in process where the app decides, against a real
``facemetric serve`` where the connection and protocol layer does."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bombs import jpeg_claiming, png_of_zeros
from facemetric.web.app import create_app
from webutil import TOKEN, Server, astronaut, encode, raw_exchange, running_server, web_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {
        "zeros.png": png_of_zeros(20_000, 20_000),  # 390 KB, 400 Mpx
        "claims-65000.jpg": jpeg_claiming(65_000, 65_000),
        "claims-12000.jpg": jpeg_claiming(12_000, 9_000),
    }


@pytest.fixture
def client(tmp_path: Path, untrained_tiny_checkpoint: Path):
    with TestClient(create_app(web_settings(tmp_path, untrained_tiny_checkpoint))) as c:
        yield c


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


# ---- 3. over the pixel budget is one answer everywhere ----------------------------------------
def test_bombs_get_the_answer_of_any_image_too_large(
    client: TestClient, bombs: dict[str, bytes]
) -> None:
    """Bombs got 415 "unreadable" (stream: bad_image) and were skipped in an enrolment with a
    good photo (201), while a 25 Mpx PNG got 413 and refused the whole request."""
    good = ("good.png", _png(astronaut()), "image/png")
    for name, data in bombs.items():
        r = client.post("/api/identify", files={"file": (name, data, "image/png")})
        assert r.status_code == 413, (name, r.text)
        assert name in r.json()["detail"]
        files = [("files", good), ("files", (name, data, "image/png"))]
        r = client.post("/api/enroll/preview", files=files)
        assert r.status_code == 413, (name, r.text)
        r = client.post("/api/people", data={"name": "mixed"}, files=files, headers=AUTH)
        assert r.status_code == 413, (name, r.text)
        assert client.get("/api/people").json() == []
    with client.websocket_connect("/ws/stream") as ws:
        ws.receive_json()
        for data in bombs.values():
            ws.send_bytes(data)
            err = ws.receive_json()
            assert err["type"] == "error" and err["code"] == "frame_too_large", err
        ws.send_bytes(encode(astronaut()))
        assert ws.receive_json()["type"] == "result"  # the stream goes on


# ---- foreign pages may not spend the server's CPU -----------------------------------------------
@pytest.mark.parametrize("path", ["/api/identify", "/api/enroll/preview"])
def test_foreign_origin_may_not_post_photos(client: TestClient, path: str) -> None:
    """Any page could make a visitor's browser POST photos here (no token needed): the answer
    was unreadable to it, but the server decoded and searched them."""
    field = "file" if path == "/api/identify" else "files"
    photo = ("a.png", _png(astronaut()), "image/png")
    for origin in ("https://evil.example", "null", "http://127.0.0.1:1"):
        r = client.post(path, files=[(field, photo)], headers={"origin": origin})
        assert r.status_code == 403, (origin, r.text)
        assert origin in r.json()["detail"] and "cors_origins" in r.json()["detail"]
    assert client.post(path, files=[(field, photo)]).status_code == 200  # not a browser
    own = client.post(path, files=[(field, photo)], headers={"origin": "http://testserver"})
    assert own.status_code == 200, own.text
    r = client.post(
        "/api/people", data={"name": "x"}, files=[("files", photo)],
        headers={**AUTH, "origin": "https://evil.example"},
    )  # fmt: skip
    assert r.status_code == 403 and client.get("/api/people").json() == []
    assert client.get("/api/people", headers={"origin": "https://evil.example"}).status_code == 200


def test_origins_in_cors_origins_may_post(tmp_path: Path, untrained_tiny_checkpoint: Path) -> None:
    s = web_settings(tmp_path, untrained_tiny_checkpoint, cors_origins=["https://app.example"])
    photo = ("a.png", _png(astronaut()), "image/png")
    with TestClient(create_app(s)) as c:
        ok = c.post(
            "/api/identify", files={"file": photo}, headers={"origin": "https://app.example"}
        )
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"]
        bad = c.post(
            "/api/identify", files={"file": photo}, headers={"origin": "https://b.example"}
        )
        assert bad.status_code == 403
        preflight = c.options(
            "/api/identify",
            headers={"origin": "https://app.example", "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 200


# ---- 1. streams count against max_connections (in process) --------------------------------------
def test_streams_and_requests_share_max_connections(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    from starlette.websockets import WebSocketDisconnect

    s = web_settings(tmp_path, untrained_tiny_checkpoint, max_connections=2)
    with TestClient(create_app(s)) as c:
        with c.websocket_connect("/ws/stream") as one, c.websocket_connect("/ws/stream") as two:
            assert one.receive_json()["type"] == two.receive_json()["type"] == "hello"
            with (
                c.websocket_connect("/ws/stream") as third,
                pytest.raises(WebSocketDisconnect) as info,
            ):
                third.receive_json()
            assert info.value.code == 1013 and "max_connections" in info.value.reason
            busy = c.get("/api/people")
            assert busy.status_code == 503 and "max_connections" in busy.json()["detail"]
            assert busy.headers["retry-after"] == "1"
            health = c.get("/api/health")
            assert health.status_code == 200
            counts = health.json()["connections"]
            assert counts["open"] == counts["streams"] == counts["max"] == 2
            assert counts["refused_streams"] == 1 and counts["refused_requests"] == 1
            one.send_bytes(encode(astronaut()))
            assert one.receive_json()["type"] == "result"  # the streams served go on
        assert c.get("/api/people").status_code == 200  # slots free again
        with c.websocket_connect("/ws/stream") as again:
            assert again.receive_json()["type"] == "hello"
        assert c.get("/api/health").json()["connections"]["peak"] == 2


# ---- against a real server: heads in one read, streams past max_connections ---------------------
MAX_CONNECTIONS = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, untrained_tiny_checkpoint: Path):
    folder = tmp_path_factory.mktemp("limits")
    args = ("--model", str(untrained_tiny_checkpoint), "--db", str(folder / "g.db"))
    env = {"FACEMETRIC_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}
    with running_server(folder, *args, env=env) as srv:
        yield srv


def _port(srv: Server) -> int:
    return int(srv.url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"a" * 70_000 + b"\r\n",  # one 70 KB header
        b"".join(b"X-H%04d: %s\r\n" % (i, b"b" * 90) for i in range(1000)),  # 1,000 of 100 B
    ],
    ids=["one-70KB-header", "1000-headers-of-100B"],
)
def test_head_over_the_limit_in_one_write_is_400(server: Server, headers: bytes) -> None:
    """Both got 200: h11 checks its limit only while a head is incomplete."""
    head = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    answer = raw_exchange(_port(server), head + headers + b"\r\n", wait=10.0)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"max_header_bytes" in answer and b"65,536" in answer


def test_heads_within_the_limit_and_pipelined_heads(server: Server) -> None:
    port = _port(server)
    ok = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fill: " + b"c" * 60_000 + b"\r\n\r\n"
    big = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"d" * 70_000 + b"\r\n\r\n"
    answer = raw_exchange(
        port, ok + big, wait=10.0
    )  # a good head, then a large one in the same write
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert answer.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 400" in answer
    assert httpx.get(server.url + "/api/health").status_code == 200


def test_streams_past_max_connections_are_refused_and_health_answers(server: Server) -> None:
    """130 raw upgrades all got 101 and were served, while /api/health got 503."""
    import websockets

    async def attempt(results: list[str], open_now: list[int], peak: list[int]) -> None:
        try:
            async with websockets.connect(server.ws_url, open_timeout=30) as ws:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert message["type"] == "hello"
                open_now[0] += 1
                peak[0] = max(peak[0], open_now[0])
                results.append("served")
                try:
                    await asyncio.sleep(2.0)  # idle, holding its slot
                finally:
                    open_now[0] -= 1
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None, exc
            results.append(f"{exc.rcvd.code} {exc.rcvd.reason}")

    async def run() -> None:
        # max_connections idle streams first, then health and one more stream.
        holders = [await websockets.connect(server.ws_url) for _ in range(MAX_CONNECTIONS)]
        try:
            for ws in holders:
                assert json.loads(await ws.recv())["type"] == "hello"
            async with httpx.AsyncClient() as client:
                health = await client.get(server.url + "/api/health", timeout=10)
                assert health.status_code == 200, health.text
                assert health.json()["connections"]["streams"] == MAX_CONNECTIONS
                people = await client.get(server.url + "/api/people", timeout=10)
                assert people.status_code == 503 and "max_connections" in people.text
            async with websockets.connect(server.ws_url) as extra:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(extra.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert "max_connections" in closed.value.rcvd.reason
        finally:
            for ws in holders:
                await ws.close()
        # A burst of 30 at once: no more than max_connections served at the same time.
        results: list[str] = []
        open_now, peak = [0], [0]
        await asyncio.gather(*(attempt(results, open_now, peak) for _ in range(30)))
        assert len(results) == 30 and peak[0] <= MAX_CONNECTIONS
        assert results.count("served") >= MAX_CONNECTIONS
        assert all(r == "served" or r.startswith("1013 ") for r in results), results

    asyncio.run(run())
    counts = httpx.get(server.url + "/api/health").json()["connections"]
    assert counts["peak"] <= MAX_CONNECTIONS and counts["open"] == 0, counts
    assert counts["refused_streams"] >= 1
