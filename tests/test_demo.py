"""`make demo` on a user's small photo folder: it must run to the end with the pretrained model
(a folder of 6 people is too small to fine-tune on some and judge the result on others)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import shared_set

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_on_a_small_folder_keeps_the_pretrained_model(tmp_path: Path) -> None:
    wild = shared_set("celeba-wild")
    photos = tmp_path / "photos"
    for person in sorted(p for p in wild.iterdir() if p.is_dir())[:6]:
        (photos / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:4]:
            shutil.copy(photo, photos / person.name / photo.name)
    work = tmp_path / "work"
    env = {**os.environ, "SERVE": "0", "FACEMETRIC_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        ["bash", "scripts/demo.sh", str(photos), str(work)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "6 people: too few to fine-tune" in done.stdout
    assert "the pretrained model keeps its calibrated threshold" in done.stdout
    assert "== done (SERVE=0)" in done.stdout
    with sqlite3.connect(work / "gallery.db") as db:
        (people,) = db.execute("SELECT COUNT(*) FROM people").fetchone()
    assert people == 6
