"""End to end in a real browser: "Not NAME" on the live page sticks, the gallery page lists the
correction and its Undo restores the answer (chromium with a fake webcam of a real photo)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from browser import BROWSER_TESTS, NEEDS_FFMPEG, make_y4m, one_face_photo, open_page
from conftest import shared_set
from webutil import TOKEN, running_server

pytestmark = [*BROWSER_TESTS, NEEDS_FFMPEG]


def test_not_name_on_the_live_page_sticks_and_undo_restores(
    tmp_path: Path, untrained_tiny_checkpoint: Path, launch_chromium: Callable[[Path], Any]
) -> None:
    from playwright.sync_api import expect

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

    with running_server(tmp_path, *args) as srv:
        browser = launch_chromium(video)
        with open_page(browser, viewport={"width": 1280, "height": 800}) as page:
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
