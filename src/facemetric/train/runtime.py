"""Small pieces of the training loop: precision choice, lr schedule, collapse test, RNG state."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

COLLAPSE_SPREAD = 1e-3


def embeddings_collapsed(embeddings: torch.Tensor) -> bool:
    """True when every embedding of a batch is (nearly) the same point."""
    if embeddings.shape[0] < 2:
        return False
    spread = (embeddings - embeddings.mean(0, keepdim=True)).norm(dim=1).max()
    return bool(spread < COLLAPSE_SPREAD)


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware has it (AVX2-only CPUs emulate it slowly), fp16 on old GPUs."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_has_bf16() else None


def lr_factor(progress: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up over the first ``warmup`` of training, then cosine down to ``min_ratio``."""
    if warmup > 0 and progress < warmup:
        return max(progress / warmup, 1e-3)
    t = min(1.0, (progress - warmup) / max(1e-9, 1.0 - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def generator_states(module: nn.Module) -> list[torch.Tensor]:
    """States of the random generators that sub-modules keep (miners), for resuming."""
    return [g.get_state() for g in _generators(module)]


def set_generator_states(module: nn.Module, states: list[torch.Tensor]) -> None:
    for generator, state in zip(_generators(module), states, strict=True):
        generator.set_state(state)


def _generators(module: nn.Module) -> list[torch.Generator]:
    found = [getattr(m, "generator", None) for m in module.modules()]
    return [g for g in found if isinstance(g, torch.Generator)]
