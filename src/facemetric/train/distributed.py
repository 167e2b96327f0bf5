"""Process-group setup for ``torchrun`` launches, device choice and CPU thread settings.

Nothing happens at import: ``distributed_context`` initialises the process group only when
``torchrun`` (or a test) set ``WORLD_SIZE`` > 1, and tears it down on exit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from facemetric.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise ConfigError(f"environment {name}={value!r}: expected an integer") from None


def dist_info_from_env() -> DistInfo:
    world = _env_int("WORLD_SIZE", 1)
    return DistInfo(
        rank=_env_int("RANK", 0),
        world_size=world,
        local_rank=_env_int("LOCAL_RANK", 0),
        local_world_size=_env_int("LOCAL_WORLD_SIZE", world),
    )


def pick_device(name: str, info: DistInfo) -> torch.device:
    """``auto``: the GPU of this local rank when CUDA is there, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r}: no CUDA GPU is available here")
        if name == "cuda":
            return torch.device("cuda", info.local_rank % torch.cuda.device_count())
    return torch.device(name)


def set_cpu_threads(info: DistInfo) -> int:
    """Split the cores this process may use between the local ranks (intra-op threads)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    threads = max(1, cores // max(1, info.local_world_size))
    torch.set_num_threads(threads)
    return threads


@contextmanager
def distributed_context(device: str = "auto") -> Iterator[tuple[DistInfo, torch.device]]:
    """Yield (rank info, device); under torchrun, an initialised process group for the duration."""
    import torch.distributed as dist

    info = dist_info_from_env()
    dev = pick_device(device, info)
    started = False
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
        started = True
        log.info("DDP rank %d/%d on %s (%s)", info.rank, info.world_size, dev, backend)
    try:
        yield info, dev
        if started and dist.is_initialized():
            # Rank 0 hosts the rendezvous store: leaving before the others are done with the
            # group aborted a rank at exit ("terminate called without an active exception").
            dist.barrier()
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def all_true_any(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank (so all ranks stop together)."""
    if not info.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
