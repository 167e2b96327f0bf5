"""Memory a real server takes for hostile uploads: peak RSS growth per case (issue 15, item 1).

Starts ``facemetric serve`` on 127.0.0.1 (a random-weight checkpoint: memory, not accuracy), warms
it up with one ordinary photo, then for each case resets the server's peak RSS (``VmHWM``, via
``/proc/PID/clear_refs``), sends the requests and prints the peak RSS growth over the RSS before
the case, the RSS left afterwards, the answers and the time taken. Goal: under 300 MB for one
request of 20 x 9000x9000 PNG to /api/enroll/preview and for 4 such requests at once. Since those
are now refused from their headers, the cases ``max``, ``max4`` and ``deep`` send what is still
decoded: 20 PNGs of 4000x4000 (16 Mpx, just within max_decode_pixels), in 8-bit RGB and 16-bit
grey. Linux only.

    .venv/bin/python benchmarks/web_memory.py [--cases preview identify jpeg preview4 max max4 deep]
        [--backbone tiny] [--timeout 180]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from served import running_server

SIDE = 9000
MB = 1e6


def huge_png() -> bytes:
    """A 9000x9000 RGB PNG of one colour: about 236 KB that decode to 243 MB."""
    buf = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (120, 110, 100)).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def largest_decoded_png(deep: bool = False) -> bytes:
    """A 4000x4000 PNG (16 Mpx: the most still decoded), 8-bit RGB or 16-bit grey, with a ramp."""
    ramp = np.linspace(0, 65535 if deep else 255, 4000).astype(np.uint16 if deep else np.uint8)
    plane = np.tile(ramp, (4000, 1))
    img = Image.fromarray(plane) if deep else Image.fromarray(np.stack([plane] * 3, axis=-1))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def huge_jpeg() -> bytes:
    """A 9000x9000 JPEG of one colour (JPEGs can be decoded reduced, 1/2 to 1/8 per side)."""
    buf = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (120, 110, 100)).save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def astronaut_jpeg() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def status_kb(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` field in kB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


class Sampler:
    """Samples the server's RSS every 10 ms in a thread (VmHWM is the authoritative peak)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kb(self.pid, "VmRSS"))
            time.sleep(0.01)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(pid: int, label: str, send: Callable[[], list[str]]) -> dict[str, float]:
    before = status_kb(pid, "VmRSS")
    reset_peak(pid)
    start = time.perf_counter()
    with Sampler(pid) as sampler:
        answers = send()
    seconds = time.perf_counter() - start
    time.sleep(1.0)  # let worker threads finish what a timed-out request left running
    peak = max(status_kb(pid, "VmHWM"), sampler.peak)
    after = status_kb(pid, "VmRSS")
    growth = (peak - before) * 1e3 / MB
    print(
        f"{label}: peak RSS growth {growth:,.0f} MB (RSS {before * 1e3 / MB:,.0f} -> peak "
        f"{peak * 1e3 / MB:,.0f} -> after {after * 1e3 / MB:,.0f} MB), {seconds:.1f} s, "
        f"answers: {'; '.join(answers)}",
        flush=True,
    )
    return {"growth_mb": growth, "seconds": seconds}


def describe(r: httpx.Response | BaseException) -> str:
    if isinstance(r, BaseException):
        return f"{type(r).__name__}"
    detail = r.json().get("detail") if "json" in r.headers.get("content-type", "") else None
    text = f" {str(detail)[:60]}..." if isinstance(detail, str) else ""
    return f"{r.status_code}{text}"


