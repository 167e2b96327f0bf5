"""Folder data set of aligned face crops, batched augmentation and P identities x K images batches.

Identities are the sub-folders of one or several roots (merged by name). Images are decoded once,
resized to the model's input size and kept in memory as one uint8 tensor when they fit, so the
CPU trains rather than decodes. Augmentation runs on whole uint8 batches in torch (flip, small
random resized crop, colour jitter), which costs a few percent of a forward pass.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facemetric.data.image import is_image_path, load_image
from facemetric.errors import DatasetError

log = logging.getLogger(__name__)


@dataclass
class FaceSamples:
    """Image files and integer labels; ``identities[label]`` is the identity's name."""

    paths: list[Path]
    labels: np.ndarray
    identities: list[str]
    roots: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.identities))

    def subset(self, names: Sequence[str]) -> FaceSamples:
        """Only the images of the identities ``names`` (labels renumbered)."""
        keep = set(names)
        identities = [n for n in self.identities if n in keep]
        index = {n: i for i, n in enumerate(identities)}
        rows = [i for i, lab in enumerate(self.labels) if self.identities[lab] in keep]
        return FaceSamples(
            paths=[self.paths[i] for i in rows],
            labels=np.array([index[self.identities[self.labels[i]]] for i in rows], np.int64),
            identities=identities,
            roots=self.roots,
        )

    def summary(self) -> dict[str, Any]:
        return {
            "roots": [str(r) for r in self.roots],
            "identities": len(self.identities),
            "images": len(self.paths),
        }


def scan_roots(roots: Sequence[str | Path]) -> dict[str, list[Path]]:
    """``{identity: [image files]}`` over all roots; the same name in two roots is one identity."""
    found: dict[str, list[Path]] = {}
    for root in map(Path, roots):
        if not root.is_dir():
            raise DatasetError(f"{root}: data folder not found")
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            images = sorted(
                f
                for f in folder.iterdir()
                if f.is_file() and not f.name.startswith(".") and is_image_path(f.name)
            )
            if images:
                found.setdefault(folder.name, []).extend(images)
    return found


def samples_from_lists(
    roots: Sequence[str | Path], relative_paths: Sequence[str], list_name: str
) -> FaceSamples:
    """Samples for split-list paths (``identity/image``), each looked up in the roots in order."""
    by_identity: dict[str, list[Path]] = {}
    for rel in relative_paths:
        for root in map(Path, roots):
            candidate = root / rel
            if candidate.is_file():
                by_identity.setdefault(rel.split("/", 1)[0], []).append(candidate)
                break
        else:
            raise DatasetError(
                f"{list_name}: {rel} is in the split list but in none of "
                f"{', '.join(str(r) for r in roots)}"
            )
    return _to_samples(by_identity, roots)


def _to_samples(by_identity: dict[str, list[Path]], roots: Sequence[str | Path]) -> FaceSamples:
    identities = sorted(by_identity)
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(identities):
        paths.extend(by_identity[name])
        labels.extend([label] * len(by_identity[name]))
    return FaceSamples(paths, np.array(labels, np.int64), identities, [Path(r) for r in roots])


def load_samples(roots: Sequence[str | Path]) -> FaceSamples:
    """All identity folders of ``roots``; ``DatasetError`` when there is nothing to read."""
    if not roots:
        raise DatasetError("no data folder given")
    found = scan_roots(roots)
    if not found:
        where = ", ".join(str(r) for r in roots)
        raise DatasetError(
            f"{where}: no identity folders with images (layout is ROOT/person/image)"
        )
    return _to_samples(found, roots)


def check_trainable(samples: FaceSamples, where: str, drop_singletons: bool = False) -> FaceSamples:
    """Refuse data that cannot make triplets: no images, one identity, single-image identities."""
    if len(samples) == 0:
        raise DatasetError(f"{where}: no images to train on")
    counts = samples.counts()
    single = [samples.identities[i] for i in np.flatnonzero(counts < 2)]
    if single and drop_singletons:
        log.warning("dropping %d identities with a single image", len(single))
        samples = samples.subset([n for n in samples.identities if n not in set(single)])
    elif single:
        shown = ", ".join(single[:10]) + (
            f" and {len(single) - 10} more" if len(single) > 10 else ""
        )
        raise DatasetError(
            f"{where}: {len(single)} identities have a single image ({shown}); a triplet needs two "
            "images of a person: add images, remove them, or pass --drop-singletons"
        )
    if len(samples.identities) < 2:
        names = ", ".join(samples.identities) or "none"
        dropped = (
            f" once the {len(single)} with a single image were dropped"
            if single and drop_singletons
            else ""
        )
        raise DatasetError(
            f"{where}: only one identity with images ({names}){dropped}; a triplet needs a "
            "negative from another person: training needs at least 2 people"
        )
    return samples


# --- decoding and caching -----------------------------------------------------------------------


