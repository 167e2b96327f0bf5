"""Folder data set: discovery, merging, split lists, errors, caching, P x K, augmentation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_set
from facemetric.data.dataset import (
    AugmentConfig,
    FaceDataset,
    PKSampler,
    augment_batch,
    check_trainable,
    load_samples,
    samples_from_lists,
    to_model_input,
)
from facemetric.errors import DatasetError


def make_folder(root: Path, counts: dict[str, int], size: tuple[int, int] = (40, 48)) -> Path:
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    (root / "manifest.jsonl").write_text("{}\n")  # top-level files are not data
    return root


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no identity folders with images"):
        load_samples([tmp_path])
    with pytest.raises(DatasetError, match="data folder not found"):
        load_samples([tmp_path / "missing"])


def test_one_identity_is_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path, {"alice": 3})
    with pytest.raises(DatasetError, match=r"only one identity with images \(alice\)"):
        check_trainable(load_samples([root]), str(root))


def test_single_image_identities_are_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path, {"alice": 3, "bob": 1, "carol": 1, "dave": 2})
    samples = load_samples([root])
    with pytest.raises(DatasetError, match=r"2 identities have a single image \(bob, carol\)"):
        check_trainable(samples, str(root))
    kept = check_trainable(samples, str(root), drop_singletons=True)
    assert kept.identities == ["alice", "dave"] and len(kept) == 5


def test_roots_merge_by_identity_name(tmp_path: Path) -> None:
    a = make_folder(tmp_path / "a", {"alice": 2, "bob": 2})
    b = make_folder(tmp_path / "b", {"bob": 3, "carol": 2})
    samples = load_samples([a, b])
    assert samples.identities == ["alice", "bob", "carol"]
    assert samples.counts().tolist() == [2, 5, 2]
    assert samples.summary()["images"] == 9


def test_split_lists_resolve_against_roots(tmp_path: Path) -> None:
    a = make_folder(tmp_path / "a", {"alice": 2})
    b = make_folder(tmp_path / "b", {"bob": 2})
    samples = samples_from_lists([a, b], ["alice/0.png", "bob/1.png"], "train.txt")
    assert [p.relative_to(tmp_path).as_posix() for p in samples.paths] == [
        "a/alice/0.png",
        "b/bob/1.png",
    ]
    with pytest.raises(DatasetError, match=r"train.txt: carol/0.png is in the split list"):
        samples_from_lists([a, b], ["carol/0.png"], "train.txt")


def test_orl_greyscale_pgm_is_resized_and_cached() -> None:
    orl = shared_set("orl")
    samples = load_samples([orl])
    assert len(samples.identities) == 40 and len(samples) == 400
    subset = samples.subset(samples.identities[:3])
    data = FaceDataset(subset, size=56, cache=True)
    assert data.cached and data.images is not None
    assert data.images.shape == (30, 56, 56, 3) and data.images.dtype == torch.uint8
    assert data.cache_bytes == 30 * 56 * 56 * 3
    image, label = data[12]
    assert label == 1
    # Greyscale in, identical channels out.
    assert torch.equal(image[..., 0], image[..., 1])
    uncached = FaceDataset(subset, size=56, cache=False)
    assert not uncached.cached
    assert torch.equal(uncached.batch([0, 12])[0], data.batch([0, 12])[0])


def test_pk_sampler_batches_and_shards() -> None:
    labels = np.repeat(np.arange(10), [2, 3, 4, 5, 6, 7, 8, 9, 10, 1])
    sampler = PKSampler(labels, p=4, k=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(labels) // 12
    for batch in batches:
        per_id = Counter(int(labels[i]) for i in batch)
        assert len(per_id) == 4 and set(per_id.values()) == {3}
    assert batches == list(PKSampler(labels, p=4, k=3, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != batches

    ranks = [PKSampler(labels, 4, 3, seed=1, rank=r, world_size=2) for r in range(2)]
    shards = [list(s) for s in ranks]
    assert len(shards[0]) == len(shards[1]) == len(batches) // 2
    interleaved = [b for pair in zip(*shards, strict=True) for b in pair]
    assert interleaved == batches[: len(interleaved)]


def test_pk_sampler_resumes_mid_epoch() -> None:
    labels = np.repeat(np.arange(8), 6)
    full = PKSampler(labels, p=2, k=3, seed=5)
    full.set_epoch(3)
    expected = list(full)
    cut = PKSampler(labels, p=2, k=3, seed=5)
    cut.set_epoch(3)
    it = iter(cut)
    head = [next(it), next(it), next(it)]
    state = cut.state_dict()
    resumed = PKSampler(labels, p=2, k=3, seed=5)
    resumed.load_state_dict(state)
    assert head + list(resumed) == expected


def test_pk_sampler_needs_enough_identities() -> None:
    with pytest.raises(DatasetError, match="batch needs 5 identities"):
        PKSampler(np.repeat(np.arange(3), 4), p=5, k=2)


def test_augmentation_shapes_and_exact_mirror() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 32, 32, 3), dtype=torch.uint8, generator=g)
    out = augment_batch(images, AugmentConfig(), g)
    assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    assert not torch.allclose(out, images.permute(0, 3, 1, 2).float())
    mirror_only = AugmentConfig(
        flip=1.0, scale=(1.0, 1.0), shift=0.0, brightness=0, contrast=0, saturation=0
    )
    mirrored = augment_batch(images, mirror_only, g)
    expected = images.permute(0, 3, 1, 2).float().flip(-1)
    assert torch.allclose(mirrored, expected, atol=1e-3)


def test_model_input_normalisation_and_layout() -> None:
    images = torch.full((2, 4, 4, 3), 255, dtype=torch.uint8)
    x = to_model_input(images, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert torch.allclose(x, torch.full_like(x, 2.0))
    assert x.is_contiguous(memory_format=torch.channels_last)
