"""The pretrained 'dlib' model by name in every command that takes a model, on real photos,
and ``facemetric models``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_set
from facemetric.cli import main
from facemetric.models import load_checkpoint
from facemetric.models.pretrained import dlib as dlib_model

pytestmark = pytest.mark.skipif(
    not dlib_model.DLIB.installed(),
    reason="the dlib model's weights are missing: pip install face_recognition_models",
)
PEOPLE, PHOTOS = 4, 5


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PEOPLE celeba-wild people, PHOTOS photos each, copied (the shared folder is read-only)."""
    source = shared_set("celeba-wild")
    root = tmp_path_factory.mktemp("photos")
    for person in sorted(p for p in source.iterdir() if p.is_dir())[:PEOPLE]:
        (root / person.name).mkdir()
        for photo in sorted(person.glob("*.jpg"))[:PHOTOS]:
            shutil.copy(photo, root / person.name / photo.name)
    return root


def test_models_lists_dlib_with_its_facts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "dlib (default)" in out and "face_recognition_models (installed)" in out
    assert "public domain" in out and "150 px, dlib template" in out and "128-d" in out
    assert "CFP-FF" in out and "default model: dlib (nothing promoted" in out
    # which threshold this is, beside the gallery's own (issue 29)
    assert "model threshold 0." in out and "calibrated on its people" in out
    code, out, _ = run(capsys, "models", "--json")
    entries = {e["name"]: e for e in json.loads(out)["models"]}
    entry = entries["dlib"]
    assert entry["name"] == "dlib" and entry["installed"] and entry["embedding_dim"] == 128
    # the opt-in second network is listed with where it comes from and its terms
    faceres = entries["faceres"]
    assert not faceres["default"] and faceres["embedding_dim"] == 1024
    assert "@vladmandic/human" in faceres["package"] and "unclear" in faceres["licence"]
    assert "facemetric models install faceres" in faceres["install"] or faceres["installed"]
    assert any("HSE" in note for note in faceres["provenance"])
    assert 0.8 < entry["threshold"] < 1.0


def test_dlib_in_every_command_that_takes_a_model(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "g.db")
    # embed
    code, out, _ = run(capsys, "embed", "dlib", str(photos), "--out", str(tmp_path / "e.npz"))
    assert code == 0 and f"embedded {PEOPLE * PHOTOS} images" in out
    with np.load(tmp_path / "e.npz") as z:
        assert z["embeddings"].shape == (PEOPLE * PHOTOS, 128)
    # evaluate: identification on the folder, and the pretrained threshold is not overwritten
    code, out, _ = run(
        capsys, "evaluate", "dlib", "--identify", str(photos), "--out", str(tmp_path / "ev")
    )
    assert code == 0 and "rank-1" in out
    code, _, err = run(
        capsys, "evaluate", "dlib", "--identify", str(photos), "--calibrate", "--out", str(tmp_path)
    )
    assert code == 2 and "pretrained model" in err
    # gallery build / reembed / identify with --model dlib
    # every photo saved (a blurred one flagged, not refused): this test is about the model
    build = ("gallery", "build", str(photos), "--db", db, "--model", "dlib", "--allow-low-quality")
    code, out, _ = run(capsys, *build)
    assert code == 0 and f"added {PEOPLE * PHOTOS} faces of {PEOPLE} people" in out
    code, out, _ = run(capsys, "gallery", "reembed", "--db", db, "--model", "dlib")
    assert code == 0 and f"re-embedded {PEOPLE * PHOTOS} faces" in out
    person = sorted(p.name for p in photos.iterdir())[0]
    photo = sorted((photos / person).iterdir())[0]
    code, out, _ = run(capsys, "identify", str(photo), "--db", db, "--model", "dlib", "--json")
    assert code == 0
    face = json.loads(out)[0]["faces"][0]
    assert face["identity"] == person and face["is_match"]
    assert face["top_k"][0]["best"] > 0.99  # its own photo; the score averages 2 references
    # export --onnx
    code, out, _ = run(capsys, "export", "dlib", "--onnx", "--out", str(tmp_path / "d.onnx"))
    assert code == 0 and (tmp_path / "d.onnx").is_file()
    # compare can promote the pretrained model; it keeps its calibrated threshold
    code, out, _ = run(
        capsys, "compare", "dlib", "--identify", str(photos), "--promote", "--metric", "rank1"
    )
    assert code == 0 and "promoted dlib" in out
    best = load_checkpoint(_home() / "best.pt")
    assert best.meta["pretrained"] == "dlib"
    assert best.threshold == pytest.approx(dlib_model.DLIB.threshold)
    # serve: the web app loads it by name
    from fastapi.testclient import TestClient

    from facemetric.web.app import create_app
    from facemetric.web.settings import WebSettings

    settings = WebSettings(model="dlib", db=db, admin_token="t" * 24, allowed_hosts=["testserver"])
    with TestClient(create_app(settings)) as client:
        model = client.get("/api/model").json()
        assert model["loaded"] and model["backbone"] == "dlib_resnet"
        assert model["input_size"] == 150
        assert client.get("/api/health").json()["status"] == "ok"


def _home() -> Path:
    from facemetric.paths import facemetric_home

    return facemetric_home()


