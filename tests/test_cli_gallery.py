"""``facemetric gallery ...``, ``identify`` and ``export --onnx`` on real photos and a real
SQLite file, in-process and once through the real console script."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facemetric.cli import main

CONSOLE = Path(sys.executable).with_name("facemetric")


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """DIR/person/*.png: 'eileen' (the astronaut photo, twice, one mirrored) and a faceless one."""
    root = tmp_path / "people"
    (root / "eileen").mkdir(parents=True)
    (root / "nobody").mkdir()
    img = astronaut()
    Image.fromarray(img).save(root / "eileen" / "a.png")
    Image.fromarray(np.ascontiguousarray(img[:, ::-1])).save(root / "eileen" / "b.png")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(root / "nobody" / "grey.png")
    (root / "notes.txt").write_text("top-level files are not identities")
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_list_identify_remove_export_reembed(
    photos: Path,
    tmp_path: Path,
    untrained_tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db, model = str(tmp_path / "g.db"), str(untrained_tiny_checkpoint)
    common = ("--db", db, "--model", model)
    code, out, _ = run(capsys, "gallery", "build", str(photos), *common)
    assert code == 0 and "added 2 faces of 1 people" in out and "grey.png" in out

    code, out, _ = run(capsys, "gallery", "list", "--db", db, "--json")
    assert code == 0 and [(p["name"], p["face_count"]) for p in json.loads(out)] == [("eileen", 2)]

    photo = str(photos / "eileen" / "a.png")
    code, out, _ = run(
        capsys,
        "identify",
        photo,
        str(photos / "nobody" / "grey.png"),
        *common,
        "--json",
        "--annotate",
        str(tmp_path / "ann.jpg"),
    )
    assert code == 0
    first, second = json.loads(out)
    assert first["image"] == photo and second["faces"] == []
    (face,) = first["faces"]
    assert set(face) == {"box", "identity", "similarity", "is_match", "top_k"}
    assert face["identity"] == "eileen" and face["is_match"] and face["similarity"] > 0.99
    assert Image.open(tmp_path / "ann-1.jpg").size == (512, 512)

    code, out, _ = run(capsys, "identify", photo, *common, "--threshold", "1.01")
    assert code == 0 and "unknown" in out and "top: eileen" in out

    code, _, _ = run(capsys, "gallery", "add", "astro", photo, *common)
    assert code == 0
    code, _, _ = run(capsys, "gallery", "export", str(tmp_path / "out" / "emb"), *common)
    assert code == 0
    exported = np.load(tmp_path / "out" / "emb.npz")
    assert exported["embeddings"].shape == (3, 32) and sorted(exported["names"]) == [
        "astro",
        "eileen",
        "eileen",
    ]
    meta = json.loads((tmp_path / "out" / "emb.json").read_text())
    assert meta["dim"] == 32 and len(meta["faces"]) == 3

    code, out, _ = run(capsys, "gallery", "reembed", *common)
    assert code == 0 and "re-embedded 3 faces" in out

    code, out, _ = run(capsys, "gallery", "remove", "eileen", "--db", db)
    assert code == 0 and "2 faces" in out
    with sqlite3.connect(db) as con:  # the rest is untouched
        assert con.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 1
        assert con.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 1


def test_user_mistakes_are_one_line_errors(
    photos: Path,
    tmp_path: Path,
    untrained_tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "g.db"
    common = ("--db", str(db), "--model", str(untrained_tiny_checkpoint))
    # Reading or removing never creates a gallery: a typo'd --db says so.
    for args in (("gallery", "remove", "ghost"), ("gallery", "list"), ("identify", "x.jpg")):
        code, _, err = run(capsys, *args, "--db", str(db))
        assert code == 2 and f"{db}: no gallery there" in err and "gallery build" in err
        assert not db.exists()
    grey = str(photos / "nobody" / "grey.png")
    code, _, err = run(capsys, "gallery", "add", "x", grey, *common)
    assert code == 2 and "no usable face for 'x'" in err and "grey.png: no face found" in err
    code, _, _ = run(capsys, "gallery", "add", "eileen", str(photos / "eileen" / "a.png"), *common)
    assert code == 0
    code, _, err = run(capsys, "gallery", "remove", "ghost", "--db", str(db))
    assert code == 2 and "ghost" in err and "Traceback" not in err
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0not really a jpeg")
    code, _, err = run(capsys, "identify", str(broken), *common)
    assert code == 2 and "broken.jpg" in err
    code, _, err = run(
        capsys,
        "identify",
        grey,
        "--db",
        str(tmp_path / "g.db"),
        "--model",
        str(tmp_path / "missing.pt"),
    )
    assert code == 2 and "missing.pt" in err
    code, _, err = run(capsys, "gallery", "build", str(tmp_path / "nowhere"), *common)
    assert code == 2 and "nowhere" in err


def test_export_onnx_command(
    tmp_path: Path, untrained_tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny.onnx"
    code, text, _ = run(
        capsys, "export", str(untrained_tiny_checkpoint), "--onnx", "--out", str(out)
    )
    assert code == 0 and out.is_file() and "max abs difference" in text


@pytest.mark.slow  # ~25 s: three interpreter starts loading torch and RetinaFace
def test_console_script(photos: Path, tmp_path: Path, untrained_tiny_checkpoint: Path) -> None:
    db, model = str(tmp_path / "g.db"), str(untrained_tiny_checkpoint)
    photo = str(photos / "eileen" / "a.png")
    subprocess.run(
        [str(CONSOLE), "gallery", "add", "eileen", photo, "--db", db, "--model", model],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    )
    done = subprocess.run(
        [str(CONSOLE), "identify", photo, "--json", "--db", db, "--model", model],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["faces"][0]["identity"] == "eileen"
    done = subprocess.run(
        [str(CONSOLE), "gallery", "remove", "nobody", "--db", db],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 2 and "nobody" in done.stderr and "Traceback" not in done.stderr
