"""Issue 15: what an attacker on 127.0.0.1 found. Each test sends the request that failed (memory,
cross-site use, health under load, errors and leaks) and checks the expected answer; in process
(TestClient) where the app decides, against a real ``facemetric serve`` where uvicorn does."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect

from facemetric.web.app import create_app
from facemetric.web.security import PAGE_CSP
from webutil import (
    TOKEN,
    astronaut,
    encode,
    frame_640x480,
    raw_exchange,
    running_server,
    web_settings,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SIDE = 9000


@pytest.fixture
def client(tmp_path: Path, untrained_tiny_checkpoint: Path):
    with TestClient(create_app(web_settings(tmp_path, untrained_tiny_checkpoint))) as c:
        yield c


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    """9000x9000 pixels of one colour in about 260 KB: 243 MB once decoded (the issue's bomb)."""
    buf = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (120, 110, 100)).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def png(rgb: np.ndarray) -> tuple[str, bytes, str]:
    return ("photo.png", encode(rgb, "PNG"), "image/png")


# ---- 1. memory --------------------------------------------------------------------------------
def test_huge_png_is_refused_from_its_header(client: TestClient, huge_png: bytes) -> None:
    """81 Mpx passed the old 89 Mpx limit and cost ~1.4 GB per photo; now 413 before decoding."""
    r = client.post("/api/identify", files={"file": ("big.png", huge_png, "image/png")})
    assert r.status_code == 413, r.text
    assert "big.png" in r.json()["detail"] and "9000x9000" in r.json()["detail"]
    files = [("files", (f"big{i}.png", huge_png, "image/png")) for i in range(20)]
    r = client.post("/api/enroll/preview", files=files)
    assert r.status_code == 413 and "big0.png" in r.json()["detail"]
    r = client.post("/api/people", data={"name": "x"}, files=files[:1], headers=AUTH)
    assert r.status_code == 413
    assert client.get("/api/people").json() == []
    with client.websocket_connect("/ws/stream") as ws:
        ws.receive_json()
        ws.send_bytes(huge_png)
        err = ws.receive_json()
        assert err["code"] == "frame_too_large" and "9000x9000" in err["detail"]


def test_large_jpeg_is_searched_reduced_with_boxes_in_its_own_pixels(client: TestClient) -> None:
    """A 16.8 Mpx JPEG is decoded at 1/2 scale (within decode_pixels); boxes stay in its pixels."""
    small = astronaut()
    big = np.asarray(Image.fromarray(small).resize((4096, 4096), Image.Resampling.BICUBIC))
    client.post(
        "/api/people", data={"name": "astronaut"}, files=[("files", png(small))], headers=AUTH
    )
    r_small = client.post("/api/identify", files={"file": png(small)}).json()
    r_big = client.post("/api/identify", files={"file": ("big.jpg", encode(big), "image/jpeg")})
    assert r_big.status_code == 200, r_big.text
    body = r_big.json()
    assert (body["width"], body["height"]) == (4096, 4096)
    (face,) = body["faces"]
    assert face["identity"] == "astronaut"
    np.testing.assert_allclose(face["box"], np.asarray(r_small["faces"][0]["box"]) * 8, rtol=0.05)
    np.testing.assert_allclose(
        face["landmarks"], np.asarray(r_small["faces"][0]["landmarks"]) * 8, rtol=0.05
    )
    preview = client.post("/api/enroll/preview", files=[("files", ("b.jpg", encode(big), "x"))])
    photo = preview.json()["photos"][0]
    assert (photo["width"], photo["height"]) == (4096, 4096) and photo["faces_found"] == 1
    np.testing.assert_allclose(photo["faces"][0]["box"], face["box"], rtol=0.02)


