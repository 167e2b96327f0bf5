"""Teachers: the distillation loss against hand-computed values, the registry, the cache, dlib."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_set
from facemetric.errors import ConfigError
from facemetric.train import teacher as teachers
from facemetric.train.teacher import (
    Teacher,
    available_teachers,
    build_teacher,
    cached_embeddings,
    distillation_loss,
)

HAS_DLIB = (
    importlib.util.find_spec("dlib") is not None
    and importlib.util.find_spec("face_recognition_models") is not None
)
requires_dlib = pytest.mark.skipif(
    not HAS_DLIB,
    reason="the dlib teacher extra is not installed: pip install 'facemetric[teacher]' "
    "(dlib-bin, face_recognition_models)",
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


# --- registry and install hint ------------------------------------------------------------------


def test_registry_knows_dlib_and_refuses_unknown() -> None:
    assert "dlib" in available_teachers()
    with pytest.raises(ConfigError, match="unknown; choose one of dlib"):
        build_teacher("nope")


def test_missing_dlib_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes "import dlib" raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'facemetric\[teacher\]'"):
        build_teacher("dlib")


def test_trainer_hook_finds_the_teacher_module() -> None:
    from facemetric.train.setup import build_teacher as trainer_build_teacher

    with pytest.raises(ConfigError, match="unknown"):
        trainer_build_teacher("nope")


# --- cache --------------------------------------------------------------------------------------


class MeanColour(Teacher):
    """A cheap deterministic teacher that counts the faces it embeds."""

    name, dim = "mean-colour", 3

    def __init__(self, version: int = 1) -> None:
        self.version, self.seen = version, 0

    def embed(self, faces: np.ndarray) -> np.ndarray:
        faces = teachers.check_faces(faces)
        self.seen += len(faces)
        v = faces.reshape(len(faces), -1, 3).mean(1).astype(np.float32) + 1.0
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "version": self.version}


def _write_faces(root: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        rel = f"p{i % 3}/{i}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / rel)
        paths.append(rel)
    return paths


def test_cache_embeds_each_image_once_and_keeps_order(tmp_path: Path) -> None:
    paths = _write_faces(tmp_path / "data", 7)
    cache = tmp_path / "run" / "teacher-mean-colour.npy"
    t = MeanColour()
    first = cached_embeddings(t, tmp_path / "data", paths[:5], cache, chunk=2)
    assert t.seen == 5 and first.shape == (5, 3) and cache.is_file()

    again = MeanColour()
    order = [paths[6], paths[0], paths[3], paths[5]]
    second = cached_embeddings(again, tmp_path / "data", order, cache)
    assert again.seen == 2  # only the two new images
    direct = MeanColour().embed(
        np.stack([np.asarray(Image.open(tmp_path / "data" / p).convert("RGB")) for p in order])
    )
    np.testing.assert_allclose(second, direct, rtol=1e-6)
    np.testing.assert_allclose(second[1], first[0], rtol=1e-6)
    assert np.load(cache).shape == (7, 3)


def test_cache_from_another_teacher_is_rebuilt(tmp_path: Path) -> None:
    paths = _write_faces(tmp_path / "data", 3)
    cache = tmp_path / "teacher.npy"
    cached_embeddings(MeanColour(1), tmp_path / "data", paths, cache)
    other = MeanColour(2)
    cached_embeddings(other, tmp_path / "data", paths, cache)
    assert other.seen == 3


# --- dlib ---------------------------------------------------------------------------------------


def _aligned(path: Path) -> np.ndarray:
    from facemetric.data.align import detect_and_align
    from facemetric.data.detect import create_detector
    from facemetric.data.image import load_image

    faces = detect_and_align(load_image(path), create_detector("retinaface"))
    assert faces, f"no face found in {path}"
    return faces[0].crop


@pytest.fixture(scope="module")
def cfp_crops() -> np.ndarray:
    """Our ArcFace crops of two photos of CFP person 001 and one of person 002."""
    cfp = shared_set("cfp")
    photos = ("001/frontal_01.jpg", "001/frontal_04.jpg", "002/frontal_01.jpg")
    return np.stack([_aligned(cfp / p) for p in photos])


@requires_dlib
@pytest.mark.parametrize("alignment", sorted(teachers.CHIP_MAKERS))
def test_dlib_teacher_tells_cfp_people_apart(alignment: str, cfp_crops: np.ndarray) -> None:
    crops = cfp_crops
    teacher = build_teacher("dlib", alignment=alignment)
    chips = teacher.chips(crops)  # type: ignore[attr-defined]
    assert all(c.shape == (150, 150, 3) and c.dtype == np.uint8 for c in chips)
    emb = teacher.embed(crops)
    assert emb.shape == (3, 128) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    same, different = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert same > different, (same, different)


@requires_dlib
def test_dlib_teacher_refuses_unknown_alignment_and_bad_crops() -> None:
    with pytest.raises(ConfigError, match="alignment 'nope' unknown"):
        build_teacher("dlib", alignment="nope")
    teacher = build_teacher("dlib")
    with pytest.raises(ValueError, match="square RGB crops"):
        teacher.embed(np.zeros((2, 112, 100, 3), np.uint8))


def test_trainer_asks_the_teacher_once_per_crop_and_reuses_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from facemetric.train import TrainConfig, train

    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    for person in range(3):
        (data / f"p{person}").mkdir(parents=True)
        for i in range(4):
            face = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(face).save(data / f"p{person}" / f"{i}.png")
    made: list[MeanColour] = []

    def factory(**_: object) -> MeanColour:
        made.append(MeanColour())
        return made[-1]

    monkeypatch.setitem(teachers._REGISTRY, "mean-colour", factory)
    cache = tmp_path / "teacher.npy"
    config = TrainConfig(
        data=(str(data),),
        out=str(tmp_path / "run1"),
        backbone="tiny",
        dim=8,
        size=32,
        batch_p=3,
        batch_k=2,
        epochs=1,
        steps_per_epoch=3,
        val_fraction=0.0,
        teacher="mean-colour",
        teacher_cache=str(cache),
        progress=False,
        tensorboard=False,
        precision="fp32",
        log_every=1,
    )
    train(config)
    assert made[0].seen == 12 and np.load(cache).shape == (12, 3)  # each crop once, 3 steps
    steps = [
        json.loads(line)
        for line in (tmp_path / "run1" / "metrics.jsonl").read_text().splitlines()
        if '"kind": "step"' in line
    ]
    assert steps and all(s["distill"] > 0 for s in steps)

    train(replace(config, out=str(tmp_path / "run2")))  # same crops: nothing asked again
    assert made[1].seen == 0
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(data / "p1" / "0.png")
    train(replace(config, out=str(tmp_path / "run3")))  # a re-made crop is asked again
    assert made[2].seen == 1
