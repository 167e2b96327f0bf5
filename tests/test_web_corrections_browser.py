"""End to end in a real browser: "Not NAME" on the live page sticks, the gallery page lists the
correction and its Undo restores the answer (chromium with a fake webcam of a real photo)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

from conftest import shared_set
from test_web_browser import CHROMIUM, make_y4m, one_face_photo
from webutil import TOKEN, running_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed"),
]


def test_not_name_on_the_live_page_sticks_and_undo_restores(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from facemetric.data.detect import create_detector
    from facemetric.data.image import load_image
    from facemetric.gallery.store import GalleryStore
    from facemetric.models import load_embedder
    from facemetric.recognize.recognizer import Recognizer

    wild = shared_set("celeba-wild")
    people = sorted(p for p in wild.iterdir() if p.is_dir())
    detector = create_detector("retinaface")
    known_png, other_png = tmp_path / "known.png", tmp_path / "other.png"
    Image.fromarray(one_face_photo(people[0], detector)).save(known_png)
    Image.fromarray(one_face_photo(people[1], detector)).save(other_png)
    video = tmp_path / "webcam.y4m"
    make_y4m(other_png, other_png, video)  # the camera shows someone else the whole time
    db = tmp_path / "gallery.db"
    name = people[0].name
    recognizer = Recognizer(load_embedder(untrained_tiny_checkpoint), GalleryStore(db), detector)
    recognizer.enroll(name, [load_image(known_png)])
    recognizer.close()
    # The untrained model takes the other person for NAME: exactly what a correction is for.
    args = ("--model", str(untrained_tiny_checkpoint), "--db", str(db), "--admin-token", TOKEN)
    args += ("--threshold", "0.5")

    with running_server(tmp_path, *args) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={video}",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(srv.url + "/gallery")
            page.fill("#token", TOKEN)  # kept in this tab's sessionStorage
            expect(page.locator("#corrections-empty")).to_be_visible()
            page.goto(srv.url + "/")
            named = page.locator("#faces .face-card.match", has_text=name)
            expect(named.first).to_be_visible(timeout=60_000)
            expect(named.first.locator(".reason")).to_contain_text("threshold")
            named.first.locator("button.correct-wrong").click()  # kept while the track lasts
            expect(page.locator("#conn")).to_contain_text("saved: not", timeout=30_000)
            unknown = page.locator("#faces .face-card .reason", has_text="closer_to_negative")
            expect(unknown.first).to_be_visible(timeout=30_000)
            listed = httpx.get(srv.url + "/api/corrections").json()
            assert [(c["kind"], c["person"]) for c in listed] == [("wrong", name)]

            page.goto(srv.url + "/gallery")
            item = page.locator(f'#corrections li[data-correction="{listed[0]["id"]}"]')
            expect(item).to_contain_text(f"not {name}")
            item.locator("button").click()
            expect(page.locator("#corrections-empty")).to_be_visible(timeout=30_000)
            assert httpx.get(srv.url + "/api/corrections").json() == []
            page.goto(srv.url + "/")
            expect(named.first).to_be_visible(timeout=60_000)
        finally:
            browser.close()
