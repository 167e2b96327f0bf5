"""Several servers on one real PostgreSQL gallery: a person enrolled through one server is
named by the other, a removal too; the database going away and coming back while serving."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import pgserver
from webutil import TOKEN, astronaut, encode, running_server

AUTH = {"Authorization": f"Bearer {TOKEN}"}
pytestmark = pytest.mark.slow


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``check`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def names_seen(server_url: str, photo: bytes) -> list[str | None]:
    answer = httpx.post(
        server_url + "/api/identify", files={"file": ("a.jpg", photo, "image/jpeg")}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return [f["identity"] for f in answer.json()["faces"]]


def serve_args(model: Path, url: str) -> tuple[str, ...]:
    # A threshold well below 1: the untrained model gives the same photo similarity 1.
    return ("--model", str(model), "--db", url, "--admin-token", TOKEN, "--threshold", "0.9")


def test_two_servers_share_one_gallery(
    tmp_path: Path, postgres_server: pgserver.PostgresServer, untrained_tiny_checkpoint: Path
) -> None:
    url = postgres_server.new_database()
    photo = encode(astronaut())
    args = serve_args(untrained_tiny_checkpoint, url)
    with running_server(tmp_path, *args) as a, running_server(tmp_path, *args) as b:
        assert names_seen(b.url, photo) == [None]
        enrolled = httpx.post(
            a.url + "/api/people",
            data={"name": "Eileen"},
            files={"files": ("e.jpg", photo, "image/jpeg")},
            headers=AUTH,
            timeout=30,
        )
        assert enrolled.status_code == 201, enrolled.text
        assert wait_for(lambda: names_seen(b.url, photo) == ["Eileen"]), "B never named her"
        health = [httpx.get(s.url + "/api/health").json()["gallery"] for s in (a, b)]
        assert health[0]["backend"] == "postgresql" and health[0]["following"]
        assert wait_for(
            lambda: (
                len(
                    {
                        httpx.get(s.url + "/api/health").json()["gallery"]["generation"]
                        for s in (a, b)
                    }
                )
                == 1
            )
        ), f"replicas disagree: {health}"
        removed = httpx.delete(a.url + "/api/people/Eileen", headers=AUTH, timeout=30)
        assert removed.status_code == 200, removed.text
        assert wait_for(lambda: names_seen(b.url, photo) == [None]), "B still names her"


def test_database_away_and_back_while_serving(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    """Health says so, changes get 503, recognition goes on with the faces loaded, and the
    server comes back to the database by itself."""
    why = pgserver.available()
    if why:
        pytest.skip(why)
    server = pgserver.PostgresServer()  # its own: this test stops it
    try:
        url = server.new_database()
        photo = encode(astronaut())
        with running_server(tmp_path, *serve_args(untrained_tiny_checkpoint, url)) as s:
            enrol = {"data": {"name": "Eileen"}, "headers": AUTH, "timeout": 30}
            files = {"files": ("e.jpg", photo, "image/jpeg")}
            assert httpx.post(s.url + "/api/people", files=files, **enrol).status_code == 201
            server.stop()
            assert wait_for(
                lambda: (
                    httpx.get(s.url + "/api/health", timeout=15).json()["status"]
                    == "database_unavailable"
                )
            )
            health = httpx.get(s.url + "/api/health", timeout=15).json()
            assert health["gallery"]["database"] == "unavailable" and health["gallery_faces"] == 1
            assert url.split("@")[0].split(":")[-1] not in str(health)  # never the password
            refused = httpx.post(
                s.url + "/api/people",
                data={"name": "Other"},
                files=files,
                headers=AUTH,
                timeout=30,
            )
            assert refused.status_code == 503, refused.text
            assert names_seen(s.url, photo) == ["Eileen"]  # recognition goes on
            server.start()
            assert wait_for(
                lambda: httpx.get(s.url + "/api/health", timeout=15).json()["status"] == "ok",
                timeout=30,
            )
            again = httpx.post(
                s.url + "/api/people",
                data={"name": "Other"},
                files=files,
                headers=AUTH,
                timeout=30,
            )
            assert again.status_code == 201, again.text
    finally:
        server.close()
