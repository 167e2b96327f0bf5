"""``facemetric gallery copy`` between real stores (SQLite <-> PostgreSQL): everything arrives,
a second copy adds nothing, a copy killed half way goes on where it stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facemetric.cli import main
from facemetric.gallery.store import FaceRecord, GalleryStore

CONSOLE = Path(sys.executable).with_name("facemetric")


def fill(location: str, people: int, faces: int) -> None:
    rng = np.random.default_rng(0)
    store = GalleryStore(location)
    for p in range(people):
        records = [
            FaceRecord(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), source=f"p{p}/{i}.jpg")
            for i in range(faces)
        ]
        vectors = rng.normal(size=(faces, 8)).astype(np.float32)
        store.add_faces(f"person {p}", records, "model-a", vectors=vectors)
        store.add_faces(f"person {p}", records[:1], "model-a", kind="negative", vectors=vectors[:1])
    store.add_person("nobody yet")
    store.close()


def summary(location: str) -> tuple[list[tuple[str, int]], int, dict[str, int], list[bytes]]:
    store = GalleryStore(location, create=False)
    people = [(p.name, p.face_count) for p in store.list_people()]
    emb = store.embeddings("model-a", kinds=("reference", "negative"))
    chips = [store.face_thumbnail(int(i)) for i in emb.face_ids]
    out = (people, len(emb.face_ids), store.model_keys(), chips)
    store.close()
    return out


@pytest.mark.parametrize("direction", ["sqlite->postgresql", "postgresql->sqlite"])
def test_copy_both_ways_is_complete_and_idempotent(
    tmp_path: Path, postgres_server, direction: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_db, pg = str(tmp_path / "g.db"), postgres_server.new_database()
    src, dst = (sqlite_db, pg) if direction.startswith("sqlite") else (pg, sqlite_db)
    fill(src, people=3, faces=4)
    assert main(["gallery", "copy", src, dst, "--quiet"]) == 0
    assert "copied 15 faces" in capsys.readouterr().out
    assert summary(dst) == summary(src)
    assert main(["gallery", "copy", src, dst, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "copied 0 faces" in out and "15 already there" in out
    assert summary(dst) == summary(src)
    assert "test-pg-password" not in out  # the password is never printed
    assert main(["gallery", "info", "--db", dst, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["people"] == 4 and info["faces"] == 12 and info["index"] == "exact"
    assert info["index_detail"] == {"kind": "exact", "entries": 12}


KILLER = r"""
import sys, time
from facemetric.gallery import copy as C
real = C._Pending.flush
def slow(*a, **k):
    n = real(*a, **k)
    print("block", flush=True)
    time.sleep(0.5)
    return n
C._Pending.flush = slow
from facemetric.gallery.store import GalleryStore
C.copy_gallery(GalleryStore(sys.argv[1]), GalleryStore(sys.argv[2]), block=5)
"""


def test_a_killed_copy_resumes(tmp_path: Path, postgres_server) -> None:
    src, dst = str(tmp_path / "g.db"), postgres_server.new_database()
    fill(src, people=2, faces=12)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.Popen(
        [sys.executable, str(script), src, dst], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("block"):
            proc.kill()  # after the first block committed, mid-way through the copy
            break
    proc.wait(timeout=30)
    partial = summary(dst)[1]
    assert 0 < partial < 26
    done = subprocess.run(
        [str(CONSOLE), "gallery", "copy", src, dst, "--quiet"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert summary(dst) == summary(src)
    assert f"{partial} already there" in done.stdout
