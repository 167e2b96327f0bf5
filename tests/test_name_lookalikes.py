"""Issue 28, point 12: "Аnn Lee" with a Cyrillic А was accepted beside "Ann Lee" (the docs say
no name may look like another), and a name sent as the invalid UTF-8 ``A\\xff\\xfeB`` was stored
as "AÿþB"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from facemetric.errors import GalleryError
from facemetric.gallery.skeleton import skeleton
from facemetric.gallery.store import GalleryStore
from facemetric.web.app import create_app
from test_gallery_backends import chips
from webutil import TOKEN, web_settings

ONE = np.eye(1, 8, dtype=np.float32)


@pytest.mark.parametrize(
    "spoof",
    [
        "\u0410nn Lee",  # Cyrillic capital A
        "Ann L\u0435e",  # Cyrillic small ie
        "\u0391nn Lee",  # Greek capital alpha
        "\uff21nn Lee",  # fullwidth A
        "Ann Lee",  # an ordinary name, same as the stored one: that person, not a new one
    ],
)
def test_a_name_that_looks_like_a_stored_one_is_refused(gallery_at: str, spoof: str) -> None:
    store = GalleryStore(gallery_at)
    try:
        store.add_faces("Ann Lee", chips(0, 1), "key-test", vectors=ONE)
        if spoof == "Ann Lee":
            store.add_faces(spoof, chips(1, 1), "key-test", vectors=ONE)
            assert [p.face_count for p in store.list_people()] == [2]
            return
        with pytest.raises(GalleryError, match="looks like 'Ann Lee'") as info:
            store.add_faces(spoof, chips(1, 1), "key-test", vectors=ONE)
        assert "U+" in str(info.value)  # which character is foreign
        with pytest.raises(GalleryError, match="looks like"):
            store.add_person(spoof)
        store.add_faces("Anne Lee", chips(2, 1), "key-test", vectors=ONE)  # reads differently
        assert sorted(p.name for p in store.list_people()) == ["Ann Lee", "Anne Lee"]
    finally:
        store.close()


def test_skeletons() -> None:
    assert skeleton("\u0410nn") == skeleton("Ann") != skeleton("Anne")
    assert skeleton("Bi11") == skeleton("Bill") and skeleton("rnia") == skeleton("mia")
    assert skeleton("Zo\u00eb") != skeleton("Zoe")  # accents are not look-alikes


def test_invalid_utf8_name_is_refused(tmp_path: Path) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nA\xff\xfeB\r\n'
        b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\nnot a photo\r\n--b--\r\n"
    )
    with TestClient(create_app(web_settings(tmp_path, None))) as client:
        r = client.post(
            "/api/people",
            content=body,
            headers={
                "Content-Type": "multipart/form-data; boundary=b",
                "Authorization": f"Bearer {TOKEN}",
            },
        )
        assert r.status_code in (400, 422), r.text
        assert "UTF-8" in r.json()["detail"] and "\u00ff" not in r.text
        assert client.get("/api/people").json() == []
