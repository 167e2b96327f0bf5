"""Streams against the connection limit (issue 23.1): idle streams must not lock out HTTP clients.

Starts a real ``facemetric serve`` on 127.0.0.1 (a random-weight tiny checkpoint: limits, not
accuracy) with ``max_connections`` = ``--max-connections``, then

1. opens that many streams and leaves them idle (each got its ``hello``);
2. asks ``GET /api/health`` ``--health-requests`` times meanwhile: status codes and latency
   (p50 / p95 / max, client side; goal: all 200, p95 < 100 ms);
3. opens one more stream and asks ``GET /api/people``: how each is answered (goal: the stream
   refused with a clear code, 1013 and its reason);
4. closes them, then attempts ``--attempts`` streams at once, each holding its slot
   ``--hold`` s once served, and counts how many are open at the same moment, client side
   (hello received, not yet closed) and as the server counted (``connections.peak`` in
   ``/api/health``); goal: never more than ``max_connections``.

The machine may be shared and loaded: latencies are what this run saw, not a bound.

    .venv/bin/python benchmarks/web_connections.py [--max-connections 100] [--attempts 130]
        [--health-requests 100] [--hold 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from served import running_server


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws/stream"


async def open_idle(url: str, count: int) -> list[Any]:
    import websockets

    streams = []
    for _ in range(count):
        ws = await websockets.connect(ws_url(url), open_timeout=60)
        hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if hello.get("type") != "hello":
            raise SystemExit(f"stream answered {hello!r} instead of hello")
        streams.append(ws)
    return streams


async def one_more(url: str) -> str:
    """How one stream beyond the others is answered."""
    import websockets

    try:
        async with websockets.connect(ws_url(url), open_timeout=30) as ws:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return f"served ({message.get('type')})"
    except websockets.InvalidStatus as exc:
        return f"handshake refused with HTTP {exc.response.status_code}"
    except websockets.ConnectionClosed as exc:
        if exc.rcvd is None:
            return "closed without a close frame"
        return f"closed with {exc.rcvd.code} {exc.rcvd.reason!r}"
    except TimeoutError:
        return "no answer in 10 s"


async def health_latencies(url: str, count: int) -> tuple[list[float], Counter[int]]:
    codes: Counter[int] = Counter()
    times = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(count):
            start = time.perf_counter()
            r = await client.get(url + "/api/health")
            times.append((time.perf_counter() - start) * 1000)
            codes[r.status_code] += 1
            await asyncio.sleep(0.02)
    return times, codes


async def burst(url: str, attempts: int, hold: float) -> tuple[Counter[str], int]:
    """``attempts`` streams at once; the outcomes and the most open at the same moment."""
    import websockets

    outcomes: Counter[str] = Counter()
    state = {"open": 0, "peak": 0}

    async def attempt() -> None:
        try:
            async with websockets.connect(ws_url(url), open_timeout=60) as ws:
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if message.get("type") != "hello":
                    outcomes[f"answered {message.get('type')}"] += 1
                    return
                state["open"] += 1
                state["peak"] = max(state["peak"], state["open"])
                try:
                    await asyncio.sleep(hold)
                finally:
                    state["open"] -= 1
                outcomes["served"] += 1
        except websockets.InvalidStatus as exc:
            outcomes[f"HTTP {exc.response.status_code}"] += 1
        except websockets.ConnectionClosed as exc:
            outcomes[f"closed {exc.rcvd.code if exc.rcvd else 'abnormally'}"] += 1
        except (OSError, TimeoutError) as exc:
            outcomes[type(exc).__name__] += 1

    await asyncio.gather(*(attempt() for _ in range(attempts)))
    return outcomes, state["peak"]


def percentile(values: list[float], q: int) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def server_counts(url: str) -> dict[str, int] | None:
    r = httpx.get(url + "/api/health", timeout=30)
    if r.status_code != 200:
        return None
    counts = r.json().get("connections")
    return counts if isinstance(counts, dict) else None


async def scenario(url: str, args: argparse.Namespace) -> None:
    n = args.max_connections
    start = time.perf_counter()
    streams = await open_idle(url, n)
    print(
        f"{n} idle streams open (each got hello) in {time.perf_counter() - start:.1f} s", flush=True
    )
    try:
        times, codes = await health_latencies(url, args.health_requests)
        print(
            f"/api/health with {n} idle streams: {dict(codes)} over {len(times)} asked; "
            f"p50 {statistics.median(times):.1f} ms, p95 {percentile(times, 95):.1f} ms, "
            f"max {max(times):.1f} ms (goal: all 200, p95 < 100 ms)",
            flush=True,
        )
        extra = await one_more(url)
        async with httpx.AsyncClient(timeout=30) as client:
            people = await client.get(url + "/api/people")
        detail = "" if people.status_code == 200 else people.text[:100]
        print(f"stream {n + 1}: {extra}", flush=True)
        print(f"GET /api/people meanwhile: {people.status_code} {detail}".rstrip(), flush=True)
        print(f"server's counts with {n} streams open: {server_counts(url)}", flush=True)
    finally:
        for ws in streams:
            await ws.close()
    await asyncio.sleep(1.0)
    outcomes, peak = await burst(url, args.attempts, args.hold)
    counts = server_counts(url)
    server_peak = counts["peak"] if counts else "n/a"
    print(
        f"{args.attempts} streams attempted at once: {dict(outcomes)}; most open at once: "
        f"{peak} counted by the clients, {server_peak} by the server "
        f"(goal: <= max_connections = {n})",
        flush=True,
    )
    print(f"server's counts at the end: {counts}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-connections", type=int, default=100)
    parser.add_argument("--attempts", type=int, default=130)
    parser.add_argument("--health-requests", type=int, default=100)
    parser.add_argument("--hold", type=float, default=3.0, help="seconds a served stream stays")
    args = parser.parse_args(argv)

    import torch

    from facemetric.models import ModelSpec, build_model, save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        ckpt = folder / "tiny.pt"
        save_checkpoint(ckpt, build_model(ModelSpec(backbone="tiny")).eval(), meta={})
        os.environ["FACEMETRIC_MAX_CONNECTIONS"] = str(args.max_connections)
        with running_server(folder, ckpt, "--engine", "torch") as (url, _server):
            print(
                f"max_connections={args.max_connections}, cpus={os.cpu_count()} "
                f"(a shared machine: latencies are this run's)",
                flush=True,
            )
            asyncio.run(scenario(url, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
