"""The Cameras view's webcam tile in a real browser (Debian's chromium through Playwright, a fake
webcam made with ffmpeg from the astronaut photo: the session's ``chromium``): nothing streams
until its button is pressed, then the tile shows the webcam with the server's labels, and the
webcam's sighting is an event in the history (camera ``webcam``), closed when the tile stops, and
on the Timeline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from browser import BROWSER_TESTS, NEEDS_FFMPEG, open_page, serving
from webutil import TOKEN, astronaut, encode, free_port, web_settings

pytestmark = [*BROWSER_TESTS, NEEDS_FFMPEG]


def webcam_events(url: str) -> list[dict[str, Any]]:
    r = httpx.get(url + "/api/events", params={"camera": "webcam"})
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def test_cameras_page_webcam_tile_streams_on_request_and_makes_an_event(
    tmp_path: Path, untrained_tiny_checkpoint: Path, chromium: Any
) -> None:
    from playwright.sync_api import expect

    from facemetric.web.app import create_app

    port = free_port()
    settings = web_settings(
        tmp_path, untrained_tiny_checkpoint, host="127.0.0.1", port=port, events_keep_days=0
    )
    with serving(create_app(settings), port) as url:
        files = [("files", ("astronaut.png", encode(astronaut(), "PNG"), "image/png"))]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = httpx.post(url + "/api/people", data={"name": "astronaut"}, files=files, headers=auth)
        assert r.status_code == 201, r.text
        with open_page(chromium, viewport={"width": 1100, "height": 800}) as page:
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