def test_photos_of_a_request_are_decoded_one_at_a_time(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    """The old read_images kept every decoded photo of a request to its end: 10 photos of
    2000x2000 held 120 MB of pixels at once. Python-side allocations (numpy's included) are
    traced; the decoder's own buffers are not, so the bound is on what the request keeps."""
    ramp = np.linspace(0, 255, 2000, dtype=np.float32).astype(np.uint8)
    rgb = np.ascontiguousarray(np.stack([np.tile(ramp, (2000, 1))] * 3, axis=-1))  # 12 MB
    files = [("files", (f"p{i}.png", encode(rgb, "PNG"), "image/png")) for i in range(10)]
    s = web_settings(tmp_path, untrained_tiny_checkpoint, decode_pixels=4_000_000)
    with TestClient(create_app(s)) as c:
        c.post("/api/enroll/preview", files=files[:1])  # load what loads once
        tracemalloc.start()
        try:
            r = c.post("/api/enroll/preview", files=files)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert r.status_code == 200 and len(r.json()["photos"]) == 10
    assert peak < 4 * rgb.nbytes, f"{peak / 1e6:.0f} MB traced for 10 photos of 12 MB"


# ---- 2. cross-site use ------------------------------------------------------------------------
def test_stream_refuses_other_sites_origins(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    app = create_app(web_settings(tmp_path, untrained_tiny_checkpoint))
    with TestClient(app) as c:
        with (
            pytest.raises(WebSocketDisconnect) as info,
            c.websocket_connect("/ws/stream", headers={"origin": "https://evil.example"}),
        ):
            pass
        assert info.value.code == 1008
        for origin in ("null", "http://testserver.evil.example", "http://testserver:1"):
            with (
                pytest.raises(WebSocketDisconnect),
                c.websocket_connect("/ws/stream", headers={"origin": origin}),
            ):
                pass
        # Its own pages (same scheme, host and port) and clients without Origin are served.
        for headers in ({"origin": "http://testserver"}, {}):
            with c.websocket_connect("/ws/stream", headers=headers) as ws:
                assert ws.receive_json()["type"] == "hello"
    s = web_settings(tmp_path, untrained_tiny_checkpoint, cors_origins=["https://app.example"])
    with (
        TestClient(create_app(s)) as c,
        c.websocket_connect("/ws/stream", headers={"origin": "https://app.example"}) as ws,
    ):
        assert ws.receive_json()["type"] == "hello"


def test_only_trusted_hosts_are_answered(tmp_path: Path, untrained_tiny_checkpoint: Path) -> None:
    """``Host: evil.example`` got 200 on /api/people (the door to DNS rebinding)."""
    s = web_settings(tmp_path, untrained_tiny_checkpoint, allowed_hosts=[])
    with TestClient(create_app(s), base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/people").status_code == 200
        for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST"):
            assert c.get("/api/people", headers={"host": host}).status_code == 200, host
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "x:y"):
            r = c.get("/api/people", headers={"host": host})
            assert r.status_code == 400, host
            assert "allowed-hosts" in r.json()["detail"]
        with (
            pytest.raises(WebSocketDisconnect),
            c.websocket_connect("/ws/stream", headers={"host": "evil.example"}),
        ):
            pass
    s = web_settings(tmp_path, untrained_tiny_checkpoint, allowed_hosts=["myhost.lan"])
    with TestClient(create_app(s), base_url="http://myhost.lan:8000") as c:
        assert c.get("/api/people").status_code == 200
        assert c.get("/api/people", headers={"host": "evil.example"}).status_code == 400
    s = web_settings(tmp_path, untrained_tiny_checkpoint, allowed_hosts=["*"])
    with TestClient(create_app(s), base_url="http://anything.example") as c:
        assert c.get("/api/people").status_code == 200


def test_pages_carry_security_headers(client: TestClient) -> None:
    for path in ("/", "/gallery", "/static/app.js", "/api/health"):
        r = client.get(path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'" and "unsafe" not in csp
        assert directives["frame-ancestors"] == "'none'"
        assert "ws://testserver" in directives["connect-src"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
    page = client.get("/").text
    assert "<script>" not in page and "onclick" not in page.lower()  # no inline script to allow
    docs = client.get("/docs")  # Swagger UI from the package: the pages' CSP, no CDN
    assert docs.headers["content-security-policy"].startswith(PAGE_CSP)
    assert "<script>" not in docs.text and "cdn" not in docs.text.lower()


# ---- 3. health under load -----------------------------------------------------------------------
def test_health_does_not_wait_behind_recognition(client: TestClient) -> None:
    """Health waited on the same worker threads as recognition (908 ms median with 8 streams).
    Here every recognition worker is held busy: health must still answer."""
    state = client.app.state.web  # type: ignore[attr-defined]
    release = threading.Event()
    busy = [state.executor.submit(release.wait, 60) for _ in range(state.settings.workers)]
    answers: list[int] = []
    probe = threading.Thread(target=lambda: answers.append(client.get("/api/health").status_code))
    try:
        probe.start()
        probe.join(timeout=30)  # a hang detector, not a speed limit
        assert answers == [200], "health waited behind the recognition workers"
        assert client.get("/api/people").status_code == 200
    finally:
        release.set()
        for f in busy:
            f.result(timeout=60)
        probe.join(timeout=60)


# ---- 5. errors and leaks ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "face_id", ["9223372036854775807", "9223372036854775808", "99999999999999999999999"]
)
def test_face_ids_beyond_sqlite_are_not_found(client: TestClient, face_id: str) -> None:
    r = client.get(f"/api/faces/{face_id}/image")
    assert r.status_code == 404 and face_id in r.json()["detail"]


def test_no_server_paths_are_shown(tmp_path: Path, untrained_tiny_checkpoint: Path) -> None:
    with TestClient(create_app(web_settings(tmp_path, untrained_tiny_checkpoint))) as c:
        model = c.get("/api/model").json()
        assert model["file"] == untrained_tiny_checkpoint.name and "path" not in model
        assert str(untrained_tiny_checkpoint.parent) not in json.dumps(model)
    with TestClient(create_app(web_settings(tmp_path, None))) as c:
        for body in (c.get("/api/model").json(), c.get("/api/health").json()):
            text = json.dumps(body)
            assert "missing.pt" in text and str(tmp_path) not in text, text
        r = c.post("/api/identify", files={"file": png(astronaut())})
        assert r.status_code == 503 and str(tmp_path) not in r.text
        with c.websocket_connect("/ws/stream") as ws:
            hello = ws.receive_json()
            assert "missing.pt" in hello["model_error"] and str(tmp_path) not in json.dumps(hello)


def test_chunked_upload_over_the_limit_is_413(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    """A body without Content-Length that grows past max_upload_bytes got 400, not 413."""
    s = web_settings(tmp_path, untrained_tiny_checkpoint, max_upload_bytes=100_000)
    boundary = "xyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def body():  # type: ignore[no-untyped-def]
        yield head
        for _ in range(30):
            yield b"\0" * 10_000

    with TestClient(create_app(s)) as c:
        r = c.post(
            "/api/identify",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert r.status_code == 413, r.text
        assert "100,000" in r.json()["detail"]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (".", "'.'"),
        ("..", "'.'"),
        ("evil\u202egnp.exe", "U+202E"),
        ("Alice\u200b", "U+200B"),
        ("Bob\u0085", "U+0085"),
        ("x\ufffd", "U+FFFD"),
    ],
)
def test_unsafe_person_names_are_refused(client: TestClient, name: str, why: str) -> None:
    r = client.post(
        "/api/people", data={"name": name}, files=[("files", png(astronaut()))], headers=AUTH
    )
    assert r.status_code == 422 and why in r.json()["detail"]
    assert client.get("/api/people").json() == []


def test_names_are_stored_in_normal_form_and_found_either_way(client: TestClient) -> None:
    files = [("files", png(astronaut()))]
    r = client.post("/api/people", data={"name": " Jose\u0301  Ma "}, files=files, headers=AUTH)
    assert r.status_code == 201 and r.json()["name"] == "Jos\u00e9 Ma"
    assert client.get("/api/people/Jose\u0301 Ma/faces").status_code == 200
    r = client.delete("/api/people/Jose\u0301 Ma", headers=AUTH)
    assert r.status_code == 200 and r.json()["name"] == "Jos\u00e9 Ma"
    # Bytes that are not UTF-8 in the multipart field: C1 controls are refused.
    body = (
        b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nBob\x85\r\n'
        b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png(astronaut())[1] + b"\r\n--b--\r\n"
    )
    r = client.post(
        "/api/people",
        content=body,
        headers={**AUTH, "content-type": "multipart/form-data; boundary=b"},
    )
    # (read with U+FFFD since issue 28; Starlette had read them as Latin-1, U+0085)
    assert r.status_code == 422 and "U+FFFD" in r.json()["detail"]


# ---- against a real server: uvicorn's limits ----------------------------------------------------


def test_real_server_limits_hosts_headers_slow_clients_and_origins(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    import websockets

    env = {
        "FACEMETRIC_HEADER_TIMEOUT": "1",
        "FACEMETRIC_BODY_TIMEOUT": "1",
        "FACEMETRIC_STREAM_IDLE_TIMEOUT": "1",
        "FACEMETRIC_MAX_UPLOAD_BYTES": "100000",
    }
    args = ("--model", str(untrained_tiny_checkpoint), "--db", str(tmp_path / "g.db"))
    with running_server(tmp_path, *args, "--allowed-hosts", "myhost.lan", env=env) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        # Hosts (DNS rebinding) and the allow-list given on the command line.
        assert (
            httpx.get(srv.url + "/api/people", headers={"host": "evil.example"}).status_code == 400
        )
        assert httpx.get(srv.url + "/api/people", headers={"host": "myhost.lan"}).status_code == 200
        # A request head of 1 MB (the issue sent 32 MB and got 200).
        try:  # the server answers 400 and closes, often before the client has sent it all
            code = httpx.get(
                srv.url + "/api/health", headers={"x-big": "a" * 1_000_000}
            ).status_code
        except httpx.TransportError:
            code = 400
        assert code == 400
        assert httpx.get(srv.url + "/api/health").status_code == 200
        # A head that never completes, and a connection that says nothing: closed after 1 s.
        started = time.monotonic()
        assert raw_exchange(port, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n") == b""
        assert raw_exchange(port, b"") == b""
        assert time.monotonic() - started < 5  # closed by the server, not by our 5 s timeout
        # A body that trickles: 408.
        head = (
            b"POST /api/identify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data;"
            b" boundary=b\r\nContent-Length: 50000\r\n\r\n--b\r\n"
        )
        answer = raw_exchange(port, head)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        # Chunked body over max_upload_bytes: 413 (was 400).
        chunks = [b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n']
        chunks += [b"\0" * 20_000] * 10
        r = httpx.post(
            srv.url + "/api/identify",
            content=iter(chunks),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert r.status_code == 413, r.text

        async def streams() -> None:
            with pytest.raises(websockets.InvalidStatus) as info:
                async with websockets.connect(srv.ws_url, origin="https://evil.example"):  # type: ignore[arg-type]
                    pass
            assert info.value.response.status_code == 403
            own = srv.url  # the page's own origin
            async with websockets.connect(srv.ws_url, origin=own) as ws:  # type: ignore[arg-type]
                assert json.loads(await ws.recv())["type"] == "hello"
                ws_frame = encode(frame_640x480(astronaut()), quality=80)
                await ws.send(ws_frame)
                assert json.loads(await ws.recv())["type"] == "result"
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)  # idle: the server closes it
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001

        asyncio.run(streams())
        assert srv.process.poll() is None
