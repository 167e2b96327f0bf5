"""Several servers on one real PostgreSQL gallery: a person enrolled through one server is
named by the other, a removal too; the database going away and coming back while serving."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
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


def variants(n: int) -> list[bytes]:
    """``n`` different photos of one face (shifted on a grey canvas: other content hashes)."""
    from PIL import Image

    face = Image.fromarray(astronaut())
    out = []
    for i in range(n):
        canvas = Image.new("RGB", (face.width + 40, face.height + 40), (90 + i, 90, 90))
        canvas.paste(face, (i % 40, (3 * i) % 40))
        out.append(encode(np.asarray(canvas)))
    return out


def gallery_contents(url: str) -> dict[str, int]:
    from facemetric.gallery.store import GalleryStore

    store = GalleryStore(url, create=False)
    try:
        return {p.name: len(store.faces_of(p.name)) for p in store.list_people()}
    finally:
        store.close()


def generations(*servers: Any) -> set[int]:
    return {
        int(httpx.get(s.url + "/api/health", timeout=15).json()["gallery"]["generation"])
        for s in servers
    }


def test_kill_during_concurrent_enrolments_then_database_restart(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    """kill -9 of a server amid 10 concurrent enrolments: every person is there with all their
    faces or not at all, none answered 201 is lost; then PostgreSQL restarts under two servers
    and both come back to the database's generation by themselves."""
    why = pgserver.available()
    if why:
        pytest.skip(why)
    server = pgserver.PostgresServer()  # its own: this test restarts it
    try:
        url = server.new_database()
        args = serve_args(untrained_tiny_checkpoint, url)
        photos = variants(30)
        answers: dict[str, int] = {}

        def enrol(i: int, base: str) -> None:
            files = [("files", (f"{j}.jpg", photos[3 * i + j], "image/jpeg")) for j in range(3)]
            try:
                r = httpx.post(base + "/api/people", data={"name": f"person {i}"}, files=files,
                               headers=AUTH, timeout=60)  # fmt: skip
                answers[f"person {i}"] = r.status_code
            except httpx.HTTPError:
                answers[f"person {i}"] = -1  # the server died under it

        with running_server(tmp_path, *args) as a:
            threads = [threading.Thread(target=enrol, args=(i, a.url)) for i in range(10)]
            for t in threads:
                t.start()
            assert wait_for(lambda: len(gallery_contents(url)) >= 1, timeout=60)
            a.process.send_signal(signal.SIGKILL)
            for t in threads:
                t.join()
        contents = gallery_contents(url)
        assert all(n == 3 for n in contents.values()), f"a partial person: {contents}"
        ok = {name for name, code in answers.items() if code == 201}
        assert ok <= set(contents), f"answered 201 but lost: {ok - set(contents)}"
        assert 1 <= len(contents) <= 10

        with running_server(tmp_path, *args) as a, running_server(tmp_path, *args) as b:
            assert wait_for(lambda: len(generations(a, b)) == 1)
            server.stop()
            server.start()
            files = {"files": ("x.jpg", photos[-1], "image/jpeg")}
            assert wait_for(
                lambda: (
                    httpx.post(
                        b.url + "/api/people",
                        data={"name": "after"},
                        files=files,
                        headers=AUTH,
                        timeout=30,
                    ).status_code
                    == 201
                ),
                timeout=60,
            ), "B never wrote again after the restart"
            target = len(contents) + 1
            assert wait_for(
                lambda: (
                    {
                        httpx.get(s.url + "/api/health", timeout=15).json()["gallery_faces"]
                        for s in (a, b)
                    }
                    == {3 * (target - 1) + 1}
                    and len(generations(a, b)) == 1
                ),
                timeout=30,
            ), f"replicas disagree: {generations(a, b)}"
    finally:
        server.close()