def test_align_then_fine_tune_dlib(photos: Path, tmp_path: Path) -> None:
    """data align cuts dlib chips by default; train with no backbone fine-tunes dlib on them,
    and refuses crops of another template."""
    from facemetric.data.prepare import read_crop_settings

    crops = tmp_path / "crops"
    assert main(["data", "align", str(photos), str(crops), "--no-progress"]) == 0
    settings = read_crop_settings(crops)
    assert settings is not None and settings["template"] == "dlib" and settings["size"] == 150
    assert Image.open(next(crops.glob("*/*.png"))).size == (150, 150)
    args = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-p", "4", "--batch-k", "2"]
    args += ["--val-fraction", "0", "--no-progress", "--no-tensorboard"]
    assert main(["train", str(crops), "--out", str(tmp_path / "run"), *args]) == 0
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt.spec.backbone == "dlib_resnet" and ckpt.meta["config"]["init"] == "dlib"
    assert ckpt.meta["config"]["lr"] == pytest.approx(1e-5)
    assert ckpt.meta["config"]["freeze_stages"] == 4
    assert ckpt.meta["config"]["margin"] == pytest.approx(0.04)
    # The starting network is the teacher: each face's embedding is held near where it was.
    assert ckpt.meta["config"]["teacher"] == "init"
    assert ckpt.meta["config"]["teacher_loss"] == "embedding"
    assert ckpt.meta["config"]["teacher_weight"] == pytest.approx(1.0)
    # dlib's own loss in its own metric, on the crops as they are (benchmarks/finetune_cfp.py).
    assert ckpt.meta["config"]["loss"] == "pair_threshold"
    assert ckpt.meta["config"]["augment"] is False
    # --teacher none turns the recipe's teacher off; --loss triplet trains a Triplet Network.
    bare = ["--teacher", "none", "--loss", "triplet"]
    assert main(["train", str(crops), "--out", str(tmp_path / "bare"), *bare, *args]) == 0
    bare_config = load_checkpoint(tmp_path / "bare" / "last.pt").meta["config"]
    assert bare_config["teacher"] is None and bare_config["loss"] == "triplet"
    assert bare_config["margin"] == pytest.approx(0.04)
    arc = tmp_path / "arc"
    assert main(["data", "align", str(photos), str(arc), "--template", "arcface"]) == 0
    assert main(["train", str(arc), "--out", str(tmp_path / "bad"), *args]) == 2


def test_flip_model_by_name_gallery_compare_promote(
    photos: Path, tmp_path: Path, untrained_tiny_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    """``dlib:flip`` is a model like any other: the gallery keeps its embeddings apart from
    dlib's, identify uses them, and compare --promote picks it over a worse model."""
    from facemetric.gallery.store import GalleryStore

    db = str(tmp_path / "g.db")
    build = ("gallery", "build", str(photos), "--db", db, "--model", "dlib:flip")
    code, out, _ = run(capsys, *build, "--allow-low-quality")
    assert code == 0 and f"added {PEOPLE * PHOTOS} faces" in out
    code, out, _ = run(capsys, "gallery", "reembed", "--db", db, "--model", "dlib")
    assert code == 0
    with GalleryStore(db) as store:
        keys = store.model_keys()
    assert len(keys) == 2 and set(keys.values()) == {PEOPLE * PHOTOS}  # one set per mode
    person = sorted(p.name for p in photos.iterdir())[0]
    photo = sorted((photos / person).iterdir())[0]
    code, out, _ = run(capsys, "identify", str(photo), "--db", db, "--model", "dlib:flip", "--json")
    face = json.loads(out)[0]["faces"][0]
    assert code == 0 and face["identity"] == person and face["is_match"]
    code, out, _ = run(
        capsys,
        "compare",
        str(untrained_tiny_checkpoint),
        "dlib:flip",
        "--identify",
        str(photos),
        "--promote",
        "--metric",
        "rank1",
    )
    assert code == 0 and "promoted dlib:flip" in out
    best = load_checkpoint(_home() / "best.pt")
    assert best.meta["pretrained"] == "dlib:flip" and best.spec.extra["flip"] is True


def test_fused_model_reembeds_a_gallery_from_its_chips(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A gallery built with dlib is re-embedded by dlib+faceres:flip from the stored chips (no
    photos needed) and identifies with it; faceres must be installed (else skipped)."""
    from facemetric.gallery.store import GalleryStore
    from facemetric.models.pretrained import faceres

    if not faceres.FACERES.installed():
        pytest.skip(f"faceres is not installed: {faceres.INSTALL_HINT}")
    db = str(tmp_path / "g.db")
    build = ("gallery", "build", str(photos), "--db", db, "--model", "dlib")
    assert run(capsys, *build, "--allow-low-quality")[0] == 0
    code, out, _ = run(capsys, "gallery", "reembed", "--db", db, "--model", "dlib+faceres:flip")
    assert code == 0 and f"re-embedded {PEOPLE * PHOTOS} faces" in out
    with GalleryStore(db) as store:
        dims = {len(store.embeddings(k).vectors[0]) for k in store.model_keys()}
    assert dims == {128, 1152}
    person = sorted(p.name for p in photos.iterdir())[1]
    photo = sorted((photos / person).iterdir())[0]
    code, out, _ = run(
        capsys, "identify", str(photo), "--db", db, "--model", "dlib+faceres:flip", "--json"
    )
    face = json.loads(out)[0]["faces"][0]
    assert code == 0 and face["identity"] == person and face["is_match"]
