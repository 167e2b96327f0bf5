"""``facemetric data align``: every input kind, multi-face policies, names, resuming, the CLI."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from conftest import shared_set
from facemetric.cli import main
from facemetric.data.prepare import PrepareConfig, prepare_crops, read_manifest
from facemetric.errors import ConfigError, DatasetError

REPO = Path(__file__).resolve().parents[1]
FACEMETRIC = Path(sys.executable).with_name("facemetric")


def huge_png_header(path: Path) -> None:
    """A tiny PNG whose header claims 100000 x 100000 pixels (a decompression bomb)."""
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", 100_000, 100_000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


def exif_rotated(path: Path, upright: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(path, exif=exif.tobytes())


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ROOT/person/* with one file of every kind users have."""
    root = tmp_path_factory.mktemp("photos")
    face = astronaut()
    grey = np.asarray(Image.fromarray(face).convert("L"))
    good, bad = root / "good", root / "bad"
    good.mkdir()
    bad.mkdir()
    Image.fromarray(face).save(good / "jpeg.jpg", quality=90)
    Image.fromarray(grey).save(good / "grey.pgm")
    Image.fromarray(face).convert("CMYK").save(good / "cmyk.jpg")
    Image.fromarray(grey.astype(np.uint16) * 257).save(good / "deep.png")  # 16-bit
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])).save(
        good / "alpha.png"
    )
    Image.fromarray(face).save(good / "web.webp")
    Image.fromarray(face).save(good / "bitmap.bmp")
    exif_rotated(good / "rotated.jpg", np.ascontiguousarray(face[:, 40:440]))
    Image.fromarray(face).save(good / "same.png")  # same stem as same.jpg
    Image.fromarray(face[:, ::-1]).save(good / "same.jpg")
    (good / "notes.txt").write_text("not an image, not an input")
    Image.fromarray(np.hstack([face, face[:, ::-1]])).save(bad / "two.jpg")
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(bad / "wall.jpg")
    full = (good / "jpeg.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(full[: len(full) // 3])
    (bad / "text.jpg").write_text("hello, I am not a JPEG")
    huge_png_header(bad / "bomb.png")
    return root


def records(out: Path) -> dict[str, dict]:
    return {r["source"]: r for r in read_manifest(out)}


def test_every_input_kind_gets_the_right_status(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "crops"
    summary = prepare_crops(photos, out, PrepareConfig(workers=1, progress=False))
    got = records(out)
    assert summary.inputs == 15 == len(got)  # notes.txt is not an input
    for name in ("jpeg.jpg", "grey.pgm", "cmyk.jpg", "deep.png", "alpha.png", "web.webp"):
        assert got[f"good/{name}"]["status"] == "aligned", name
    for name in ("bitmap.bmp", "rotated.jpg", "same.png", "same.jpg"):
        assert got[f"good/{name}"]["status"] == "aligned", name
    assert got["bad/two.jpg"]["status"] == "aligned" and got["bad/two.jpg"]["detections"] == 2
    assert got["bad/wall.jpg"]["status"] == "no_face" and got["bad/wall.jpg"]["outputs"] == []
    for name in ("truncated.jpg", "text.jpg", "bomb.png"):
        assert got[f"bad/{name}"]["status"] == "unreadable", name
    assert "decompression bomb" in got["bad/bomb.png"]["error"]
    assert "not an image" in got["bad/text.jpg"]["error"]
    assert summary.totals == {"aligned": 11, "no_face": 1, "unreadable": 3}
    assert summary.crops_written == 11

    rec = got["good/jpeg.jpg"]
    assert rec["outputs"] == ["good/jpeg.png"] and rec["identity"] == "good"
    assert len(rec["box"]) == 4 and len(rec["landmarks"]) == 5 and rec["score"] > 0.8
    crop = np.asarray(Image.open(out / "good/jpeg.png"))
    assert crop.shape == (150, 150, 3) and crop.dtype == np.uint8  # dlib chips by default
    # The EXIF photo was turned upright before detection: its crop looks like the plain one.
    rotated = np.asarray(Image.open(out / "good/rotated.png")).astype(int)
    assert np.abs(rotated - crop.astype(int)).mean() < 25
    # Same stem, two extensions: two files, neither overwritten.
    assert {got["good/same.jpg"]["outputs"][0], got["good/same.png"]["outputs"][0]} == {
        "good/same.png",
        "good/same_png.png",
    }
    assert (out / "prepare.json").is_file()


def test_multi_face_policies(photos: Path, tmp_path: Path) -> None:
    src = tmp_path / "src" / "bad"
    src.mkdir(parents=True)
    shutil.copy(photos / "bad/two.jpg", src / "two.jpg")
    Image.open(photos / "bad/two.jpg").save(src / "two_1.jpg")  # owns the name two_1.png

    prepare_crops(src.parent, tmp_path / "all", PrepareConfig(multi="all", workers=1))
    got = records(tmp_path / "all")
    assert got["bad/two.jpg"]["outputs"] == ["bad/two.png", "bad/two_2.png"]
    assert got["bad/two_1.jpg"]["outputs"] == ["bad/two_1.png", "bad/two_1_1.png"]
    assert [f["output"] for f in got["bad/two.jpg"]["faces"]] == got["bad/two.jpg"]["outputs"]
    assert len(list((tmp_path / "all/bad").glob("*.png"))) == 4

    prepare_crops(src.parent, tmp_path / "skip", PrepareConfig(multi="skip", workers=1))
    got = records(tmp_path / "skip")
    assert got["bad/two.jpg"]["status"] == "multiple_faces"
    assert got["bad/two.jpg"]["outputs"] == [] and len(got["bad/two.jpg"]["faces"]) == 2
    assert not (tmp_path / "skip/bad").exists()


def test_resume_skips_done_inputs_and_force_redoes(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "p").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(astronaut()[:, i * 10 :]).save(root / "p" / f"a{i}.jpg")
    out = tmp_path / "out"
    cfg = PrepareConfig(workers=1, progress=False)
    first = prepare_crops(root, out, cfg)
    assert first.processed == 3 and first.skipped == 0

    # An interrupted run: the last line was torn and one input never got its line.
    lines = (out / "manifest.jsonl").read_text().splitlines(keepends=True)
    (out / "manifest.jsonl").write_text("".join(lines[:2]) + lines[2][:20])
    again = prepare_crops(root, out, cfg)
    assert again.processed == 1 and again.skipped == 2
    assert again.totals == {"aligned": 3}

    done = prepare_crops(root, out, cfg)
    assert done.processed == 0 and done.skipped == 3

    forced = prepare_crops(root, out, PrepareConfig(workers=1, progress=False, force=True))
    assert forced.processed == 3 and len(read_manifest(out)) == 3


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "p").mkdir(parents=True)
    Image.fromarray(astronaut()).save(root / "p" / "a.jpg")
    prepare_crops(root, tmp_path / "out", PrepareConfig(workers=1, progress=False))
    with pytest.raises(ConfigError, match="size 150 -> 128"):
        prepare_crops(root, tmp_path / "out", PrepareConfig(size=128, workers=1))
    with pytest.raises(ConfigError, match="template 'dlib' -> 'arcface'"):
        prepare_crops(root, tmp_path / "out", PrepareConfig(template="arcface", workers=1))
    summary = prepare_crops(root, tmp_path / "out", PrepareConfig(size=128, workers=1, force=True))
    assert summary.processed == 1
    assert Image.open(tmp_path / "out/p/a.png").size == (128, 128)


@pytest.mark.parametrize(
    "config,field",
    [
        (PrepareConfig(multi="most"), "multi"),
        (PrepareConfig(size=4), "size"),
        (PrepareConfig(min_score=2.0), "min_score"),
        (PrepareConfig(workers=0), "workers"),
        (PrepareConfig(detector="nope"), "detector"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, config: PrepareConfig, field: str) -> None:
    (tmp_path / "p").mkdir()
    Image.fromarray(astronaut()).save(tmp_path / "p" / "a.jpg")
    with pytest.raises(ConfigError, match=field):
        prepare_crops(tmp_path, tmp_path / "out", config)


def test_empty_folder_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no images"):
        prepare_crops(tmp_path, tmp_path / "out")


def test_real_photos_two_workers_through_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wild = shared_set("celeba-wild")
    root = tmp_path / "src"
    for person in sorted(wild.iterdir())[:2]:
        (root / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:4]:
            shutil.copy(photo, root / person.name / photo.name)
    out = tmp_path / "out"
    argv = ["data", "align", str(root), str(out), "--workers", "2", "--json", "--no-progress"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["processed"] == 8
    assert summary["statuses"].get("aligned", 0) >= 7
    for rec in read_manifest(out):
        for name in rec["outputs"]:
            assert Image.open(out / name).size == (150, 150)


def test_console_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "src" / "astronaut"
    root.mkdir(parents=True)
    Image.fromarray(astronaut()).save(root / "a.jpg")
    out = tmp_path / "out"
    cmd = [str(FACEMETRIC), "data", "align", str(root.parent), str(out), "--size", "96"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "1 aligned" in done.stdout
    assert Image.open(out / "astronaut/a.png").size == (96, 96)

    # Other settings into the same folder: one clear line, exit 2 (in-process: no second start-up).
    assert main(["data", "align", str(root.parent), str(out), "--size", "128"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "Traceback" not in err
