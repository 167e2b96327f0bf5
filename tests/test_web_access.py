"""Issue 28, point 4: every route that shows people, faces, events, corrections or camera
pictures needs the viewer token (when the server asks for one). With the token required,
``/api/unknown``, its faces' images and ``/api/corrections`` answered 200 to anyone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.openapi.utils import get_openapi
from fastapi.testclient import TestClient

from facemetric.web.app import create_app
from webutil import TOKEN, web_settings

VIEWER = "test-viewer-token"
# Open to anyone, on purpose: what a visitor's page needs before any sign-in, and the
# recognition of a photo or frame the client sends itself (no stored face is shown).
OPEN = {
    "/": "the live page",
    "/gallery": "page",
    "/events": "page (signs in)",
    "/cameras": "page",
    "/unknown": "page",
    "/api/health": "operators and load balancers",
    "/api/model": "the model's name and threshold",
    "/api/identify": "recognises the client's own photo",
    "/api/enroll/preview": "checks the client's own photos",
    "/ws/stream": "recognises the client's own frames",
    "/api/session": "the sign-in itself",
    "/openapi.json": "API schema",
    "/docs": "API docs",
    "/docs/oauth2-redirect": "API docs",
    "/redoc": "API docs",
}


def test_every_route_is_guarded_or_open_on_purpose(tmp_path: Path) -> None:
    """Every route and method the app registers (from its schema, pages included), asked
    without credentials on a server that requires the viewer token: 401 unless open on
    purpose. A new personal route that forgets the routers' dependency fails here."""
    settings = web_settings(tmp_path, None, viewer_token=VIEWER, viewer_token_required="always")
    app = create_app(settings)
    app.openapi_schema = None
    schema = get_openapi(title="t", version="1", routes=app.routes)
    seen, unguarded = 0, []
    with TestClient(app) as client:
        for path, methods in schema["paths"].items():
            for method in methods:
                url = re.sub(r"\{[^}]+\}", "1", path)
                r = client.request(method.upper(), url)
                seen += 1
                if path not in OPEN and r.status_code != 401:
                    unguarded.append(f"{method.upper()} {path}: {r.status_code}")
        with client.websocket_connect("/ws/stream") as ws:  # open on purpose (OPEN)
            assert ws.receive_json()["type"] == "hello"
    assert seen > 30, seen  # the walk saw the included routers
    assert not unguarded, f"personal routes answered without the viewer token: {unguarded}"


@pytest.mark.parametrize(
    "path",
    [
        "/api/unknown",
        "/api/unknown/1",
        "/api/unknown/faces/1/image",
        "/api/corrections",
        "/api/people",
        "/api/people/Ann/faces",
        "/api/faces/1/image",
        "/api/events",
        "/api/cameras",
    ],
)
def test_personal_reads_need_the_viewer_token(tmp_path: Path, path: str) -> None:
    settings = web_settings(
        tmp_path, None, viewer_token=VIEWER, viewer_token_required="always", keep_unknown=True
    )
    with TestClient(create_app(settings)) as client:
        r = client.get(path)
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403
        for token in (VIEWER, TOKEN):
            r = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code not in (401, 403), (path, r.status_code, r.text)
