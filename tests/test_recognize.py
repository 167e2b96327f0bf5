"""Recognizer on real photos (celeba-wild): enrol, identify, reject strangers, several faces,
no face, bad input; per-person top-k against brute force; reload when the gallery changes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import shared_set
from facemetric.data.detect import create_detector
from facemetric.data.image import load_image
from facemetric.errors import ConfigError, GalleryError, ImageReadError
from facemetric.gallery.store import GalleryStore
from facemetric.models import ModelSpec, load_embedder
from facemetric.recognize.decision import DecisionSettings
from facemetric.recognize.recognizer import Recognizer


@pytest.fixture(scope="module")
def detector() -> Any:
    return create_detector("retinaface")


@pytest.fixture(scope="module")
def people(detector: Any) -> dict[str, list[np.ndarray]]:
    """Four celeba-wild people, two photos each in which exactly one face is found."""
    root = shared_set("celeba-wild")
    out: dict[str, list[np.ndarray]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = []
        for path in sorted(folder.iterdir())[:6]:
            image = load_image(path)
            if len(detector.detect(image)) == 1 and max(image.shape[:2]) <= 800:
                photos.append(image)
            if len(photos) == 2:
                break
        if len(photos) == 2:
            out[folder.name] = photos
        if len(out) == 4:
            break
    assert len(out) == 4, "celeba-wild: fewer than 4 people with 2 single-face photos"
    return out


@pytest.fixture
def recognizer(tmp_path: Path, untrained_tiny_checkpoint: Path, detector: Any) -> Recognizer:
    embedder = load_embedder(untrained_tiny_checkpoint, engine="torch")
    # An untrained model finds every face alike: no margin, so plumbing is tested, not accuracy.
    loose = DecisionSettings(margin=0.0)
    return Recognizer(embedder, GalleryStore(tmp_path / "g.db"), detector, top_k=3, decision=loose)


def side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    h = max(a.shape[0], b.shape[0])
    canvas = np.full((h, a.shape[1] + b.shape[1], 3), 40, np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] :] = b
    return canvas


def test_enrolled_people_are_found_and_strangers_are_unknown(
    recognizer: Recognizer, people: dict[str, list[np.ndarray]]
) -> None:
    a, b, c, _ = people
    ids_a = recognizer.enroll(a, [people[a][0]]).added
    recognizer.enroll(b, [people[b][0]])
    (face,) = recognizer.recognize(people[a][0])
    assert face.identity == a and face.is_match and face.similarity > 0.99
    assert face.gallery_face_id == ids_a[0]
    assert [cand.identity for cand in face.top_k] == [a, b]  # one candidate per person
    d = face.to_dict()
    assert set(d) == {
        "box",
        "landmarks",
        "score",
        "identity",
        "similarity",
        "is_match",
        "gallery_face_id",
        "top_k",
        "nearest",
        "reason",
        "decision",
    }
    assert d["reason"] == "match" and d["decision"]["identity"] == a
    assert len(d["landmarks"]) == 5 and len(d["box"]) == 4

    # A person who is not enrolled is reported as unknown, not as the nearest person.
    (stranger,) = recognizer.recognize(people[c][0], threshold=0.999)
    assert stranger.identity is None and not stranger.is_match
    assert stranger.gallery_face_id is None and stranger.top_k  # candidates are still listed
    assert stranger.similarity == stranger.top_k[0].similarity < 0.999
    (one,) = recognizer.recognize(people[a][0], top_k=1)
    assert len(one.top_k) == 1


def test_several_faces_in_one_frame(
    recognizer: Recognizer, people: dict[str, list[np.ndarray]]
) -> None:
    a, b, _, _ = people
    recognizer.enroll(a, [people[a][0]])
    recognizer.enroll(b, [people[b][0]])
    matches = recognizer.recognize(side_by_side(people[a][0], people[b][0]))
    assert len(matches) == 2
    left, right = sorted(matches, key=lambda m: m.box[0])
    assert (left.identity, right.identity) == (a, b)
    assert min(left.similarity, right.similarity) > 0.95


def test_no_face_empty_gallery_and_bad_input(
    recognizer: Recognizer, people: dict[str, list[np.ndarray]], tmp_path: Path
) -> None:
    assert recognizer.recognize(np.full((240, 320, 3), 128, np.uint8)) == []
    a = next(iter(people))
    (face,) = recognizer.recognize(people[a][0])  # empty gallery: a face, nobody to match
    assert face.identity is None and face.top_k == [] and not face.is_match
    with pytest.raises(ConfigError, match="HxWx3 uint8"):
        recognizer.recognize(np.zeros((10, 10), np.float32))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 50)
    with pytest.raises(ImageReadError, match="broken.jpg"):
        load_image(broken)
    # One policy everywhere: a faceless photo is skipped and reported, the rest is saved ...
    result = recognizer.enroll(
        "x", [people[a][0], np.zeros((99, 99, 3), np.uint8)], sources=["a.jpg", "blank.png"]
    )
    assert len(result.added) == 1 and set(result.skipped) == {"blank.png"}
    assert "no face" in result.skipped["blank.png"]
    assert [(p.name, p.face_count) for p in recognizer.store.list_people()] == [("x", 1)]
    # ... the same photo again is not stored twice ...
    again = recognizer.enroll("x", [people[a][0]], sources=["a.jpg"])
    assert again.added == [] and again.duplicates == 1
    # ... and only when nothing is usable is it an error, with nothing saved.
    with pytest.raises(GalleryError, match=r"no usable face for 'y'.*blank.png: .*no face"):
        recognizer.enroll("y", [np.zeros((99, 99, 3), np.uint8)], sources=["blank.png"])
    assert [p.name for p in recognizer.store.list_people()] == ["x"]
    with pytest.raises(GalleryError):
        recognizer.enroll("x", [])


def test_reloads_when_another_writer_changes_the_gallery(
    recognizer: Recognizer, people: dict[str, list[np.ndarray]]
) -> None:
    a, b, _, _ = people
    recognizer.enroll(a, [people[a][0]])
    assert recognizer.recognize(people[b][0], threshold=0.99)[0].identity is None
    # Another process (here: another store object) adds b's crop without any embedding.
    other = GalleryStore(recognizer.store.path)
    crop = recognizer.detect(people[b][0])[0].crop
    other.add_faces(b, [crop])
    (face,) = recognizer.recognize(people[b][0], threshold=0.99)  # embedded on demand
    assert face.identity == b
    other.remove_person(b)
    assert recognizer.recognize(people[b][0], threshold=0.99)[0].identity is None


def test_threads_recognise_while_one_enrols(
    recognizer: Recognizer, people: dict[str, list[np.ndarray]]
) -> None:
    names = list(people)
    recognizer.enroll(names[0], [people[names[0]][0]])
    errors: list[BaseException] = []
    seen: list[str | None] = []

    def reader() -> None:
        try:
            for _ in range(3):
                seen.append(recognizer.recognize(people[names[0]][0])[0].identity)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for name in names[1:]:
        recognizer.enroll(name, [people[name][1]])
    for t in threads:
        t.join()
    assert not errors and seen == [names[0]] * 9
    assert [p.face_count for p in recognizer.store.list_people()] == [1, 1, 1, 1]


class LookupEmbedder:
    """Maps a crop to a fixed row of a table (row number in pixel (0, 0)): exact control."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table / np.linalg.norm(table, axis=1, keepdims=True)
        self.spec = ModelSpec(backbone="tiny", embedding_dim=table.shape[1], input_size=16)
        self.threshold = 0.5
        self.meta: dict[str, Any] = {}
        self.checkpoint_path = Path("<lookup>")
        self.model_key = "lookup-test"

    def crop(self, row: int) -> np.ndarray:
        c = np.zeros((16, 16, 3), np.uint8)
        c[0, 0, 0], c[0, 0, 1] = row % 256, row // 256
        return c

    def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
        rows = faces[:, 0, 0, 0].astype(int) + 256 * faces[:, 0, 0, 1].astype(int)
        return self.table[rows].astype(np.float32)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_per_person_top_k_matches_brute_force(tmp_path: Path, k: int) -> None:
    rng = np.random.default_rng(k)
    lookup = LookupEmbedder(rng.normal(size=(60, 8)))
    store = GalleryStore(tmp_path / "g.db")
    owner = {}
    for row in range(40):  # 40 faces of 6 people, uneven counts
        name = f"p{int(rng.integers(0, 6))}"
        (face_id,) = store.add_faces(name, [lookup.crop(row)], lookup)
        owner[face_id] = (name, row)
    rec = Recognizer(lookup, store, detector=None, top_k=k)  # type: ignore[arg-type]
    queries = lookup.table[40:]
    results = rec.match(queries, threshold=0.3)
    agree, margin = rec.decision_settings.agree, rec.decision_settings.margin
    for q, (cands, ok) in zip(queries, results, strict=True):
        sims: dict[str, list[tuple[float, int]]] = {}
        for face_id, (name, row) in owner.items():
            sims.setdefault(name, []).append((float(q @ lookup.table[row]), face_id))
        # a person's score: the mean of their best `agree` faces; shown with their best face
        scored = {
            name: (float(np.mean([s for s, _ in sorted(v, reverse=True)[:agree]])), max(v))
            for name, v in sims.items()
        }
        ranked = sorted(scored.items(), key=lambda t: -t[1][0])
        want = ranked[:k]
        assert [c.identity for c in cands] == [n for n, _ in want]
        assert [c.face_id for c in cands] == [b[1] for _, (_, b) in want]
        np.testing.assert_allclose(
            [c.similarity for c in cands], [s for _, (s, _) in want], atol=1e-5
        )
        np.testing.assert_allclose([c.best for c in cands], [b[0] for _, (_, b) in want], atol=1e-5)
        lead = ranked[0][1][0] - ranked[1][1][0]
        assert ok == (ranked[0][1][0] >= 0.3 and lead >= margin)
