"""The store's rules on both backends: generations and the change log, a live gallery that follows
changes without reading everything again, schema versions, and read-only opening; the migration
of an old SQLite gallery; PostgreSQL's messages for bad locations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from facemetric.errors import GalleryError
from facemetric.gallery.backend import redact
from facemetric.gallery.live import LiveGallery
from facemetric.gallery.store import FaceRecord, GalleryStore

DIM = 8


class KeyEmbedder:
    """A deterministic embedder over chips (no torch): the store is under test."""

    model_key = "key-test"
    spec = type("Spec", (), {"alignment": "arcface", "input_size": 112, "embedding_dim": DIM})()

    def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
        v = faces.reshape(len(faces), -1)[:, :DIM].astype(np.float32) + 1
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def chips(seed: int, n: int) -> list[FaceRecord]:
    rng = np.random.default_rng(seed)
    return [FaceRecord(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)) for _ in range(n)]


def test_generations_and_the_change_log(gallery_at: str) -> None:
    store = GalleryStore(gallery_at)
    g0 = store.change_counter()
    ids = store.add_faces("Ann", chips(1, 3), KeyEmbedder())
    g1 = store.change_counter()
    assert g1 > g0
    changes = store.changes_since(g0)
    assert changes is not None and changes.generation == g1 and changes.face_ids == set(ids)
    store.remove_person("Ann")
    later = store.changes_since(g1)
    assert later is not None and later.face_ids == set(ids)
    assert store.changes_since(store.change_counter()).face_ids == frozenset()  # type: ignore[union-attr]
    store.close()


def test_live_gallery_follows_changes_of_another_store(gallery_at: str) -> None:
    """A second store object (as another server or the CLI would) adds and removes; the live
    gallery reads only what changed and searches the current faces."""
    embedder = KeyEmbedder()
    mine, other = GalleryStore(gallery_at), GalleryStore(gallery_at)
    ann = mine.add_faces("Ann", chips(1, 2), embedder)
    live = LiveGallery(mine, embedder, index="exact")
    live.current()
    assert sorted(live.people) == ["Ann"] and len(live) == 2
    bob_records = chips(2, 2)
    bob = other.add_faces("Bob", bob_records)  # no embedder: the live gallery embeds them
    read: list[list[int] | None] = []
    real_read = live._read
    live._read = lambda ids: (read.append(ids), real_read(ids))[1]  # type: ignore[method-assign]
    assert live.refresh()
    assert read == [sorted(bob)]  # only Bob's faces were read, not the whole gallery
    query = embedder.embed(np.stack([other.face_crop(bob[0])]))  # the chip as stored
    sims, found = live.search(query, 1)
    assert found[0, 0] == bob[0] and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    other.remove_person("Ann")
    live.refresh()
    assert live.people == ["Bob"] and all(live.person_of(i) is None for i in ann)
    _, found = live.search(embedder.embed(np.stack([chips(1, 1)[0].chip])), 4)
    assert set(found[0].tolist()) <= set(bob) | {-1}  # a removed face never comes back
    assert not live.refresh()  # nothing new
    mine.close()
    other.close()


def test_follower_thread_picks_up_changes_by_itself(gallery_at: str) -> None:
    embedder = KeyEmbedder()
    store, writer = GalleryStore(gallery_at), GalleryStore(gallery_at)
    live = LiveGallery(store, embedder, index="exact")
    live.current()
    changed = threading.Event()
    live.on_change(changed.set)
    live.follow()
    try:
        writer.add_faces("Cy", chips(3, 1), embedder)
        assert changed.wait(10), "the follower did not see the new face"
        assert live.people == ["Cy"] and live.status().following
        assert live.status().generation == writer.change_counter()
    finally:
        live.close()
        store.close()
        writer.close()


def test_negative_faces_are_kept_apart(gallery_at: str) -> None:
    embedder = KeyEmbedder()
    store = GalleryStore(gallery_at)
    store.add_faces("Ann", chips(1, 2), embedder)
    neg = store.add_faces("Ann", chips(9, 1), embedder, kind="negative")
    assert [p.face_count for p in store.list_people()] == [2]  # references only
    assert store.count_faces() == 2
    live = LiveGallery(store, embedder, index="exact").current()
    assert len(live) == 2 and live.negatives()["Ann"].shape == (1, DIM)
    store.remove_faces(neg)
    live.refresh()
    assert live.negatives() == {}
    with pytest.raises(GalleryError, match="kind"):
        store.add_faces("Ann", chips(4, 1), kind="maybe")
    store.close()


def test_newer_schema_and_read_only_opening(gallery_at: str, tmp_path: Path) -> None:
    store = GalleryStore(gallery_at)
    with store.backend.write() as con:
        con.execute("UPDATE schema_version SET version = 99")
    store.close()
    with pytest.raises(GalleryError, match="schema 99 is newer"):
        GalleryStore(gallery_at, create=False)


def test_read_only_commands_create_nothing_on_postgres(postgres_server) -> None:
    url = postgres_server.new_database()
    with pytest.raises(GalleryError, match="no gallery there"):
        GalleryStore(url, create=False)
    import psycopg

    with psycopg.connect(url) as con:
        tables = con.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)
    with psycopg.connect(url, autocommit=True) as con:  # a database of another application
        con.execute("CREATE TABLE people (id int, name text)")
    with pytest.raises(GalleryError, match="did not make"):
        GalleryStore(url)


def test_bad_postgres_locations_name_server_and_database_never_the_password(
    postgres_server,
) -> None:
    secret = "s3cret-Pass-123"
    cases = {
        postgres_server.url("no_such_db"): "does not exist",
        postgres_server.url(password=secret): "password authentication failed",
        f"postgresql://ada:{secret}@127.0.0.1:1/gallery": "refused",
        f"postgresql://ada:{secret}@no-such-host.invalid:5432/gallery": "no-such-host.invalid",
    }
    for url, why in cases.items():
        with pytest.raises(GalleryError) as caught:
            GalleryStore(url)
        message = str(caught.value)
        assert why in message and secret not in message and "\n" not in message
        assert url.rsplit("/", 1)[1] in message  # the database is named
    assert redact(f"postgresql://ada:{secret}@h:5/db") == "postgresql://ada:***@h:5/db"
    with pytest.raises(GalleryError, match="unknown gallery location"):
        GalleryStore("mysql://x/y")


V2_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE faces (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT, crop_png BLOB NOT NULL, box TEXT, landmarks TEXT, created TEXT NOT NULL,
    chip_template TEXT, chip_landmarks TEXT, content_sha256 TEXT
);
CREATE TABLE embeddings (
    face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    model_key TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (face_id, model_key)
);
INSERT INTO schema_version VALUES (2);
INSERT INTO meta VALUES ('generation', '7');
"""