def decode_resized(path: Path, size: int) -> np.ndarray:
    """One image as (size, size, 3) uint8 RGB (ORL's 92x112 crops are stretched to a square)."""
    image = load_image(path)
    if image.shape[0] != size or image.shape[1] != size:
        t = torch.tensor(image).permute(2, 0, 1)[None].float()
        t = F.interpolate(
            t, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        image = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return image


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else a conservative 2 GiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 << 30


class FaceDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Items are ((S, S, 3) uint8 tensor, label); whole batches come from ``batch(indices)``."""

    def __init__(
        self, samples: FaceSamples, size: int, cache: bool | None = None, workers: int = 0
    ) -> None:
        self.samples = samples
        self.size = size
        self.cache_bytes = len(samples) * size * size * 3
        if cache is None:
            cache = self.cache_bytes <= available_memory_bytes() // 2
        self.images: torch.Tensor | None = None
        if cache:
            self.images = self._decode_all(workers)
            log.info("cached %d images in memory: %.1f MB", len(samples), self.cache_bytes / 1e6)

    def _decode_all(self, workers: int) -> torch.Tensor:
        out = torch.empty((len(self.samples), self.size, self.size, 3), dtype=torch.uint8)
        threads = max(1, workers or (os.cpu_count() or 1))

        def fill(i: int) -> None:
            out[i].numpy()[...] = decode_resized(self.samples.paths[i], self.size)

        with ThreadPoolExecutor(threads) as pool:  # PIL releases the GIL while decoding
            list(pool.map(fill, range(len(self.samples))))
        return out

    @property
    def bytes_mb(self) -> float:
        return self.cache_bytes / 1e6

    @property
    def cached(self) -> bool:
        return self.images is not None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.images is not None:
            image = self.images[index]
        else:
            image = torch.tensor(decode_resized(self.samples.paths[index], self.size))
        return image, int(self.samples.labels[index])

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, S, S, 3) uint8 images and (N,) int64 labels for ``indices``."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        labels = torch.from_numpy(self.samples.labels)[idx]
        if self.images is not None:
            return self.images[idx], labels
        return torch.stack([self[i][0] for i in idx.tolist()]), labels


# --- P x K sampling -----------------------------------------------------------------------------


class PKSampler:
    """Batches of ``p`` identities x ``k`` images, deterministic per (seed, epoch), sharded by rank.

    Every epoch holds ``len(labels) // (p * k)`` batches in all (at least one per rank); batch ``b``
    goes to rank ``b % world_size``. Identities are drawn uniformly without replacement within a
    batch; an identity with fewer than ``k`` images repeats some. ``state_dict`` records the epoch
    and the position inside it, so a resumed run draws exactly the batches it would have drawn.
    """

    def __init__(
        self,
        labels: np.ndarray,
        p: int,
        k: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        batches_per_epoch: int | None = None,
    ) -> None:
        self.by_label = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
        self.by_label = [ix for ix in self.by_label if len(ix)]
        if p > len(self.by_label):
            raise DatasetError(
                f"batch needs {p} identities (--batch-p) but the data has {len(self.by_label)}"
            )
        self.p, self.k, self.seed = p, k, seed
        self.rank, self.world_size = rank, world_size
        total = batches_per_epoch or max(1, len(labels) // (p * k))
        self.batches_per_rank = max(1, total // world_size)
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        return self.batches_per_rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def _batch(self, rng: np.random.Generator) -> list[int]:
        chosen = rng.choice(len(self.by_label), size=self.p, replace=False)
        out: list[int] = []
        for c in chosen:
            pool = self.by_label[c]
            out.extend(rng.choice(pool, size=self.k, replace=len(pool) < self.k).tolist())
        return out

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for b in range(self.batches_per_rank * self.world_size):
            batch = self._batch(rng)  # drawn on every rank so the stream is the same everywhere
            local = b // self.world_size
            if b % self.world_size != self.rank or local < self.position:
                continue
            self.position = local + 1
            yield batch


# --- augmentation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """Face-safe augmentation: mirror, a small zoom/shift, mild colour changes."""

    flip: float = 0.5
    scale: tuple[float, float] = (0.85, 1.0)
    shift: float = 0.05
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


def augment_batch(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> augmented (N, 3, S, S) float in [0, 255], one warp for the batch."""
    x = images.permute(0, 3, 1, 2).float()
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    scale = uniform(*config.scale)
    sign = torch.where(torch.rand(n, generator=generator) < config.flip, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale * sign
    theta[:, 1, 1] = scale
    theta[:, 0, 2] = uniform(-config.shift, config.shift)
    theta[:, 1, 2] = uniform(-config.shift, config.shift)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def jitter(amount: float) -> torch.Tensor:
        return uniform(1 - amount, 1 + amount).view(n, 1, 1, 1)

    x = x * jitter(config.brightness)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * jitter(config.contrast) + mean
    grey = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = (x - grey) * jitter(config.saturation) + grey
    return x.clamp_(0, 255)


def to_model_input(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], channels_last: bool = True
) -> torch.Tensor:
    """(N, 3, S, S) float in [0, 255] (or (N, S, S, 3) uint8) -> normalised model input."""
    if x.dtype == torch.uint8:
        x = x.permute(0, 3, 1, 2).float()
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1) * 255.0
    x = (x - m) / s
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def batches_per_epoch(n_images: int, p: int, k: int) -> int:
    return max(1, math.floor(n_images / (p * k)))
