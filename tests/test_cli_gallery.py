"""``facemetric gallery ...``, ``identify`` and ``export --onnx`` on real photos and a real
SQLite file, in-process and once through the real console script."""

from __future__ import annotations

import argparse
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
    assert set(face) == {
        "box",
        "identity",
        "similarity",
        "is_match",
        "reason",
        "top_k",
        "decision",
    }
    assert face["reason"] == "match" and face["decision"]["identity"] == "eileen"
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


# ---- issue 14 ------------------------------------------------------------------------------------
def faces_in(db: str | Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT COUNT(*) FROM faces").fetchone()[0])


def test_build_twice_is_idempotent_and_a_corrupt_jpeg_is_skipped(
    photos: Path,
    tmp_path: Path,
    untrained_tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 14 item 4: building twice doubled the faces, and a corrupt file stopped the build
    half way (exit 2, the people before it committed, those after it not)."""
    (photos / "aaron").mkdir()  # sorted first: its corrupt photo comes before everyone else
    (photos / "aaron" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    Image.fromarray(astronaut()[:, 40:]).save(photos / "aaron" / "crop.png")
    db, model = str(tmp_path / "g.db"), str(untrained_tiny_checkpoint)
    common = ("--db", db, "--model", model)
    code, out, _ = run(capsys, "gallery", "build", str(photos), *common)
    assert code == 0, out
    assert "added 3 faces of 2 people" in out
    assert f"skipped {photos / 'aaron' / 'broken.jpg'}: " in out and "grey.png" in out
    assert faces_in(db) == 3
    code, out, _ = run(capsys, "gallery", "build", str(photos), *common)
    assert code == 0 and "added 0 faces" in out and "3 photos were already in the gallery" in out
    assert faces_in(db) == 3
    code, out, _ = run(capsys, "gallery", "list", "--db", db, "--json")
    assert [(p["name"], p["face_count"]) for p in json.loads(out)] == [("aaron", 1), ("eileen", 2)]

    # gallery add: the same policy, the person is saved with the usable photos
    broken = str(photos / "aaron" / "broken.jpg")
    good = str(photos / "eileen" / "a.png")
    code, out, _ = run(capsys, "gallery", "add", "zoe", broken, good, *common)
    assert code == 0 and "added 1 faces of 1 people" in out and f"skipped {broken}" in out
    code, out, _ = run(capsys, "gallery", "add", "zoe", good, *common)
    assert code == 0 and "1 photos were already in the gallery" in out
    assert faces_in(db) == 4


def test_identify_against_an_empty_gallery_is_an_error(
    photos: Path,
    tmp_path: Path,
    untrained_tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 14 item 5: a gallery that exists but holds no face answered "unknown", exit 0."""
    db = tmp_path / "g.db"
    common = ("--db", str(db), "--model", str(untrained_tiny_checkpoint))
    photo = str(photos / "eileen" / "a.png")
    assert run(capsys, "gallery", "add", "eileen", photo, *common)[0] == 0
    assert run(capsys, "gallery", "remove", "eileen", "--db", str(db))[0] == 0
    code, out, err = run(capsys, "identify", photo, *common)
    assert code == 2 and out == ""
    assert f"{db}: the gallery is empty" in err
    assert f"facemetric gallery build PHOTOS --db {db}" in err


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_gallery_command_and_argument_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14 item 8: gallery subcommands and their arguments had no help text."""
    from facemetric.cli import build_parser
    from facemetric.recognize.photos import CSV_COLUMNS

    top = _subcommands(build_parser())
    commands = {f"gallery {n}": p for n, p in _subcommands(top["gallery"]).items()}
    commands["identify"] = top["identify"]
    assert set(commands) >= {f"gallery {n}" for n in ("build", "add", "remove", "list")}
    for name, parser in commands.items():
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            assert action.help, f"{name} {action.dest} has no help text"
    with pytest.raises(SystemExit) as done:
        main(["gallery", "build", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert done.value.code == 0
    assert "DIR/person/photo.jpg" in out and "adds only new photos" in out and "--aligned" in out
    identify_help = "".join(commands["identify"].format_help().split())
    assert ",".join(CSV_COLUMNS) in identify_help  # the help lists the columns it writes


def _label_height(path: Path) -> int:
    """Rows holding the label's white text (the canvas is grey, the box coloured)."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    rows = np.flatnonzero((pixels.min(axis=2) > 200).any(axis=1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


@pytest.mark.parametrize("matched", [True, False])
def test_annotate_labels_grow_with_the_photo(tmp_path: Path, matched: bool) -> None:
    """Issue 14 item 8: --annotate labels were tiny on large photos (its text, in the box's
    colour, measured 68 px on a 4000 px photo, 1.7 %); now white on a box of that colour,
    3 % of the shorter side."""
    from facemetric.recognize.photos import annotate
    from facemetric.recognize.recognizer import FaceMatch

    heights = {}
    for side in (400, 4000):
        canvas = np.full((side, side, 3), 90, np.uint8)
        box = (0.3 * side, 0.3 * side, 0.6 * side, 0.7 * side)
        match = FaceMatch(
            box=box,
            landmarks=np.zeros((5, 2), np.float32),
            score=0.99,
            identity="eileen" if matched else None,
            similarity=0.9970,
            is_match=matched,
            gallery_face_id=1 if matched else None,
        )
        out = annotate(canvas, [match], tmp_path / f"{side}.png")
        heights[side] = _label_height(out)
    assert heights[400] >= 8  # readable on a small photo
    assert heights[4000] >= 0.02 * 4000  # and a large one: about 3 % of the shorter side
    assert heights[4000] >= 6 * heights[400]
