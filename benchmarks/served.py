"""A real ``facemetric serve`` on a free port of 127.0.0.1, for the web benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ADMIN_TOKEN = "bench"  # the benchmarks' admin token (Authorization: Bearer bench)


@contextmanager
def running_server(
    folder: Path, model: str | Path, *options: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve ``model`` with a gallery and FACEMETRIC_HOME in ``folder``; yields the base URL and
    the process once ``/api/health`` answers, and stops the server on the way out."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    console = Path(sys.executable).with_name("facemetric")
    env = {**os.environ, "FACEMETRIC_HOME": str(folder)}
    cmd = [str(console), "serve", "--create", "--model", str(model), "--db", str(folder / "g.db"),
           "--port", str(port), "--admin-token", ADMIN_TOKEN, *options]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # a busy machine may take minutes to start it
        while True:
            if server.poll() is not None:
                raise SystemExit(f"server exited with {server.returncode}")
            try:
                if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start within 300 s")
            time.sleep(0.3)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
