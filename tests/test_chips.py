"""Compact chips: new faces are stored as JPEG (the default), PNG or WebP as the gallery's
recorded ``chip_format`` says, old PNG chips still decode and re-embed, ``gallery copy`` keeps
bytes or converts when asked, and ``add_many`` writes many people in one transaction. SQLite and
a real PostgreSQL server alike."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facemetric.cli import main
from facemetric.errors import GalleryError
from facemetric.gallery.copy import copy_gallery
from facemetric.gallery.records import (
    chip_format,
    chip_media_type,
    decode_chip,
    encode_chip,
    encode_png,
)
from facemetric.gallery.store import FaceRecord, GalleryStore
from facemetric.models import load_embedder


def face_chip(seed: int = 0, size: int = 112) -> np.ndarray:
    """A photo's texture (a window of scikit-image's astronaut, moved by ``seed``), as face
    chips are: neither flat nor noise."""
    from skimage import data

    y, x = 20 + 7 * (seed % 10), 150 + 5 * (seed // 10)
    window = np.ascontiguousarray(data.astronaut()[y : y + 200, x : x + 200])
    return np.asarray(Image.fromarray(window).resize((size, size)))


def stored_chips(store: GalleryStore, ids: list[int]) -> list[bytes]:
    return [store.face_thumbnail(i) for i in ids]


def test_formats_encode_decode_and_say_what_they_are() -> None:
    chip = face_chip()
    png, jpeg, webp = (encode_chip(chip, f) for f in ("png", "jpeg", "webp"))
    assert [chip_format(b) for b in (png, jpeg, webp)] == ["png", "jpeg", "webp"]
    assert chip_format(b"GIF89a....") is None
    assert [chip_media_type(b) for b in (png, jpeg, webp, b"??")] == [
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/png",
    ]
    assert np.array_equal(decode_chip(png), chip)  # lossless
    for lossy in (jpeg, webp):
        back = decode_chip(lossy)
        assert back.shape == chip.shape and np.abs(back.astype(int) - chip).mean() < 2.0
        assert len(lossy) < len(png) / 2
    assert chip_format(encode_chip(chip)) == "jpeg"  # the default
    assert encode_chip(chip, "JPG") == encode_chip(chip, "jpeg", 95)
    assert len(encode_chip(chip, "jpeg", 50)) < len(jpeg)
    with pytest.raises(GalleryError, match="chip format: 'gif' is not one of png, jpeg, webp"):
        encode_chip(chip, "gif")


def test_new_chips_follow_the_recorded_format(
    gallery_at: str, untrained_tiny_checkpoint: Path
) -> None:
    embedder = load_embedder(untrained_tiny_checkpoint)
    store = GalleryStore(gallery_at)
    assert store.chip_format() == "jpeg"
    ids = store.add_faces("Ann", [FaceRecord(face_chip(1)), FaceRecord(face_chip(2))], embedder)
    assert [chip_format(b) for b in stored_chips(store, ids)] == ["jpeg", "jpeg"]

    assert store.set_chip_format("png") == "png"
    other = GalleryStore(gallery_at)  # another writer (server, CLI) follows the gallery's choice
    assert other.chip_format() == "png"
    png_ids = other.add_faces("Ann", [FaceRecord(face_chip(3))], embedder)
    assert chip_format(stored_chips(other, png_ids)[0]) == "png"
    assert np.array_equal(other.face_crop(png_ids[0]), face_chip(3))
    webp = other.add_faces("Bob", [FaceRecord(face_chip(4))], embedder, chip_format="webp")
    assert chip_format(stored_chips(other, webp)[0]) == "webp"
    with pytest.raises(GalleryError, match="chip format"):
        other.set_chip_format("tiff")
    assert other.chip_format() == "png"  # nothing changed

    # Every format re-embeds from its stored chip, and the chips already stored kept theirs.
    assert other.reembed(embedder) == 4
    emb = other.embeddings(embedder)
    crops = np.stack([other.face_crop(int(i)) for i in emb.face_ids])
    assert np.abs(emb.vectors - embedder.embed(crops)).max() < 1e-4
    assert [chip_format(b) for b in stored_chips(other, ids)] == ["jpeg", "jpeg"]
    store.close()
    other.close()


def test_old_png_chips_still_decode_and_reembed(
    gallery_at: str, untrained_tiny_checkpoint: Path
) -> None:
    """A gallery written before compact chips holds PNG bytes: read back exactly."""
    embedder = load_embedder(untrained_tiny_checkpoint)
    store = GalleryStore(gallery_at)
    old = [face_chip(5), face_chip(6)]
    records = [
        FaceRecord(c, chip_png=encode_png(c), source=f"old/{i}.jpg") for i, c in enumerate(old)
    ]
    ids = store.add_faces("Old", records)  # stored as they are, as an import or an old version
    new = store.add_faces("Old", [FaceRecord(face_chip(7))])
    assert [chip_format(b) for b in stored_chips(store, ids + new)] == ["png", "png", "jpeg"]
    assert all(np.array_equal(store.face_crop(i), c) for i, c in zip(ids, old, strict=True))
    assert store.reembed(embedder) == 3
    emb = store.embeddings(embedder)
    assert np.abs(emb.vectors[:2] - embedder.embed(np.stack(old))).max() < 1e-5
    store.close()


def test_add_many_writes_many_people_in_one_transaction(gallery_at: str) -> None:
    store = GalleryStore(gallery_at)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 8)).astype(np.float32)
    ann = [FaceRecord(face_chip(i), content_sha256=f"a{i}") for i in range(3)]
    bob = [FaceRecord(face_chip(10 + i), content_sha256=f"b{i}") for i in range(2)]
    store.add_faces("Ann", ann[:1], "model-a", vectors=vectors[:1])  # Ann exists with one face
    before = store.change_counter()
    out = store.add_many([("Ann", ann, vectors[:3]), ("Bob", bob, vectors[3:])], "model-a")
    assert [len(ids) for ids in out] == [2, 2]  # Ann's first photo was there already
    assert store.change_counter() == before + 1  # one transaction, one generation
    changes = store.changes_since(before)
    assert changes is not None and changes.face_ids == {*out[0], *out[1]}
    assert [(p.name, p.face_count) for p in store.list_people()] == [("Ann", 3), ("Bob", 2)]
    emb = store.embeddings("model-a")
    got = {int(i): v for i, v in zip(emb.face_ids, emb.vectors, strict=True)}
    assert np.allclose(got[out[1][1]], vectors[4]) and np.allclose(got[out[0][0]], vectors[1])
    assert chip_format(store.face_thumbnail(out[1][0])) == "jpeg"
    assert store.add_many([("Bob", bob, None)]) == [[]]  # nothing new, nothing written
    assert store.change_counter() == before + 1

    # All or nothing: a bad face anywhere in the batch writes nothing at all.
    bad = FaceRecord(np.zeros((4, 4), np.uint8))
    with pytest.raises(GalleryError, match="face #2"):
        store.add_many([("Cy", [FaceRecord(face_chip(20))], None), ("Dee", [ann[0], bad], None)])
    with pytest.raises(GalleryError, match="vectors: 1 rows for 2 faces"):
        store.add_many([("Cy", bob, vectors[:1])], "model-a")
    assert [p.name for p in store.list_people()] == ["Ann", "Bob"]

    # One group photo enrolled for two people: the same content hash, each their own face.
    eve, fay = face_chip(30), face_chip(31)
    (e,), (f,) = store.add_many(
        [("Eve", [FaceRecord(eve, content_sha256="group")], None),
         ("Fay", [FaceRecord(fay, content_sha256="group")], None)]
    )  # fmt: skip
    for face_id, own, other in ((e, eve, fay), (f, fay, eve)):
        back = store.face_crop(face_id).astype(int)
        assert np.abs(back - own).mean() < np.abs(back - other).mean() / 4
    store.close()


def test_copy_keeps_chip_bytes_or_converts_when_asked(tmp_path: Path, gallery_at: str) -> None:
    src = GalleryStore(tmp_path / "src.db")
    src.set_chip_format("png")
    ids = src.add_faces("Ann", [FaceRecord(face_chip(i), content_sha256=f"d{i}") for i in range(3)])
    src.add_faces("Bob", [FaceRecord(face_chip(9), content_sha256="bob")], chip_format="jpeg")
    dst = GalleryStore(gallery_at)
    report = copy_gallery(src, dst)
    assert report.faces == 4 and report.converted == 0
    kept = sorted(dst.face_thumbnail(f.id) for n in ("Ann", "Bob") for f in dst.faces_of(n))
    assert kept == sorted(src.face_thumbnail(f.id) for n in ("Ann", "Bob") for f in src.faces_of(n))

    again = GalleryStore(str(tmp_path / "converted.db"))
    report = copy_gallery(src, again, chip_format="jpeg", block=2)
    assert report.faces == 4 and report.converted == 3  # Bob's chip was JPEG already
    faces = again.faces_of("Ann")
    assert [chip_format(again.face_thumbnail(f.id)) for f in faces] == ["jpeg"] * 3
    for face, src_id in zip(faces, ids, strict=True):
        diff = again.face_crop(face.id).astype(int) - src.face_crop(src_id)
        assert np.abs(diff).mean() < 2.0
    assert copy_gallery(src, again, chip_format="jpeg").skipped == 4  # the same photos
    for store in (src, dst, again):
        store.close()


def test_postgres_stores_images_without_a_compression_attempt(postgres_server) -> None:
    """Image columns are STORAGE EXTERNAL; a gallery made before is set when opened."""
    import psycopg

    url = postgres_server.new_database()
    GalleryStore(url).close()
    sql = (
        "SELECT c.relname || '.' || a.attname, a.attstorage FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid WHERE a.attname IN "
        "('crop_png', 'chip_png', 'snapshot_jpeg') AND c.relkind = 'r' ORDER BY 1"
    )
    with psycopg.connect(url, autocommit=True) as con:
        assert dict(con.execute(sql).fetchall()) == {
            "events.chip_png": "e",
            "events.snapshot_jpeg": "e",
            "faces.crop_png": "e",
            "unknown_faces.chip_png": "e",
        }
        con.execute("ALTER TABLE faces ALTER COLUMN crop_png SET STORAGE EXTENDED")  # as before
    store = GalleryStore(url)
    with psycopg.connect(url, autocommit=True) as con:
        assert dict(con.execute(sql).fetchall())["faces.crop_png"] == "e"
    ids = store.add_faces("Ann", [FaceRecord(face_chip(1))])
    assert chip_format(store.face_thumbnail(ids[0])) == "jpeg"
    store.close()


def test_cli_chip_format_is_recorded(
    tmp_path: Path, untrained_tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from skimage import data

    photos = tmp_path / "people" / "eileen"
    photos.mkdir(parents=True)
    Image.fromarray(np.ascontiguousarray(data.astronaut())).save(photos / "a.png")
    db, model = str(tmp_path / "g.db"), str(untrained_tiny_checkpoint)
    common = ("--db", db, "--model", model)
    assert main(["gallery", "build", str(photos.parent), *common, "--chip-format", "png"]) == 0
    flipped = tmp_path / "b.png"
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:, ::-1])).save(flipped)
    assert main(["gallery", "add", "eileen", str(flipped), *common]) == 0  # follows the gallery
    capsys.readouterr()
    assert main(["gallery", "info", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chip_format"] == "png"
    store = GalleryStore(db, create=False)
    chips = [store.face_thumbnail(f.id) for f in store.faces_of("eileen")]
    assert [chip_format(c) for c in chips] == ["png", "png"]
    assert Image.open(io.BytesIO(chips[0])).size == (200, 200)
    store.close()
    dst = str(tmp_path / "small.db")
    assert main(["gallery", "copy", db, dst, "--quiet", "--chip-format", "jpeg"]) == 0
    assert "2 chips stored as jpeg" in capsys.readouterr().out
    with GalleryStore(dst, create=False) as copied:
        assert {chip_format(copied.face_thumbnail(f.id)) for f in copied.faces_of("eileen")} == {
            "jpeg"
        }
    with pytest.raises(SystemExit):
        main(["gallery", "build", str(photos.parent), *common, "--chip-format", "gif"])


def test_postgres_user_who_may_not_alter_still_opens_and_writes(
    postgres_server, caplog: pytest.LogCaptureFixture
) -> None:
    """Switching the storage needs the tables' owner; anyone else opens the gallery as it is."""
    import logging
    import uuid

    import psycopg

    url = postgres_server.new_database()
    GalleryStore(url).close()
    role = f"clerk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("ALTER TABLE faces ALTER COLUMN crop_png SET STORAGE EXTENDED")  # as before
        con.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'clerk-password'")
        con.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
        )
        con.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    db = url.rsplit("/", 1)[1]
    clerk = f"postgresql://{role}:clerk-password@127.0.0.1:{postgres_server.port}/{db}"
    with caplog.at_level(logging.WARNING, logger="facemetric.gallery.migrate"):
        store = GalleryStore(clerk)
    assert "image columns keep their storage" in caplog.text and "clerk-password" not in caplog.text
    ids = store.add_faces("Ann", [FaceRecord(face_chip(1))])
    assert chip_format(store.face_thumbnail(ids[0])) == "jpeg"
    store.close()