def test_a_version_2_sqlite_gallery_is_migrated_in_place(tmp_path: Path) -> None:
    """Galleries made before schema 3 keep their people, faces, ids and embeddings; from then
    on ids are never handed out twice."""
    db = tmp_path / "old.db"
    from facemetric.gallery.records import encode_png

    with sqlite3.connect(db) as con:
        con.executescript(V2_SCHEMA)
        png = encode_png(np.zeros((112, 112, 3), np.uint8))
        con.execute("INSERT INTO people VALUES (1, 'Ann', 't'), (2, 'Bob', 't')")
        con.execute(
            "INSERT INTO faces (id, person_id, crop_png, created, content_sha256) VALUES "
            "(5, 1, ?, 't', 'a'), (6, 2, ?, 't', 'b')",
            (png, png),
        )
        vec = np.ones(DIM, np.float32).tobytes()
        con.execute("INSERT INTO embeddings VALUES (5, 'k', ?, ?), (6, 'k', ?, ?)", (DIM, vec) * 2)
    store = GalleryStore(db, create=False)
    assert [(p.name, p.face_count) for p in store.list_people()] == [("Ann", 1), ("Bob", 1)]
    assert list(store.embeddings("k").face_ids) == [5, 6]
    assert store.change_counter() == 7
    store.remove_person("Bob")
    new = store.add_faces("Cy", chips(1, 1))
    assert new[0] > 6  # Bob's face id is not handed out again
    assert store.known_photos("Ann") == {"a"}
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
    store.close()


def test_concurrent_first_opens_set_up_the_schema_once(gallery_at: str) -> None:
    """Two servers starting at once on an empty database: one sets the schema up, both work."""
    errors: list[BaseException] = []
    stores: list[GalleryStore] = []

    def open_one() -> None:
        try:
            stores.append(GalleryStore(gallery_at))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    stores[0].add_person("Ann")
    assert [p.name for p in stores[1].list_people()] == ["Ann"]
    for s in stores:
        s.close()
