"""The timeline page in a real browser (Debian's chromium through Playwright): it asks for the
viewer token once, then an event handed to the server's own event sink (as a camera's event
builder does) appears with its snapshot, and the filters by camera and person work; every
page runs under the Content-Security-Policy without a violation."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from browser import BROWSER_TESTS, keep_screenshots, open_page, serving
from facemetric.events.model import Event
from webutil import astronaut, free_port, web_settings

VIEWER = "timeline-viewer-token"

pytestmark = BROWSER_TESTS


def snapshot_of(rgb: np.ndarray) -> bytes:
    from PIL import Image

    img = Image.fromarray(rgb)
    img.thumbnail((320, 240))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def test_timeline_asks_for_the_token_then_shows_events_with_snapshots(
    tmp_path: Path, chromium: Any
) -> None:
    from playwright.sync_api import expect

    from facemetric.web.app import create_app

    port = free_port()
    settings = web_settings(
        tmp_path,
        None,
        host="127.0.0.1",
        port=port,
        viewer_token=VIEWER,
        viewer_token_required="always",  # as when listening beyond 127.0.0.1
        events_keep_days=0,
    )
    app = create_app(settings)
    photo = astronaut()
    viewport = {"width": 1100, "height": 800}
    with serving(app, port) as url, open_page(chromium, viewport=viewport) as page:
        violations: list[str] = []
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security" in m.text else None,
        )
        page.goto(url + "/events")
        expect(page.locator("#events-signin")).to_be_visible()
        page.fill("#events-token", "wrong")
        page.click("#events-signin button")
        expect(page.locator("#events-signin-message")).to_have_text("Wrong token.")
        page.fill("#events-token", VIEWER)
        page.click("#events-signin button")
        expect(page.locator("#events-empty")).to_be_visible()

        now = time.time()
        sink = app.state.events.sink
        for i, (camera, person) in enumerate((("door", "Eileen Collins"), ("hall", None))):
            ev = Event(
                camera=camera,
                person=person,
                first_seen=now - 30 + i,
                last_seen=now - 25 + i,
                similarity=0.91 if person else 0.31,
                track_id=i,
                frames=40,
                nearest="Eileen Collins",
                chip=np.ascontiguousarray(photo[30:180, 170:320]),
                snapshot=snapshot_of(photo),
            )
            sink.update(ev)
            sink.close_event(ev)
        cards = page.locator("#events .event-card")
        expect(cards).to_have_count(2, timeout=20_000)  # polled every 3 s
        known = page.locator("#events .event-card.known")
        expect(known.locator(".who")).to_have_text("Eileen Collins")
        expect(known.locator(".camera")).to_have_text("camera door")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#events img.snapshot')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            timeout=15_000,
        )
        expect(cards.nth(0).locator(".who")).to_contain_text("unknown")  # newest first
        page.screenshot(path=str(tmp_path / "timeline.png"))

        page.select_option("#events-camera", "door")
        expect(cards).to_have_count(1)
        expect(cards.first.locator(".who")).to_have_text("Eileen Collins")
        page.select_option("#events-camera", "")
        page.select_option("#events-person", label="unknown faces")
        expect(cards).to_have_count(1)
        expect(cards.first.locator(".camera")).to_have_text("camera hall")

        again = page.context.new_page()  # same browser: the cookie, no second question
        again.goto(url + "/events")
        expect(again.locator("#events .event-card")).to_have_count(2, timeout=10_000)
        assert again.locator("#events-signin").is_hidden()
        assert violations == []
    keep_screenshots(tmp_path / "timeline.png")


def test_an_event_of_a_server_side_camera_appears_on_the_timeline(
    tmp_path: Path, untrained_tiny_checkpoint: Path, chromium: Any
) -> None:
    """A video file played as a camera (h/video's reader, tracker and event builder) with the
    tiny untrained model: its event reaches the history and the page shows it with its
    snapshot (plumbing: who it is does not matter here)."""
    from PIL import Image
    from playwright.sync_api import expect

    from facemetric.web.app import create_app
    from videoclip import Segment, make_clip

    frame = tmp_path / "astronaut.png"
    Image.fromarray(astronaut()).save(frame)
    clip = make_clip(tmp_path / "astro.mp4", [Segment(None, 0.0, 2.0, frame)], fps=10)
    from facemetric.gallery.store import FaceRecord, GalleryStore

    with GalleryStore(tmp_path / "gallery.db") as store:  # someone to be nearest to
        store.add_faces("Ann", [FaceRecord(np.full((150, 150, 3), 128, np.uint8))])
    port = free_port()
    settings = web_settings(
        tmp_path, untrained_tiny_checkpoint, port=port, cameras=[f"porch={clip}"],
        events_keep_days=0,
    )  # fmt: skip
    with serving(create_app(settings), port), open_page(chromium) as page:
        page.goto(f"http://127.0.0.1:{port}/events")  # 127.0.0.1: no token asked
        card = page.locator("#events .event-card", has_text="camera porch").first
        expect(card).to_be_visible(timeout=90_000)
        page.wait_for_function(
            "() => { const i = document.querySelector('#events img.snapshot');"
            " return i && i.complete && i.naturalWidth > 0; }",
            timeout=15_000,
        )
        page.select_option("#events-camera", "porch")
        expect(page.locator("#events .event-card").first).to_contain_text("porch")
