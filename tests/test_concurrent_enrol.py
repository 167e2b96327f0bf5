"""Issue 28, point 7: two servers on one gallery enrolling the same person with the same photos
at once stored each photo twice (6 faces for 3 photos) and answered 500 (``UniqueViolation
people_name_key``). Two stores (two connection pools, as two servers have) race here."""

from __future__ import annotations

import threading

import numpy as np

from facemetric.gallery.store import GalleryStore
from test_gallery_backends import chips

ROUNDS = 6


def test_same_photos_enrolled_at_once_are_stored_once(gallery_at: str) -> None:
    stores = [GalleryStore(gallery_at), GalleryStore(gallery_at)]
    try:
        for r in range(ROUNDS):
            name = f"Eileen {r}"
            faces = chips(r, 3)
            vectors = np.eye(3, 8, dtype=np.float32)
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []
            added: list[int] = []

            def enrol(store: GalleryStore, faces=faces, vectors=vectors, barrier=barrier,
                      name=name, errors=errors, added=added) -> None:  # fmt: skip
                barrier.wait()
                try:
                    added.append(len(store.add_faces(name, faces, "key-test", vectors=vectors)))
                except BaseException as exc:  # the test reports it
                    errors.append(exc)

            threads = [threading.Thread(target=enrol, args=(s,)) for s in stores]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert not errors, errors
            assert sorted(added) == [0, 3], added
            assert len(stores[0].faces_of(name)) == 3
    finally:
        for s in stores:
            s.close()