async def post_many(url: str, count: int, files: list, timeout: float) -> list[str]:
    async with httpx.AsyncClient(timeout=timeout) as client:
        results = await asyncio.gather(
            *(client.post(url, files=files) for _ in range(count)), return_exceptions=True
        )
    return [describe(r) for r in results]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["preview", "identify", "jpeg", "preview4", "max", "max4", "deep"],
        choices=["preview", "identify", "jpeg", "preview4", "max", "max4", "deep"],
    )
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--timeout", type=float, default=180.0, help="per request, seconds")
    args = parser.parse_args(argv)

    import torch

    from facemetric.models import ModelSpec, build_model, save_checkpoint

    png, jpeg, photo = huge_png(), huge_jpeg(), astronaut_jpeg()
    rgb16, grey16 = largest_decoded_png(), largest_decoded_png(deep=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        ckpt = folder / f"{args.backbone}.pt"
        save_checkpoint(ckpt, build_model(ModelSpec(backbone=args.backbone)).eval(), meta={})
        with running_server(folder, ckpt, "--engine", "torch") as (url, server):
            pid = server.pid
            warm = [("files", ("a.jpg", photo, "image/jpeg"))]
            for _ in range(2):  # load the detector and model once, so the cases measure uploads
                httpx.post(url + "/api/enroll/preview", files=warm, timeout=120).raise_for_status()
                httpx.post(url + "/api/identify", files={"file": ("a.jpg", photo)}, timeout=120)
            print(
                f"server pid {pid}, backbone={args.backbone}, cpus={os.cpu_count()}, "
                f"RSS after warm-up {status_kb(pid, 'VmRSS') * 1e3 / MB:,.0f} MB; "
                f"PNG {SIDE}x{SIDE} {len(png):,} bytes, JPEG {SIDE}x{SIDE} {len(jpeg):,} bytes",
                flush=True,
            )
            twenty = [("files", (f"big{i}.png", png, "image/png")) for i in range(20)]
            cases: dict[str, tuple[str, Callable[[], list[str]]]] = {
                "preview": (
                    "1 x preview of 20 PNG 9000x9000",
                    lambda: asyncio.run(
                        post_many(url + "/api/enroll/preview", 1, twenty, args.timeout)
                    ),
                ),
                "identify": (
                    "1 x identify of one PNG 9000x9000",
                    lambda: asyncio.run(
                        post_many(
                            url + "/api/identify",
                            1,
                            [("file", ("big.png", png, "image/png"))],
                            args.timeout,
                        )
                    ),
                ),
                "jpeg": (
                    "1 x identify of one JPEG 9000x9000",
                    lambda: asyncio.run(
                        post_many(
                            url + "/api/identify",
                            1,
                            [("file", ("big.jpg", jpeg, "image/jpeg"))],
                            args.timeout,
                        )
                    ),
                ),
                "preview4": (
                    "4 x preview of 20 PNG 9000x9000 at once",
                    lambda: asyncio.run(
                        post_many(url + "/api/enroll/preview", 4, twenty, args.timeout)
                    ),
                ),
            }
            most = [("files", (f"m{i}.png", rgb16, "image/png")) for i in range(20)]
            deep = [("files", (f"d{i}.png", grey16, "image/png")) for i in range(20)]
            cases["max"] = (
                "1 x preview of 20 PNG 4000x4000 RGB",
                lambda: asyncio.run(post_many(url + "/api/enroll/preview", 1, most, args.timeout)),
            )
            cases["max4"] = (
                "4 x preview of 20 PNG 4000x4000 RGB at once",
                lambda: asyncio.run(post_many(url + "/api/enroll/preview", 4, most, args.timeout)),
            )
            cases["deep"] = (
                "1 x preview of 20 PNG 4000x4000 16-bit grey",
                lambda: asyncio.run(post_many(url + "/api/enroll/preview", 1, deep, args.timeout)),
            )
            results = {}
            for name in args.cases:
                label, send = cases[name]
                results[name] = measure(pid, label, send)
            worst = max(r["growth_mb"] for r in results.values())
            print(f"largest peak RSS growth: {worst:,.0f} MB (goal: under 300 MB)")
            print(f"server RSS at the end: {status_kb(pid, 'VmRSS') * 1e3 / MB:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
