"""ONNX export: ONNX Runtime and PyTorch agree to 1e-4 on real crops; engine choice; errors."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import shared_set
from facemetric.data.image import load_image
from facemetric.errors import ConfigError, ModelError
from facemetric.models import (
    ModelSpec,
    TorchEmbedder,
    build_model,
    load_checkpoint,
    load_embedder,
    save_checkpoint,
)
from facemetric.models.export import ExportReport, OnnxEmbedder, export_onnx


def real_faces(n: int = 6) -> np.ndarray:
    """ORL face crops (greyscale PGM, 92x112): the embedders resize them to their input size."""
    orl = shared_set("orl")
    paths = [orl / f"s{i}" / "1.pgm" for i in range(1, n + 1)]
    return np.stack([load_image(p) for p in paths])


def astronaut_faces() -> np.ndarray:
    """Crops of a photo that ships with scikit-image (runs without the shared data)."""
    from skimage import data

    img = data.astronaut()
    return np.stack([img[30:230, 140:340], img[0:200, 100:300], img[50:250, 160:360]])


def test_export_matches_pytorch_on_real_crops(untrained_tiny_checkpoint: Path, tmp_path: Path):
    out = tmp_path / "tiny.onnx"
    report = export_onnx(untrained_tiny_checkpoint, out=out)
    assert isinstance(report, ExportReport) and report.path == out and out.is_file()
    assert report.max_abs_diff < 1e-4 and report.opset == 17
    assert report.to_dict()["path"] == str(out)

    ckpt = load_checkpoint(untrained_tiny_checkpoint)
    onnx = OnnxEmbedder(ckpt, out, batch_size=2)  # 2: batches are split and joined again
    torch_emb = TorchEmbedder(ckpt)
    assert onnx.spec == torch_emb.spec and onnx.threshold == torch_emb.threshold
    assert onnx.checkpoint_path == untrained_tiny_checkpoint and onnx.meta == ckpt.meta
    for faces in (real_faces(5), astronaut_faces(), real_faces(1)):
        for flip in (False, True):
            a, b = onnx.embed(faces, flip=flip), torch_emb.embed(faces, flip=flip)
            assert a.shape == b.shape == (len(faces), 32) and a.dtype == np.float32
            assert np.abs(a - b).max() < 1e-4
            np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # The flipped embedding really differs (the check above is not vacuous).
    faces = real_faces(2)
    assert np.abs(onnx.embed(faces, flip=True) - onnx.embed(faces)).max() > 1e-3
    assert onnx.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 32)


def test_auto_engine_uses_a_fresh_export_only(untrained_tiny_checkpoint: Path, tmp_path: Path):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(untrained_tiny_checkpoint.read_bytes())
    assert isinstance(load_embedder(ckpt), TorchEmbedder)  # nothing exported yet
    report = export_onnx(ckpt)  # default: beside the checkpoint
    assert report.path == tmp_path / "model.onnx"
    assert isinstance(load_embedder(ckpt), OnnxEmbedder)
    assert isinstance(load_embedder(ckpt, engine="torch"), TorchEmbedder)
    stale = report.path.stat().st_mtime - 10
    os.utime(report.path, (stale, stale))  # the checkpoint is now newer than its export
    assert isinstance(load_embedder(ckpt), TorchEmbedder)
    assert isinstance(load_embedder(ckpt, engine="onnx"), OnnxEmbedder)  # asked for: used


@pytest.mark.slow  # exporting and verifying a real backbone takes 10-40 s on 2 shared cores
@pytest.mark.parametrize("backbone", ["mobilenet_v3", "resnet18"])
def test_other_backbones_export(backbone: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    spec = ModelSpec(backbone=backbone, embedding_dim=64, input_size=112)
    path = save_checkpoint(tmp_path / f"{backbone}.pt", build_model(spec).eval(), threshold=0.4)
    report = export_onnx(path)
    assert report.max_abs_diff < 1e-4
    embedder = load_embedder(path, engine="onnx")
    assert embedder.threshold == pytest.approx(0.4)
    faces = astronaut_faces()
    ref = TorchEmbedder(load_checkpoint(path)).embed(faces)
    assert np.abs(embedder.embed(faces) - ref).max() < 1e-4


def test_errors_name_the_file(untrained_tiny_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(untrained_tiny_checkpoint)
    with pytest.raises(ModelError, match="no ONNX export"):
        OnnxEmbedder(ckpt, tmp_path / "absent.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model at all")
    with pytest.raises(ModelError, match="broken.onnx"):
        OnnxEmbedder(ckpt, broken)
    with pytest.raises(ModelError, match="missing.pt"):
        export_onnx(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(untrained_tiny_checkpoint, out=tmp_path / "x.onnx", opset=9)
    assert not (tmp_path / "x.onnx").exists()
    # An export for another input size is refused rather than silently resized.
    spec = ModelSpec(backbone="tiny", embedding_dim=32, input_size=96)
    other = save_checkpoint(tmp_path / "s96.pt", build_model(spec).eval())
    report = export_onnx(other)
    with pytest.raises(ModelError, match="96"):
        OnnxEmbedder(ckpt, report.path)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_export_into_a_folder_and_promoted_model(untrained_tiny_checkpoint: Path, tmp_path: Path):
    from facemetric.paths import best_model_path

    best = best_model_path()
    best.write_bytes(untrained_tiny_checkpoint.read_bytes())
    report = export_onnx(None, out=tmp_path)  # None = the promoted model; a folder keeps the name
    assert report.path == tmp_path / "best.onnx" and report.checkpoint == best


def test_int8_quantisation_stays_close_to_float(untrained_tiny_checkpoint: Path, tmp_path: Path):
    from facemetric.models.export import quantize_int8

    orl = shared_set("orl")
    calib = np.stack(
        [cv2.resize(load_image(orl / f"s{i}" / "2.pgm"), (112, 112)) for i in range(1, 33)]
    )
    report = export_onnx(untrained_tiny_checkpoint, out=tmp_path / "f32.onnx")
    int8 = quantize_int8(report.path, calib, model=untrained_tiny_checkpoint)
    assert int8 == tmp_path / "f32.int8.onnx" and int8.stat().st_size < report.path.stat().st_size
    ckpt = load_checkpoint(untrained_tiny_checkpoint)
    faces = real_faces(8)  # other photos than the calibration ones
    a = OnnxEmbedder(ckpt, report.path).embed(faces)
    b = OnnxEmbedder(ckpt, int8).embed(faces)
    cosines = (a * b).sum(axis=1)
    assert cosines.min() > 0.95, cosines
    with pytest.raises(ConfigError, match="at least 16"):
        quantize_int8(report.path, calib[:3], model=untrained_tiny_checkpoint)
    with pytest.raises(ModelError, match="absent.onnx"):
        quantize_int8(tmp_path / "absent.onnx", calib, model=untrained_tiny_checkpoint)


def test_onnx_sessions_do_not_busy_wait(untrained_tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The detector and the embedder run one after the other on the same cores; a session whose
    threads spin after its run slows the next one (ResNet50 embed 21 -> 32 ms after RetinaFace)."""
    from facemetric.data.detect import create_detector

    out = export_onnx(untrained_tiny_checkpoint, out=tmp_path / "tiny.onnx").path
    embedder = OnnxEmbedder(load_checkpoint(untrained_tiny_checkpoint), out)
    detector = create_detector("retinaface")
    for session in (embedder.session, detector._session):  # type: ignore[attr-defined]
        entry = "session.intra_op.allow_spinning"
        assert session.get_session_options().get_session_config_entry(entry) == "0"
