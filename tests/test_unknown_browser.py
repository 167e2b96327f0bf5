"""The "Unknown faces" page in a real browser (Debian's chromium through Playwright): groups
largest first with their chips; naming a group enrols it in the gallery; dismissing hides one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from browser import BROWSER_TESTS, open_page
from facemetric.gallery.store import GalleryStore
from facemetric.unknown import UnknownKeeper, UnknownStore
from test_unknown import blobs, chip
from webutil import TOKEN, running_server

pytestmark = BROWSER_TESTS


def test_page_names_a_group_of_unknown_faces(
    tmp_path: Path, untrained_tiny_checkpoint: Path, chromium: Any
) -> None:
    from playwright.sync_api import expect

    db = tmp_path / "gallery.db"
    x, _ = blobs(3, 1, seed=4)
    store = GalleryStore(db)
    keeper = UnknownKeeper(store, "test-model", threshold=0.7, interval=0.0)
    sizes = (4, 2, 1)  # three strangers seen 4, 2 and 1 times
    for person, count in enumerate(sizes):
        for i in range(count):
            keeper.keep_chip(chip(10 * person + i), x[person], source=f"cam/{person}-{i}.jpg")
    groups = UnknownStore(store).groups()
    store.close()
    assert [g.size for g in groups] == list(sizes)
    largest, second = groups[0].id, groups[1].id

    args = ("--model", str(untrained_tiny_checkpoint), "--db", str(db), "--admin-token", TOKEN)
    with running_server(tmp_path, *args) as srv:
        with open_page(chromium, viewport={"width": 1280, "height": 900}) as page:
            page.goto(srv.url + "/unknown")
            cards = page.locator("#groups .group-card")
            expect(cards).to_have_count(2)  # faces seen once are hidden by default
            expect(cards.first).to_have_attribute("data-group", str(largest))
            expect(cards.first.locator(".chip img")).to_have_count(4)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#groups .chip img')]"
                ".every((i) => i.complete && i.naturalWidth === 200)"
            )
            page.locator("#show-singles").check()
            expect(cards).to_have_count(3)

            page.fill("#token", TOKEN)
            first = cards.first
            first.locator("input.name").fill("Grace Hopper")
            first.locator("button.name-button").click()
            expect(page.locator("#unknown-message")).to_contain_text("enrolled as Grace Hopper")
            expect(cards).to_have_count(2)
            expect(page.locator(f'.group-card[data-group="{largest}"]')).to_have_count(0)

            page.locator(f'.group-card[data-group="{second}"] button.dismiss').click()
            expect(page.locator("#unknown-message")).to_contain_text("dismissed")
            expect(cards).to_have_count(1)
            page.screenshot(path=str(tmp_path / "unknown-page.png"))
        people = httpx.get(srv.url + "/api/people").json()
        assert [(p["name"], p["face_count"]) for p in people] == [("Grace Hopper", 4)]
