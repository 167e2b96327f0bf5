"""The Cameras view's webcam tile in a real browser (Debian's chromium through Playwright, a fake
webcam made with ffmpeg from the astronaut photo): nothing streams until its button is pressed,
then the tile shows the webcam with the server's labels, and the webcam's sighting is an event
in the history (camera ``webcam``), closed when the tile stops, and on the Timeline."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from webutil import TOKEN, astronaut, encode, frame_640x480, free_port, web_settings

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed"),
]


def webcam_events(url: str) -> list[dict[str, Any]]:
    r = httpx.get(url + "/api/events", params={"camera": "webcam"})
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def test_cameras_page_webcam_tile_streams_on_request_and_makes_an_event(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    import uvicorn
    from playwright.sync_api import expect, sync_playwright

    from facemetric.web.app import create_app

    png = tmp_path / "astronaut.png"
    Image.fromarray(frame_640x480(astronaut())).save(png)
    video = tmp_path / "webcam.y4m"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "5", "-t", "4", "-i",
         str(png), "-pix_fmt", "yuv420p", str(video)],
        check=True,
    )  # fmt: skip

    port = free_port()
    settings = web_settings(
        tmp_path, untrained_tiny_checkpoint, host="127.0.0.1", port=port, events_keep_days=0
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    try:
        files = [("files", ("astronaut.png", encode(astronaut(), "PNG"), "image/png"))]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = httpx.post(url + "/api/people", data={"name": "astronaut"}, files=files, headers=auth)
        assert r.status_code == 201, r.text
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM),
                args=[
                    "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={video}",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                ],
            )
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 800})
                violations: list[str] = []
                page.on(
                    "console",
                    lambda m: violations.append(m.text) if "Content Security" in m.text else None,
                )
                page.goto(url + "/cameras")
                tile = page.locator('[data-camera="webcam"]')
                expect(tile.locator("#webcam-state")).to_have_text("off")
                time.sleep(1.0)
                assert webcam_events(url) == []  # the camera is never grabbed unasked
                page.click("#webcam-start")
                expect(tile.locator("#webcam-state")).to_have_text("live", timeout=30_000)
                expect(tile.locator("#webcam-detail")).to_contain_text("astronaut", timeout=30_000)
                page.screenshot(path=str(tmp_path / "cameras-webcam.png"))
                deadline = time.monotonic() + 20
                while not webcam_events(url) and time.monotonic() < deadline:
                    time.sleep(0.2)
                page.click("#webcam-start")  # stop: the stream closes, so does the event
                expect(tile.locator("#webcam-state")).to_have_text("off")
                deadline = time.monotonic() + 20
                found = webcam_events(url)
                while not (found and found[0]["closed"]) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    found = webcam_events(url)
                (event,) = found
                assert event["person"] == "astronaut" and event["closed"], event

                page.goto(url + "/events")
                card = page.locator("#events .event-card.known")
                # the Timeline says the event came from a browser, and why it is named
                expect(card.locator(".camera")).to_have_text(
                    "camera webcam (a browser's webcam)", timeout=20_000
                )
                expect(card.locator(".who")).to_have_text("astronaut")
                # in the decision's own words, as identify and the live page say it
                reason = card.locator(".reason")
                expect(reason).to_contain_text("the track's evidence): match: score")
                expect(reason).to_contain_text(">= threshold")
                assert violations == []
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(15)
