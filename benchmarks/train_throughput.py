"""Training throughput: the whole pipeline against the bare model step, same process.

For each backbone and precision this builds a real ``Trainer`` (cached crops, P x K sampler,
augmentation, mining, triplet loss, AdamW) and measures images/s of ``_train_step``, then the
bare step of the same model on random tensors (forward + backward + the same AdamW step). The
two are measured in alternating rounds so load changes on a shared machine hit both alike; the
median round counts. Goal: pipeline >= 90% of bare.

The parent process re-launches itself with and without tcmalloc (LD_PRELOAD) and prints a table:

    .venv/bin/python benchmarks/train_throughput.py --data work/crops/celeba-wild
    .venv/bin/python benchmarks/train_throughput.py --backbones resnet18 --seconds 10

Without ``--data`` it writes a synthetic set of crops cut from ``skimage.data.astronaut()``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TCMALLOC = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
)


def synthetic_crops(root: Path, identities: int = 32, per_identity: int = 8) -> Path:
    import numpy as np
    from PIL import Image
    from skimage.data import astronaut

    image = astronaut()
    rng = np.random.default_rng(0)
    for i in range(identities):
        y, x = rng.integers(0, image.shape[0] - 160, 2)
        for j in range(per_identity):
            dy, dx = rng.integers(0, 16, 2)
            crop = image[y + dy : y + dy + 144, x + dx : x + dx + 144]
            (root / f"id{i:02d}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).resize((112, 112)).save(root / f"id{i:02d}" / f"{j}.png")
    return root


def measure(data: Path, backbone: str, precision: str, seconds: float, rounds: int) -> dict:
    import torch

    from facemetric.train.config import TrainConfig
    from facemetric.train.distributed import dist_info_from_env
    from facemetric.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            data=(str(data),),
            out=str(Path(out) / "run"),
            backbone=backbone,
            precision=precision,
            val_fraction=0.0,
            steps_per_epoch=100_000,
            progress=False,
            tensorboard=False,
            drop_singletons=True,
        ).resolved()
        trainer = Trainer(config, dist_info_from_env(), torch.device("cpu"))
        batches = iter(trainer.sampler)
        n = config.batch_p * config.batch_k
        size = trainer.spec.input_size
        x = torch.randn(n, 3, size, size).contiguous(memory_format=torch.channels_last)
        dtype = trainer.amp_dtype

        def pipeline_step() -> None:
            trainer._train_step(next(batches))

        def bare_step() -> None:
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = trainer.model(x).float().pow(2).sum()
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()

        def rate(step: object, budget: float) -> float:
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < budget:
                step()  # type: ignore[operator]
                count += 1
            return count * n / (time.perf_counter() - start)

        for _ in range(2):
            pipeline_step()
            bare_step()
        pipe, bare = [], []
        for _ in range(rounds):
            pipe.append(rate(pipeline_step, seconds / rounds))
            bare.append(rate(bare_step, seconds / rounds))
    p, b = statistics.median(pipe), statistics.median(bare)
    return {
        "backbone": backbone,
        "precision": precision,
        "autocast": str(dtype),
        "threads": torch.get_num_threads(),
        "pipeline_img_s": round(p, 1),
        "bare_img_s": round(b, 1),
        "ratio": round(p / b, 3),
    }


def child(args: argparse.Namespace) -> None:
    for backbone in args.backbones.split(","):
        for precision in args.precisions.split(","):
            result = measure(Path(args.data), backbone, precision, args.seconds, args.rounds)
            result["tcmalloc"] = "tcmalloc" in os.environ.get("LD_PRELOAD", "")
            print("RESULT " + json.dumps(result), flush=True)


def parent(args: argparse.Namespace) -> None:
    lib = next((p for p in TCMALLOC if Path(p).is_file()), None)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(synthetic_crops(Path(tmp) / "crops"))
        variants = [("no", None)] + ([("yes", lib)] if lib else [])
        if lib is None:
            print("tcmalloc not found: measuring without it only")
        rows = []
        for _name, preload in variants:
            env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
            if preload:
                env["LD_PRELOAD"] = preload
            cmd = [sys.executable, __file__, "--child", "--data", data]
            cmd += ["--backbones", args.backbones, "--precisions", args.precisions]
            cmd += ["--seconds", str(args.seconds), "--rounds", str(args.rounds)]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:  # print as they come: partial results survive a timeout
                if line.startswith("RESULT "):
                    rows.append(json.loads(line[7:]))
                    print(line.strip(), flush=True)
            if proc.wait() != 0:
                raise SystemExit(proc.returncode)
    print(f"cores available: {len(os.sched_getaffinity(0))}; load average {os.getloadavg()}")
    header = (
        f"{'backbone':<14}{'precision':<10}{'tcmalloc':<10}{'pipeline':>10}{'bare':>10}{'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['backbone']:<14}{r['precision']:<10}{'yes' if r['tcmalloc'] else 'no':<10}"
            f"{r['pipeline_img_s']:>10.1f}{r['bare_img_s']:>10.1f}{r['ratio']:>8.2f}"
        )
    print("images/s, 112x112, batch 16x4; pipeline = cached crops + P x K sampler + augmentation")
    print("+ mining + triplet loss + AdamW; bare = random tensors + forward/backward + AdamW")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="aligned crops (default: synthetic crops)")
    parser.add_argument("--backbones", default="resnet50,resnet18,mobilenet_v3")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--seconds", type=float, default=12.0, help="per measurement and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    (child if args.child else parent)(args)


if __name__ == "__main__":
    main()
