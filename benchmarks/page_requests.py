"""Every page of the web app loaded in Debian's chromium (Playwright): how many requests each
makes, how many go to another host (goal: none, so the pages work offline) or fail, and how
long it takes to load (until the network is idle)::

    .venv/bin/python benchmarks/page_requests.py

The server is ``facemetric serve --create`` on an empty gallery in a temporary folder (the
pretrained model), on 127.0.0.1 and a free port; the live page gets a fake webcam.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

CONSOLE = Path(sys.executable).with_name("facemetric")
PAGES = ("/", "/gallery", "/cameras", "/events", "/unknown", "/docs")


def remote(url: str) -> bool:
    """A request to a host other than this server (data: and blob: URLs are the page's own)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != "127.0.0.1"


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = {**os.environ, "FACEMETRIC_HOME": folder}
        cmd = [str(CONSOLE), "serve", "--create", "--db", f"{folder}/g.db", "--port", str(port)]
        server = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.5)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                          "--use-fake-device-for-media-stream"],
                )  # fmt: skip
                print(
                    f"{'page':10s} {'requests':>8s} {'foreign':>8s} {'failed':>7s} {'load ms':>8s}"
                )
                for path in PAGES:
                    page = browser.new_page()
                    seen: list[str] = []
                    bad: list[str] = []
                    page.on("request", lambda r, seen=seen: seen.append(r.url))
                    page.on("requestfailed", lambda r, bad=bad: bad.append(r.url))
                    page.on(
                        "response",
                        lambda r, bad=bad: bad.append(r.url) if r.status >= 400 else None,
                    )
                    start = time.perf_counter()
                    page.goto(url + path, wait_until="networkidle")
                    ms = (time.perf_counter() - start) * 1000
                    foreign = [u for u in seen if remote(u)]
                    print(f"{path:10s} {len(seen):8d} {len(foreign):8d} {len(bad):7d} {ms:8.0f}")
                    for u in foreign + bad:
                        print(f"    {u}")
                    page.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
