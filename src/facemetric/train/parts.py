"""The live objects one run trains with, built from its config.

``RunParts`` turns a ``TrainConfig`` into what the loop (``trainer.Trainer``) steps: the data sets
and P x K sampler, the model on its device (DDP-wrapped under ``torchrun``) with its loss, the
teacher, the optimizer and the precision. The pieces it picks from (which model, which data) are
in ``setup``; what a run keeps on disk is in ``resume``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facemetric.data.dataset import AugmentConfig, FaceDataset, PKSampler
from facemetric.models import EmbeddingNet
from facemetric.train.config import TrainConfig
from facemetric.train.distributed import DistInfo, set_cpu_threads
from facemetric.train.losses import LossOutput, LossSettings, create_loss
from facemetric.train.resume import config_for_run
from facemetric.train.runtime import autocast_dtype
from facemetric.train.setup import (
    build_student,
    build_teacher,
    crops_template,
    freeze_stages,
    prepare_data,
    resolve_model_choice,
)

log = logging.getLogger(__name__)


class StepModule(nn.Module):
    """Model + loss in one module, so DDP synchronises the loss's own parameters too.

    The loss sees L2-normalised embeddings, or the raw ones for a model whose spec says its
    distances are Euclidean (a pretrained network fine-tuned in its own space)."""

    def __init__(self, model: EmbeddingNet, criterion: nn.Module, raw: bool = False) -> None:
        super().__init__()
        self.model, self.criterion, self.raw = model, criterion, raw

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, LossOutput]:
        emb = self.model.features(x) if self.raw else self.model(x)
        return emb, self.criterion(emb, labels)


class RunParts:
    """Everything a run trains with, built from ``config`` (resolved, or the saved one on
    --resume) for this process's rank and device."""

    def __init__(self, config: TrainConfig, info: DistInfo, device: torch.device) -> None:
        self.info, self.device = info, device
        self.out = Path(config.out)
        self.config = resolve_model_choice(config_for_run(config))
        config = self.config
        if device.type == "cpu":
            self.threads = set_cpu_threads(info)
        self.amp_dtype = autocast_dtype(config.precision, device)
        torch.manual_seed(config.seed)
        self.data = prepare_data(config)
        self.model, self.init_note = build_student(config)
        self.frozen = (
            freeze_stages(self.model, config.freeze_stages) if config.freeze_stages else []
        )
        self.spec = self.model.spec
        self.model.to(device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        assert config.margin is not None and config.loss is not None  # resolve_model_choice
        settings = LossSettings(
            num_classes=len(self.data.train.identities),
            embedding_dim=self.spec.embedding_dim,
            margin=config.margin,
            miner=config.miner,
            distance=self.spec.distance,
            triplet_weight=config.triplet_weight,
            seed=config.seed,
        )
        self.criterion = create_loss(config.loss, settings).to(device)
        # The template the training crops were cut with (what the teacher must re-cut from).
        self.crops_template = crops_template(config.data, warn=False) or self.spec.alignment
        self.teacher = None
        if config.teacher:
            options: dict[str, Any] = {"device": device, "loss": config.teacher_loss}
            if config.teacher == "init":
                options["model"] = config.init
            self.teacher = build_teacher(config.teacher, **options)
        if self.teacher is not None:
            self.teacher.check_student(self.spec)
        raw = self.spec.distance == "euclidean" and config.loss in ("triplet", "pair_threshold")
        self.step_module: nn.Module = StepModule(self.model, self.criterion, raw)
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.step_module = DDP(self.step_module, device_ids=ids)
        self.optimizer = self._optimizer()
        self.scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)
        self.train_set = FaceDataset(
            self.data.train, self.spec.input_size, config.cache, config.workers
        )
        self.val_set = (
            FaceDataset(self.data.val, self.spec.input_size, config.cache, config.workers)
            if self.data.val is not None
            else None
        )
        self.sampler = self._sampler()
        self.total_steps = config.epochs * len(self.sampler)
        self.augment = AugmentConfig()
        self.aug_gen = torch.Generator().manual_seed(config.seed * 1000 + info.rank)

    def _optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the trainable parameters; no weight decay on biases and norms."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for p in self.step_module.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=self.config.learning_rate)

    def _sampler(self) -> PKSampler:
        """P identities x K images per batch, this rank's share of each epoch."""
        config = self.config
        identities = len(set(self.data.train.labels.tolist()))
        batch_p = min(config.batch_p, identities)
        if batch_p < config.batch_p:
            # A family folder has fewer people than the default batch: use them all.
            log.warning(
                "batch_p=%d but the training data has %d identities: using %d per batch",
                config.batch_p,
                identities,
                batch_p,
            )
        return PKSampler(
            self.data.train.labels,
            batch_p,
            config.batch_k,
            seed=config.seed,
            rank=self.info.rank,
            world_size=self.info.world_size,
            batches_per_epoch=config.steps_per_epoch,
        )

    def stateful(self) -> dict[str, Any]:
        """The parts whose ``state_dict()`` a --resume needs, by the name they are saved under."""
        return {
            "model": self.model,
            "criterion": self.criterion,
            "optimizer": self.optimizer,
            "scaler": self.scaler,
            "sampler": self.sampler,
        }
