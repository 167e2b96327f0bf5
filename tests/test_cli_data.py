"""The ``facemetric data`` command group: in-process via main(argv) and the real console script."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from facemetric.cli import main

SCRIPT = Path(sys.executable).with_name("facemetric")


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Four people, two crops each of scikit-image's astronaut, plus one duplicate and junk."""
    rgb = skdata.astronaut()
    root = tmp_path / "photos"
    crops = [rgb[y : y + 150, x : x + 150] for y in (0, 150, 300) for x in (0, 150, 300)]
    for i, person in enumerate(["Ann", "Bob", "Cé Lia", "Dan"]):
        (root / person).mkdir(parents=True)
        (root / person / "IMG 2.PNG").write_bytes(png(crops[2 * i]))
        (root / person / "img 10.png").write_bytes(png(crops[2 * i + 1]))
    (root / "Dan" / "notes.txt").write_text("not an image")
    return root


def test_rename_dry_run_then_run_then_undo(
    photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*"))
    assert main(["data", "rename", str(photos), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Ann/IMG 2.PNG -> Ann/Ann_1.png" in out and "Dan/notes.txt" in out
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*")) == before

    assert main(["data", "rename", str(photos), "--prefix", "x_{folder}"]) == 0
    assert sorted(p.name for p in (photos / "Cé Lia").iterdir()) == [
        "x_Cé Lia_1.png",
        "x_Cé Lia_2.png",
    ]
    assert "--undo" in capsys.readouterr().out

    assert main(["data", "rename", str(photos), "--prefix", "x_{folder}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == []  # idempotent

    assert main(["data", "rename", str(photos), "--undo"]) == 0
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*")) == before


def test_rename_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "rename", str(tmp_path), "--undo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facemetric: error: ") and "nothing to undo" in err
    assert err.count("\n") == 1
    (tmp_path / "A").mkdir()
    assert main(["data", "rename", str(tmp_path), "--prefix", "{nope}"]) == 2
    assert "prefix '{nope}'" in capsys.readouterr().err


def test_check_exit_codes_and_json(photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["data", "check", str(photos), "--no-progress", "--workers", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "OK: no problems found" in out and "Dan/notes.txt" in out
    assert main([*args, "--strict"]) == 0

    (photos / "Bob" / "copy.png").write_bytes((photos / "Ann" / "img 10.png").read_bytes())
    assert main(args) == 0  # problems alone never fail without --strict
    assert "ACROSS Ann, Bob" in capsys.readouterr().out
    assert main([*args, "--strict"]) == 1
    capsys.readouterr()
    assert main([*args, "--json", "--min-images", "3", "--min-size", "200"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identities"] == 4 and report["images"] == 9
    assert report["few_images"] == ["Ann", "Cé Lia", "Dan"]
    assert len(report["small"]) == 9
    assert report["exact_duplicates"][0]["cross_identity"] is True


def test_split_cli(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "split"
    assert (
        main(["data", "split", str(photos), "--val", "0.25", "--test", "0", "--out", str(out)]) == 0
    )
    assert "written to" in capsys.readouterr().out
    assert len((out / "val.txt").read_text().splitlines()) == 2
    assert (out / "test.txt").read_text() == ""
    assert main(["data", "split", str(photos), "--val", "0.5", "--test", "0.5"]) == 2
    assert "val=0.5 + test=0.5" in capsys.readouterr().err


def test_align_is_registered_in_the_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    out = capsys.readouterr().out
    for action in ("rename", "check", "split"):
        assert action in out


def test_console_script_check_and_rename(photos: Path) -> None:
    assert SCRIPT.exists(), f"console script missing at {SCRIPT}"
    (photos / "Ann" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    proc = subprocess.run(
        [str(SCRIPT), "data", "check", str(photos), "--json", "--strict"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert [u["path"] for u in report["unreadable"]] == ["Ann/broken.jpg"]
    proc = subprocess.run(
        [str(SCRIPT), "data", "rename", str(photos)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (photos / "Ann").iterdir()) == [
        "Ann_1.jpg",
        "Ann_2.png",
        "Ann_3.png",
    ]
