"""Issue 23: limits that did not hold in an attack run. Each test sends what got through (bombs
answered as unreadable, foreign pages spending CPU, a large head in one write, streams past the
connection limit) and checks the answer; in process where the app decides, against a real
``facemetric serve`` where the connection and protocol layer does."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bombs import jpeg_claiming, png_of_zeros
from facemetric.web.app import create_app
from webutil import TOKEN, astronaut, encode, web_settings

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
