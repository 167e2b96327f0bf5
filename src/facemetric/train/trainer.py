"""The training loop: P x K batches, mined triplets or margin losses, validation, checkpoints.

A run folder holds ``config.json``, ``metrics.jsonl``, ``tb/``, ``last.pt`` and ``best.pt``
(facemetric checkpoints), ``last.state.pt`` (everything ``--resume`` needs: weights, loss
parameters, optimizer, schedule position, sampler position, RNG states) and ``curve.png``.
Every file is written atomically, so a kill leaves the previous good version in place.
Under ``torchrun`` the same loop runs DDP; only rank 0 writes. The parts the loop steps are built
in ``parts``; the files it keeps and ``--resume`` reads are written by ``resume``.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from facemetric.data.dataset import augment_batch, to_model_input
from facemetric.models import save_checkpoint
from facemetric.train.config import TrainConfig
from facemetric.train.distributed import DistInfo, all_true_any, distributed_context
from facemetric.train.losses import LossOutput
from facemetric.train.parts import RunParts
from facemetric.train.resume import (
    STATE_FILE,
    calibrate_run,
    restore_state,
    resume_state,
    save_epoch,
)
from facemetric.train.runlog import RunLog, plot_curve
from facemetric.train.runtime import COLLAPSE_SPREAD, embeddings_collapsed, lr_factor
from facemetric.train.validation import ValMetrics, validate

log = logging.getLogger(__name__)


def train(config: TrainConfig) -> Path:
    """Train as ``config`` says and return the run folder (``runs/NAME``)."""
    config = config.resolved()
    with distributed_context(config.device) as (info, device):
        return Trainer(config, info, device).run()


class Trainer(RunParts):
    """One training run; ``run()`` trains, checkpoints and returns the run folder.

    The parts it steps are built by ``RunParts``; this class is the loop over them."""

    def __init__(self, config: TrainConfig, info: DistInfo, device: torch.device) -> None:
        super().__init__(config, info, device)
        self.step = 0
        self.elapsed = 0.0
        self.best: float | None = None
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []

    # --- state ----------------------------------------------------------------------------------

    def _meta(self, epoch: int, metrics: ValMetrics | None) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "data": self.data.summary(),
            "epoch": epoch,
            "step": self.step,
            "loss": self.config.loss,
            "init": self.init_note,
            "val": None if metrics is None else metrics.to_dict(),
        }

    def _state(self) -> dict[str, Any]:
        counters = {
            "step": self.step,
            "elapsed": self.elapsed,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
        }
        return resume_state(self.config, self.stateful(), counters, self.aug_gen, self.criterion)

    def _load_state(self) -> None:
        parts = self.stateful()
        state = restore_state(self.out / STATE_FILE, parts, self.aug_gen, self.criterion)
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.best, self.bad_epochs = state["best"], int(state["bad_epochs"])
        log.info("resumed %s at step %d (epoch %d)", self.out, self.step, self.sampler.epoch)

    def _save(self, epoch: int, metrics: ValMetrics | None, improved: bool) -> None:
        if not self.info.is_main:
            return
        threshold = None if metrics is None else metrics.threshold
        meta = self._meta(epoch, metrics)
        save_epoch(self.out, self.model, threshold, meta, self._state(), improved)

    # --- loop -----------------------------------------------------------------------------------

    def _train_step(self, indices: list[int]) -> tuple[torch.Tensor, LossOutput]:
        images, labels = self.train_set.batch(indices)
        if self.config.augment:
            x = augment_batch(images, self.augment, self.aug_gen)
        else:
            x = images.permute(0, 3, 1, 2).float()
        inputs = to_model_input(x, self.spec.mean, self.spec.std, self.config.channels_last)
        inputs, labels = inputs.to(self.device, non_blocking=True), labels.to(self.device)
        with torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        ):
            emb, out = self.step_module(inputs, labels)
            loss = out.loss
            if self.teacher is not None:
                # The teacher sees the same augmented faces, re-cut the way it needs them.
                target = self.teacher.embed_batch(x.to(self.device), self.crops_template)
                distill = self.teacher.loss(emb.float(), target)
                loss = loss + self.config.teacher_weight * distill
                out.stats["distill"] = float(distill.detach())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return emb.detach(), LossOutput(loss.detach(), out.stats)

    def _set_lr(self) -> None:
        progress = self.step / max(1, self.total_steps)
        if self.config.max_minutes:
            progress = max(progress, self.elapsed / (60.0 * self.config.max_minutes))
        factor = lr_factor(progress, self.config.warmup_fraction, self.config.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate * factor

    def _sync_elapsed(self, elapsed: float) -> float:
        """All ranks use the slowest rank's clock, so their schedules and stops agree."""
        if not self.info.enabled:
            return elapsed
        import torch.distributed as dist

        t = torch.tensor([elapsed], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def _validate(self) -> ValMetrics | None:
        if self.val_set is None or not self.info.is_main:
            return None
        # In float32 even when training steps use autocast: the threshold calibrated here is
        # applied to float32 inference, and bf16 moves cosines by ~1e-3 (impostors of a face
        # network sit within 0.05 of the threshold).
        metrics = validate(
            self.model,
            self.val_set,
            self.spec.mean,
            self.spec.std,
            self.device,
            self.config.val_pairs,
            self.config.seed,
        )
        for module in self.frozen:  # validate() restored train mode on them
            module.eval()
        return metrics

    def run(self) -> Path:
        cfg = self.config
        main = self.info.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            cfg.save(self.out / "config.json")
        if cfg.resume:
            self._load_state()
        for module in self.frozen:
            module.eval()
        runlog = RunLog(self.out, cfg.tensorboard) if main else None
        if main:
            self._log_start(runlog)
        if cfg.init and not cfg.resume:
            self._validate_start(runlog)
        stopped = "epochs"
        try:
            stopped = self._loop(runlog)
        finally:
            if runlog is not None:
                runlog.write("event", self.step, event="stop", reason=stopped)
                runlog.close()
        if main:
            plot_curve(self.out)
            if self.val_set is not None:
                calibrate_run(self.out, self.val_set)
            log.info("run finished (%s): %s", stopped, self.out)
        return self.out

    def _validate_start(self, runlog: RunLog | None) -> None:
        """A fine-tune is scored on the validation people before its first step and the
        starting model is saved as best.pt: a fine-tune that never beats it on people it does
        not train on never replaces it."""
        metrics = self._validate()
        if metrics is None:
            return
        self.best = metrics.accuracy + 1e-3 * metrics.auc
        if self.info.is_main:
            meta = self._meta(0, metrics)
            save_checkpoint(self.out / "best.pt", self.model, metrics.threshold, meta)
            log.info(
                "epoch 0 (the starting model): val accuracy %.4f, AUC %.4f, rank-1 %.4f",
                metrics.accuracy,
                metrics.auc,
                metrics.rank1,
            )
            if runlog is not None:
                record = {f"val_{k}": v for k, v in metrics.to_dict().items()}
                runlog.write("epoch", self.step, epoch=0, elapsed_s=0.0, **record)

    def _log_start(self, runlog: RunLog | None) -> None:
        cfg, spec, cache = self.config, self.spec, self.train_set
        log.info("%s", self.init_note)
        log.info(
            "data: %d identities, %d images (%s); cache %s (%.1f MB)",
            *(len(self.data.train.identities), len(self.data.train), self.data.split),
            *("in memory" if cache.cached else "off: decoding every batch", cache.bytes_mb),
        )
        assert cfg.loss is not None  # filled in by resolve_model_choice
        loss = f"{cfg.loss} (miner {cfg.miner})" if "triplet" in cfg.loss else cfg.loss
        if cfg.loss in ("triplet", "pair_threshold"):
            loss += f", margin {cfg.margin:g} ({self.spec.distance} distance)"
        if cfg.teacher:
            loss += f" + {cfg.teacher} teacher ({cfg.teacher_loss}) x{cfg.teacher_weight:g}"
        log.info(
            "%s %dd %dpx, loss %s, batch %dx%d, %d steps/epoch, lr %.2g, %s, autocast %s",
            *(spec.backbone, spec.embedding_dim, spec.input_size, loss),
            *(self.sampler.p, self.sampler.k, len(self.sampler), cfg.learning_rate, self.device),
            self.amp_dtype,
        )
        if runlog is not None:
            summary: dict[str, Any] = {"init": self.init_note, "data": self.data.summary()}
            summary.update(cache_bytes=cache.cache_bytes, cached=cache.cached)
            runlog.write("event", self.step, event="start", autocast=str(self.amp_dtype), **summary)

    def _loop(self, runlog: RunLog | None) -> str:
        from tqdm import tqdm

        cfg, main = self.config, self.info.is_main
        budget = None if cfg.max_minutes is None else 60.0 * cfg.max_minutes
        self.step_module.train()
        for module in self.frozen:
            module.eval()
        start_epoch = self.sampler.epoch
        for epoch in range(start_epoch, cfg.epochs):
            if epoch != self.sampler.epoch:
                self.sampler.set_epoch(epoch)
            bar = tqdm(
                total=len(self.sampler),
                initial=self.sampler.position,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                disable=not (main and cfg.progress),
                leave=False,
            )
            reason = None
            t_last, n_last = time.perf_counter(), 0
            for indices in self.sampler:
                t0 = time.perf_counter()
                self._set_lr()
                emb, out = self._train_step(indices)
                self.step += 1
                collapsed = embeddings_collapsed(emb.float())
                bad_loss = not math.isfinite(float(out.loss))
                self.elapsed = self._sync_elapsed(self.elapsed + time.perf_counter() - t0)
                n_last += len(indices)
                bar.update(1)
                if main and (self.step % cfg.log_every == 0 or self.step == 1):
                    rate = n_last * self.info.world_size / max(1e-9, time.perf_counter() - t_last)
                    t_last, n_last = time.perf_counter(), 0
                    bar.set_postfix(
                        loss=f"{float(out.loss):.4f}", **_short(out.stats), img_s=f"{rate:.0f}"
                    )
                    if runlog is not None:
                        lr = self.optimizer.param_groups[0]["lr"]
                        runlog.write(
                            "step",
                            self.step,
                            epoch=epoch,
                            loss=float(out.loss),
                            lr=lr,
                            images_per_s=rate,
                            **out.stats,
                        )
                if all_true_any(collapsed or bad_loss, self.info, self.device):
                    reason = "collapse" if collapsed else "non-finite loss"
                    break
                if budget is not None and self.elapsed >= budget:
                    reason = "time budget"
                    break
            bar.close()
            epoch_done = reason is None
            if epoch_done:
                self.sampler.set_epoch(epoch + 1)
            stop = self._end_epoch(epoch, runlog, reason)
            if reason is not None:
                self._warn_stop(reason)
                return reason
            if stop:
                return "early stopping"
        return "epochs"

    def _end_epoch(self, epoch: int, runlog: RunLog | None, reason: str | None) -> bool:
        """Validate, checkpoint and decide on early stopping (rank 0 decides for everyone)."""
        metrics = self._validate() if reason in (None, "time budget") else None
        improved = False
        if metrics is not None:
            score = metrics.accuracy + 1e-3 * metrics.auc  # AUC breaks ties of accuracy
            improved = self.best is None or score > self.best
            if improved:
                self.best, self.bad_epochs = score, 0
            else:
                self.bad_epochs += 1
        elif self.data.val is None and reason is None:
            improved = True  # without validation the newest model is the best we know
        if self.info.is_main:
            if reason in (None, "time budget"):  # never overwrite good weights with broken ones
                self._save(epoch, metrics, improved)
            record: dict[str, Any] = {"epoch": epoch + 1, "elapsed_s": round(self.elapsed, 1)}
            if metrics is not None:
                record.update({f"val_{k}": v for k, v in metrics.to_dict().items()})
                log.info(
                    "epoch %d: val accuracy %.4f, AUC %.4f, rank-1 %.4f%s",
                    epoch + 1,
                    metrics.accuracy,
                    metrics.auc,
                    metrics.rank1,
                    " (best)" if improved else "",
                )
            if runlog is not None:
                runlog.write("epoch", self.step, **record)
        stop = self.config.patience > 0 and self.bad_epochs >= self.config.patience
        return all_true_any(stop, self.info, self.device)

    def _warn_stop(self, reason: str) -> None:
        messages = {
            "collapse": f"all embeddings collapsed to one point (spread < {COLLAPSE_SPREAD}); "
            "lower --lr or raise --margin; the last good checkpoint is kept",
            "non-finite loss": "the loss became NaN/inf; lower --lr; the last good checkpoint "
            "is kept",
            "time budget": f"time budget of {self.config.max_minutes} minutes reached",
        }
        level = logging.INFO if reason == "time budget" else logging.WARNING
        log.log(level, "training stopped at step %d: %s", self.step, messages[reason])


def _short(stats: dict[str, float]) -> dict[str, str]:
    return {k: f"{v:.3g}" for k, v in stats.items() if k != "triplets"}
