"""Backbone speed: forward+backward images/s at 112x112, face-shaped IResNets vs torchvision.

Each backbone is the full ``EmbeddingNet`` (backbone + head, 128-d) in training mode, one
optimiser-free step = forward, a scalar loss, backward. The backbones are measured in
alternating rounds (so load changes on a shared machine hit all alike) and the median round
counts. The table gives each face-shaped net's ratio to its torchvision counterpart::

    .venv/bin/python benchmarks/backbone_speed.py
    .venv/bin/python benchmarks/backbone_speed.py --batch 32 --seconds 10 --rounds 3 --bf16
"""

from __future__ import annotations

import argparse
import statistics
import time

PAIRS = {"iresnet18": "resnet18", "iresnet50": "resnet50"}


def build(name: str, channels_last: bool):
    import torch

    import facemetric.models.iresnet  # noqa: F401 - registers the IResNets
    from facemetric.models import ModelSpec, build_model

    model = build_model(ModelSpec(backbone=name, embedding_dim=128)).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def rate(model, batch: int, seconds: float, bf16: bool, channels_last: bool) -> float:
    """Images/s of forward+backward over about ``seconds``."""
    import torch

    x = torch.randn(batch, 3, 112, 112)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.features(x).float().square().mean()
        loss.backward()
        model.zero_grad(set_to_none=True)

    step()  # warm-up: allocations, oneDNN kernels
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done == 0:
        step()
        done += batch
    return done / (time.perf_counter() - start)


def forward_gflops(model) -> float:
    """Forward GFLOPs per 112 px image (load-independent, unlike images/s)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.randn(1, 3, 112, 112))
    model.train()
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backbones", nargs="+", default=["iresnet18", "resnet18", "iresnet50", "resnet50"]
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0, help="per backbone per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 autocast (CPUs with AVX-512 BF16)"
    )
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    models = {name: build(name, args.channels_last) for name in args.backbones}
    rounds: dict[str, list[float]] = {name: [] for name in args.backbones}
    for r in range(args.rounds):
        for name, model in models.items():
            rounds[name].append(
                rate(model, args.batch, args.seconds, args.bf16, args.channels_last)
            )
            print(f"round {r + 1} {name:<10} {rounds[name][-1]:7.1f} images/s", flush=True)

    median = {name: statistics.median(v) for name, v in rounds.items()}
    print(
        f"\nforward+backward at 112x112, batch {args.batch}, "
        f"{'bf16' if args.bf16 else 'fp32'}, {torch.get_num_threads()} threads, "
        f"median of {args.rounds} rounds"
    )
    print(f"{'backbone':<10} {'params':>8} {'GFLOPs':>7} {'images/s':>9}  vs torchvision")
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        base = PAIRS.get(name)
        ratio = f"{median[name] / median[base]:.2f}x {base}" if base in median else ""
        gflops = forward_gflops(model)
        print(f"{name:<10} {params:7.1f}M {gflops:7.2f} {median[name]:9.2f}  {ratio}")


if __name__ == "__main__":
    main()
