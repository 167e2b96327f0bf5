"""The gallery page shows the enrolment quality checks: the preview says which photo would be
refused and why, and after saving the page lists what was refused (real chromium, real server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import httpx

from browser import BROWSER_TESTS, open_page, preview_enrolment
from webutil import TOKEN, astronaut, encode, running_server

pytestmark = BROWSER_TESTS


def test_gallery_page_shows_quality_reasons(
    tmp_path: Path, untrained_tiny_checkpoint: Path, chromium: Any
) -> None:
    from playwright.sync_api import expect

    photos = tmp_path / "upload"
    photos.mkdir()
    (photos / "eileen.jpg").write_bytes(encode(astronaut()))
    (photos / "blurred.jpg").write_bytes(encode(cv2.GaussianBlur(astronaut(), (0, 0), 8.0)))
    files = [str(photos / n) for n in ("eileen.jpg", "blurred.jpg")]
    args = ("--model", str(untrained_tiny_checkpoint), "--db", str(tmp_path / "g.db"))
    viewport = {"width": 1280, "height": 900}
    with (
        running_server(tmp_path, *args, "--admin-token", TOKEN) as srv,
        open_page(chromium, viewport=viewport) as page,
    ):
        preview_enrolment(page, srv.url, TOKEN, "Eileen Collins", files)
        message = page.locator("#enrol-message")
        expect(message).to_contain_text("1 of 2 photo(s) have a usable face", timeout=60_000)
        preview = page.locator("#preview-list")
        expect(preview).to_contain_text("eileen.jpg (to be saved)")
        expect(preview).to_contain_text("blurred.jpg (will be refused: blurred (sharpness")

        page.click("#save")
        expect(message).to_contain_text("Saved Eileen Collins", timeout=60_000)
        expect(message).to_contain_text("1 face(s) added")
        expect(page.locator("#enrol-skipped")).to_contain_text("blurred.jpg: low quality: blurred")
        (person,) = httpx.get(srv.url + "/api/people").json()
        assert person["face_count"] == 1
