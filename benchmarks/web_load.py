"""Load on the live stream: frames/s and p50/p95 server time per frame, 1 and N concurrent streams,
and how fast ``/api/health`` answers meanwhile.

Starts a real ``facemetric serve`` on 127.0.0.1 with ``--model`` (default: the pretrained dlib
model, the product's default; ``--model random`` takes a ``--backbone`` with random weights: speed
only), enrols one face, then streams 640x480 JPEG frames with one face over /ws/stream, one frame in
flight per client, for a bounded time per setting. Meanwhile one client asks ``GET /api/health``
every ``--health-every`` seconds and the latency it sees (p50/p95/max, client side) is printed per
setting (goal: p95 < 100 ms with 8 streams). Stops by itself.

    .venv/bin/python benchmarks/web_load.py [--seconds 15] [--streams 1 4] [--model dlib]
        [--model random --backbone resnet50]
        [--engine onnx|torch|auto] [--stream-detect-size 320] [--health-every 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from served import ADMIN_TOKEN, running_server


def frame_jpeg() -> bytes:
    from skimage import data

    img = Image.fromarray(data.astronaut())
    img.thumbnail((640, 480))
    canvas = Image.new("RGB", (640, 480), (90, 90, 90))
    canvas.paste(img, ((640 - img.width) // 2, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def make_checkpoint(folder: Path, backbone: str, onnx: bool) -> Path:
    """A random-weight checkpoint (speed only), exported to ONNX beside it when ``onnx``."""
    import torch

    from facemetric.models import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(0)
    path = folder / f"{backbone}-random.pt"
    save_checkpoint(path, build_model(ModelSpec(backbone=backbone)).eval(), meta={"bench": True})
    if onnx:
        from facemetric.models.export import export_onnx

        export_onnx(path)
    return path


async def one_stream(url: str, frame: bytes, seconds: float, max_frames: int) -> list[float]:
    import websockets

    server_ms: list[float] = []
    async with websockets.connect(url, max_size=None) as ws:
        json.loads(await ws.recv())  # hello
        for _ in range(3):  # warm-up, not counted
            await ws.send(frame)
            await ws.recv()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(server_ms) < max_frames:
            await ws.send(frame)
            answer = json.loads(await ws.recv())
            if answer["type"] != "result" or len(answer["faces"]) != 1:
                raise RuntimeError(f"unexpected answer: {str(answer)[:300]}")
            server_ms.append(float(answer["server_ms"]))
    return server_ms


async def probe_health(url: str, every: float, done: asyncio.Event) -> list[float]:
    """Latency of ``GET /api/health`` in ms, asked every ``every`` s until ``done``."""
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        await client.get(url)  # open the connection before timing
        while not done.is_set():
            start = time.perf_counter()
            r = await client.get(url)
            latencies.append((time.perf_counter() - start) * 1000)
            r.raise_for_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), every)
    return latencies


async def measure(
    url: str, health_url: str, frame: bytes, streams: int, seconds: float, every: float
) -> dict[str, float]:
    start = time.perf_counter()
    done = asyncio.Event()
    prober = asyncio.create_task(probe_health(health_url, every, done))
    results = await asyncio.gather(
        *(one_stream(url, frame, seconds, 100_000) for _ in range(streams))
    )
    wall = time.perf_counter() - start
    done.set()
    health = np.asarray(await prober)
    all_ms = np.concatenate([np.asarray(r) for r in results])
    frames = sum(len(r) for r in results)
    return {
        "streams": streams,
        "frames": frames,
        "fps_total": frames / wall,
        "fps_per_stream": frames / wall / streams,
        "p50_ms": float(np.percentile(all_ms, 50)),
        "p95_ms": float(np.percentile(all_ms, 95)),
        "health_n": len(health),
        "health_p50": float(np.percentile(health, 50)),
        "health_p95": float(np.percentile(health, 95)),
        "health_max": float(health.max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per setting")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--model", default="dlib", help="a model, or 'random' (--backbone)")
    parser.add_argument("--backbone", default="resnet50", help="with --model random")
    parser.add_argument("--engine", default="onnx", choices=["auto", "torch", "onnx"])
    parser.add_argument(
        "--stream-detect-size", type=int, default=320, help="serve --stream-detect-size"
    )
    parser.add_argument(
        "--health-every", type=float, default=0.1, help="seconds between health requests"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.model == "random":
            ckpt: Path | str = make_checkpoint(folder, args.backbone, onnx=args.engine != "torch")
        else:
            ckpt = args.model  # a pretrained model comes with its ONNX export
            args.backbone = args.model
        options = ["--engine", args.engine, "--stream-detect-size", str(args.stream_detect_size)]
        with running_server(folder, ckpt, *options) as (url, _):
            frame = frame_jpeg()
            r = httpx.post(
                url + "/api/people",
                data={"name": "astronaut"},
                files=[("files", ("a.jpg", frame, "image/jpeg"))],
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=120,
            )
            r.raise_for_status()
            print(f"backbone={args.backbone} engine={args.engine} "
                  f"stream-detect-size={args.stream_detect_size} frame=640x480 JPEG "
                  f"{len(frame)} bytes, one face; {args.seconds:.0f} s per setting; "
                  f"cpus={os.cpu_count()}")  # fmt: skip
            base = None
            for n in args.streams:
                m = asyncio.run(measure(url.replace("http", "ws") + "/ws/stream",
                                        url + "/api/health", frame, n, args.seconds,
                                        args.health_every))  # fmt: skip
                base = base or m["fps_total"]
                print(f"streams={n}: {m['frames']} frames, {m['fps_total']:.1f} frames/s total "
                      f"({m['fps_per_stream']:.1f} per stream), server p50 {m['p50_ms']:.1f} ms, "
                      f"p95 {m['p95_ms']:.1f} ms, throughput x{m['fps_total'] / base:.2f} "
                      f"vs 1 stream; /api/health ({m['health_n']} asked) p50 "
                      f"{m['health_p50']:.1f} ms, p95 {m['health_p95']:.1f} ms, "
                      f"max {m['health_max']:.1f} ms", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
