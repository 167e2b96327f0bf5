"""What a run folder keeps across epochs and kills: checkpoints, the resume state, the config.

``last.pt`` and ``best.pt`` are facemetric checkpoints; ``last.state.pt`` holds everything
``--resume`` needs (weights, loss parameters, optimizer, scaler, sampler position, counters, RNG
states). At the end of a run the match threshold is calibrated into both checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facemetric.data.dataset import FaceDataset
from facemetric.errors import ConfigError
from facemetric.models import EmbeddingNet, load_checkpoint, save_checkpoint
from facemetric.models.calibration import (
    DEFAULT_TARGET_FAR,
    all_pair_scores,
    calibrate_on_pairs,
)
from facemetric.models.checkpoint import atomic_torch_save, update_checkpoint
from facemetric.train.config import TrainConfig
from facemetric.train.runtime import generator_states, set_generator_states
from facemetric.train.validation import embed_dataset

log = logging.getLogger(__name__)

STATE_FILE = "last.state.pt"
# What a --resume may change: the budget and the machine, never what the run trains.
RESUME_KEEPS = ("epochs", "max_minutes", "patience", "progress", "device", "workers", "tensorboard")


def config_for_run(config: TrainConfig) -> TrainConfig:
    """On --resume: the saved config, with only budget/machine fields from the new one.

    Without --resume, ``ConfigError`` when ``config.out`` already holds a run."""
    out = Path(config.out)
    state = out / STATE_FILE
    if not config.resume:
        if state.exists() or (out / "last.pt").exists():
            raise ConfigError(
                f"--out {out}: a run is already there; pass --resume to continue it or "
                "choose another --out"
            )
        return config
    if not state.is_file():
        raise ConfigError(f"--resume: {state} not found (nothing to resume in {out})")
    saved = torch.load(state, map_location="cpu", weights_only=True)["config"]
    return replace(
        TrainConfig.from_dict(saved), **{k: getattr(config, k) for k in RESUME_KEEPS}, resume=True
    ).resolved()


def resume_state(
    config: TrainConfig,
    parts: Mapping[str, Any],
    counters: Mapping[str, Any],
    aug_gen: torch.Generator,
    criterion: nn.Module,
) -> dict[str, Any]:
    """The resume state: the config, each part's ``state_dict()`` under its name, the loop's
    counters, and the RNG states (torch's, the augmentation's, the miner's)."""
    return {
        "config": config.to_dict(),
        **{name: part.state_dict() for name, part in parts.items()},
        **counters,
        "rng_torch": torch.get_rng_state(),
        "rng_augment": aug_gen.get_state(),
        "rng_miner": generator_states(criterion),
    }


def restore_state(
    path: Path, parts: Mapping[str, Any], aug_gen: torch.Generator, criterion: nn.Module
) -> dict[str, Any]:
    """Load ``path`` (written from ``resume_state``) into ``parts`` and the RNGs; returns the
    whole state, for the caller's counters."""
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    torch.set_rng_state(state["rng_torch"])
    aug_gen.set_state(state["rng_augment"])
    set_generator_states(criterion, state["rng_miner"])
    return state


def save_epoch(
    out: Path,
    model: EmbeddingNet,
    threshold: float | None,
    meta: dict[str, Any],
    state: dict[str, Any],
    improved: bool,
) -> None:
    """Write ``last.pt``, the resume state, and ``best.pt`` when the epoch ``improved``."""
    # last.pt before the resume state: a kill between the two leaves the state one epoch
    # behind (--resume repeats that epoch and rewrites last.pt), never last.pt behind a
    # state that --resume would skip past.
    save_checkpoint(out / "last.pt", model, threshold, meta)
    atomic_torch_save(state, out / STATE_FILE)
    if improved:
        save_checkpoint(out / "best.pt", model, threshold, meta)


def calibrate_run(out: Path, val_set: FaceDataset) -> None:
    """Store in best.pt and last.pt the match threshold for FAR 1e-3 on every pair of the
    validation people (who never trained), so the run's models are ready to match."""
    labels = val_set.samples.labels
    for name in ("best.pt", "last.pt"):
        path = out / name
        if not path.is_file():
            continue
        model = load_checkpoint(path).build()
        spec = model.spec
        emb = embed_dataset(model, val_set, spec.mean, spec.std, torch.device("cpu"))
        calib = calibrate_on_pairs(*all_pair_scores(emb, labels), DEFAULT_TARGET_FAR)
        if calib is None:
            log.warning(
                "%s: too few validation pairs to calibrate a threshold for FAR %g; calibrate "
                "it with facemetric evaluate %s --identify PEOPLE --calibrate",
                path,
                DEFAULT_TARGET_FAR,
                path,
            )
            continue
        calib.update(on="validation people", identities=len(set(labels.tolist())))
        update_checkpoint(path, threshold=calib["threshold"], calibration=calib)
        log.info(
            "%s: threshold %.4f for FAR %g on %d impostor pairs of %d validation people (TAR %.3f)",
            *(name, calib["threshold"], DEFAULT_TARGET_FAR, calib["impostor_pairs"]),
            *(calib["identities"], calib["tar"]),
        )
