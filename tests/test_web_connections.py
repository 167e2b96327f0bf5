"""Issue 28, points 1-2: connections that end. Against a real ``facemetric serve`` on 127.0.0.1
(the protocol layer decides), with raw sockets and bounded loops: an error answer to an upload
still coming ends the connection; slow heads, slow uploads and streams kept alive by text
messages cannot lock the API out; ``/api/health`` stays answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from webutil import Server, running_server

MAX_CONNECTIONS = 6
MAX_IDLE = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, untrained_tiny_checkpoint: Path):
    folder = tmp_path_factory.mktemp("connections")
    args = ("--model", str(untrained_tiny_checkpoint), "--db", str(folder / "g.db"))
    env = {
        "FACEMETRIC_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "FACEMETRIC_MAX_IDLE_CONNECTIONS": str(MAX_IDLE),
        "FACEMETRIC_MAX_UPLOAD_BYTES": "100000",
        "FACEMETRIC_STREAM_IDLE_TIMEOUT": "2",
        "FACEMETRIC_BODY_TIMEOUT": "30",
    }
    with running_server(folder, *args, env=env) as srv:
        yield srv


def _port(srv: Server) -> int:
    return int(srv.url.rsplit(":", 1)[1])


def _connect(srv: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", _port(srv)), timeout=5)


def _keep_sending(sock: socket.socket, chunk: bytes, seconds: float, pause: float) -> tuple:
    """Send ``chunk`` every ``pause`` s for at most ``seconds``; return (bytes sent, answer,
    whether the server closed the connection)."""
    sock.setblocking(False)
    sent, answer, closed = 0, b"", False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not closed:
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        try:
            while data := sock.recv(65536):
                answer += data
            else:
                closed = True
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed = True
        time.sleep(pause)
    return sent, answer, closed


CHUNKED_HEAD = (
    b"POST /api/identify HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
)


def test_chunked_upload_answered_413_is_not_read_on(server: Server) -> None:
    """A chunked upload answered 413 was read on: 2 GiB taken after the answer."""
    chunk = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    with _connect(server) as sock:
        part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        sock.sendall(CHUNKED_HEAD + b"%x\r\n%s\r\n" % (len(part), part))
        sent, answer, closed = _keep_sending(sock, chunk, seconds=12.0, pause=0.0005)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"connection: close" in answer.lower()
    assert closed, f"still reading after the 413: {sent:,} bytes taken"
    assert httpx.get(server.url + "/api/health").status_code == 200


def test_body_trickled_after_an_error_answer_is_not_read_on(server: Server) -> None:
    """Bodies trickled after a 400 were still read 90 s later (each byte re-armed nothing)."""
    head = (
        b"POST /api/identify HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 50000\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    )
    started = time.monotonic()
    with _connect(server) as sock:
        sock.sendall(head)
        _, answer, closed = _keep_sending(sock, b"x", seconds=10.0, pause=0.2)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert closed and time.monotonic() - started < 6, "the connection stayed open"


def test_slow_heads_do_not_lock_out_the_api(server: Server) -> None:
    """230 slow request heads made every route 503 (uvicorn counted them); here 3 x
    max_idle_connections heads that never complete."""
    socks = []
    try:
        for _ in range(3 * MAX_IDLE):
            s = _connect(server)
            s.sendall(b"GET /api/people HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            socks.append(s)
        time.sleep(0.5)
        assert httpx.get(server.url + "/api/health", timeout=5).status_code == 200
        assert httpx.get(server.url + "/api/people", timeout=5).status_code == 200
        closed = 0
        for s in socks:
            s.settimeout(0.05)
            try:
                closed += s.recv(10) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 2 * MAX_IDLE - 5, f"only {closed} of the idle heads were closed"
    finally:
        for s in socks:
            s.close()


def test_slow_uploads_give_their_slots_to_other_clients(server: Server) -> None:
    """110 one-byte-every-2-s uploads kept /api/people at 503 until their 408 at 60 s."""
    head = (
        b"POST /api/identify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50000\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b"
    )
    socks = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for s in socks:
            s.sendall(head)
        time.sleep(0.5)
        health = httpx.get(server.url + "/api/health", timeout=5).json()["connections"]
        assert health["requests"] == MAX_CONNECTIONS, health
        time.sleep(3.0)  # past the grace: these uploads now send nothing useful
        for _ in range(MAX_CONNECTIONS):
            assert httpx.get(server.url + "/api/people", timeout=5).status_code == 200
        answers = []
        for s in socks:  # the reclaimed ones have their 408; the others wait on
            s.settimeout(1)
            with contextlib.suppress(TimeoutError):
                answers.append(s.recv(4096))
        assert sum(a.startswith(b"HTTP/1.1 408") for a in answers) >= 1, answers
        assert all(b"min_body_rate" in a for a in answers if a.startswith(b"HTTP/1.1 408"))
    finally:
        for s in socks:
            s.close()


def test_text_messages_do_not_keep_a_stream_open(server: Server) -> None:
    """One text message every 25 s kept a stream (and its slot) for ever: text reset the idle
    timer. Here text every 0.3 s, and stream_idle_timeout 2 s."""
    import websockets

    async def run() -> float:
        started = time.monotonic()
        async with websockets.connect(server.ws_url) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while time.monotonic() - started < 10:
                    await ws.send("ping")
                    await asyncio.wait_for(ws.recv(), 5)  # the error answer to text
                    await asyncio.sleep(0.3)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        return time.monotonic() - started

    assert asyncio.run(run()) < 6


def test_streams_sending_nothing_useful_give_up_their_slots(
    tmp_path: Path, untrained_tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 streams kept alive by text messages held their slots for ever. In process, with
    max_connections 2 and streams judged useless after 0.5 s (10 s in the server)."""
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from facemetric.web import limits
    from facemetric.web.app import create_app
    from webutil import web_settings

    monkeypatch.setattr(limits, "RECLAIM_STREAM_AFTER", 0.5)
    settings = web_settings(tmp_path, untrained_tiny_checkpoint, max_connections=2)
    with (
        TestClient(create_app(settings)) as client,
        client.websocket_connect("/ws/stream") as one,
        client.websocket_connect("/ws/stream") as two,
    ):
        for ws in (one, two):
            assert ws.receive_json()["type"] == "hello"
            ws.send_text("ping")  # answered with an error; not a frame
            assert ws.receive_json()["type"] == "error"
        assert client.get("/api/people").status_code == 503  # within 0.5 s: still useful
        time.sleep(0.7)
        assert client.get("/api/people").status_code == 200  # a slot was reclaimed
        closed = []
        for ws in (one, two):
            with contextlib.suppress(WebSocketDisconnect):
                ws.send_text("ping")
                ws.receive_json()
                continue
            closed.append(ws)
        assert len(closed) == 1
        health = client.get("/api/health").json()["connections"]
        assert health["reclaimed"] == 1, health
