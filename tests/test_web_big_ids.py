"""Issue 28, point 11: ids and numbers past 2^63-1 (merge, split, corrections, ``?min_faces=``,
``?before=``) reached SQLite as OverflowError: a 500 and a dropped connection. Now 404/422."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facemetric.web.app import create_app
from webutil import TOKEN, web_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BIG = [2**63, 2**64 + 5, 10**30]


@pytest.fixture
def client(tmp_path: Path):
    settings = web_settings(tmp_path, None, keep_unknown=True, events_keep_days=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("big", BIG)
def test_numbers_past_sqlite_are_refused_not_500(client: TestClient, big: int) -> None:
    asks = [
        ("POST", "/api/unknown/1/merge", {"others": [big]}),
        ("POST", f"/api/unknown/{big}/merge", {"others": [1]}),
        ("POST", "/api/unknown/1/split", {"face_id": big}),
        ("POST", f"/api/unknown/{big}/split", {"face_id": 1}),
        ("DELETE", f"/api/corrections/{big}", None),
        ("GET", f"/api/unknown?min_faces={big}", None),
        ("GET", f"/api/events?before=1764750000.0_{big}", None),
    ]
    for method, url, body in asks:
        r = client.request(method, url, json=body, headers=AUTH)
        assert r.status_code in (400, 404, 422), (method, url, r.status_code, r.text)
        assert "detail" in r.json()
