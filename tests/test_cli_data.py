"""The ``facemetric data`` command group: in-process via main(argv) and the real console script."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter
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


def test_split_warns_about_a_one_person_val_and_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14 item 7: 8 people gave a one-person val and test split without a word."""
    root = tmp_path / "eight"
    for i in range(8):
        (root / f"p{i}").mkdir(parents=True)
        for j in range(3):
            (root / f"p{i}" / f"{j}.png").write_bytes(b"")
    assert main(["data", "split", str(root), "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert (
        "facemetric: warning: only 1 identity in val: validation needs at least 2 people; "
        "with 8 people use --val 0.25" in err
    )
    assert "only 1 identity in test: evaluation (and calibration) needs at least 2 people" in err
    assert "with 8 people use --test 0.25" in err
    args = ["--val", "0.25", "--test", "0.25", "--out", str(tmp_path / "t")]
    assert main(["data", "split", str(root), *args]) == 0
    assert capsys.readouterr().err == ""  # the suggested fractions give 2 + 2 people


def test_pairs_cli_writes_a_file_evaluate_reads(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facemetric.evaluate.protocols import check_pairs_images, identity_of, read_pairs

    out = tmp_path / "pairs.tsv"
    assert main(["data", "pairs", str(photos), "--out", str(out), "--folds", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == f"4 genuine and 4 impostor pairs of 4 people in 2 folds -> {out}"
    proto = read_pairs(out)
    assert proto.format == "tsv" and proto.n_folds == 2 and len(proto.pairs) == 8
    check_pairs_images(proto, photos)
    folds = {identity_of(im): p.fold for p in proto.pairs for im in (p.image1, p.image2)}
    assert sorted(Counter(folds.values()).values()) == [2, 2]  # whole people per fold
    again = tmp_path / "again.tsv"
    assert main(["data", "pairs", str(photos), "--out", str(again), "--folds", "2"]) == 0
    assert again.read_bytes() == out.read_bytes()  # the same seed, the same file
    capsys.readouterr()
    argv = ["data", "pairs", str(photos), "--out", str(out), "--genuine", "2", "--impostor", "9"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "2 genuine and 8 impostor pairs of 4 people in 2 folds" in captured.out
    assert "fewer --folds" in captured.err and "only 8 impostor pairs exist" in captured.err
    with pytest.raises(SystemExit):
        main(["data", "pairs", str(photos), "--out", str(out), "--genuine", "some"])
    assert "expected a whole number or 'all'" in capsys.readouterr().err
