"""Issue 28, point 10: a full disk. SQLite ends the transaction itself, the store rolled back
again and the answer was a 500 saying ``cannot rollback - no transaction is active`` while
/api/health said "ok". Now: 507 with the reason, health not ok until a write succeeds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from facemetric.gallery.backend import FULL, StoreFullError
from facemetric.gallery.store import GalleryStore
from facemetric.web.app import create_app
from test_gallery_backends import chips
from webutil import TOKEN, astronaut, encode, web_settings

VECTORS = np.eye(4, 8, dtype=np.float32)


def test_a_full_database_is_said_so_and_comes_back(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "g.db")
    store.add_faces("Ann", chips(0, 1), "key-test", vectors=VECTORS[:1])
    con = store.backend._con()  # type: ignore[attr-defined]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
    with pytest.raises(StoreFullError) as info:
        for seed in range(1, 20):
            store.add_faces(f"P{seed}", chips(seed, 4), "key-test", vectors=VECTORS)
    assert FULL in str(info.value) and "rollback" not in str(info.value)
    assert store.backend.ping() == FULL
    assert [p.name for p in store.list_people()] == ["Ann"]  # nothing half-written
    con.execute(f"PRAGMA max_page_count = {pages * 100}")
    store.add_faces("Bob", chips(50, 1), "key-test", vectors=VECTORS[:1])
    assert store.backend.ping() is None
    store.close()


@pytest.fixture
def small_disk(tmp_path: Path):
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_server_answers_507_and_health_is_not_ok(
    tmp_path: Path, small_disk: Path, untrained_tiny_checkpoint: Path
) -> None:
    settings = web_settings(tmp_path, untrained_tiny_checkpoint)
    settings.db = str(small_disk / "g.db")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    photo = ("a.jpg", encode(astronaut()), "image/jpeg")
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/health").json()["gallery"]["database"] == "ok"
        free = os.statvfs(small_disk)
        with open(small_disk / "filler", "wb") as f:  # leave a few KB
            f.write(b"\0" * max(0, free.f_bavail * free.f_frsize - 8 * 1024))
        codes = []
        for i in range(5):
            r = client.post(
                "/api/people", data={"name": f"P{i}"}, files={"files": photo}, headers=auth
            )
            codes.append(r.status_code)
            if r.status_code == 507:
                assert FULL in r.json()["detail"] and "rollback" not in r.text
                break
        assert 507 in codes, codes
        health = client.get("/api/health").json()
        assert health["status"] != "ok" and FULL in health["message"], health
        (small_disk / "filler").unlink()
        r = client.post("/api/people", data={"name": "Q"}, files={"files": photo}, headers=auth)
        assert r.status_code == 201, r.text
        assert client.get("/api/health").json()["gallery"]["database"] == "ok"
