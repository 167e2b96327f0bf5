"""Gallery store on real SQLite files: round trip, deletion, re-embedding, export, a killed writer,
readers during writes."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import shared_set
from facemetric.data.image import load_image
from facemetric.errors import GalleryError
from facemetric.gallery.store import FaceRecord, GalleryStore, model_key
from facemetric.models import ModelSpec, build_model, load_embedder, save_checkpoint
from facemetric.models.checkpoint import update_checkpoint


def orl_crops(person: int, n: int) -> list[np.ndarray]:
    """Real face crops (ORL, 92x112 greyscale) squared to 112x112 RGB."""
    folder = shared_set("orl") / f"s{person}"
    return [cv2.resize(load_image(folder / f"{i}.pgm"), (112, 112)) for i in range(1, n + 1)]


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def query(store: GalleryStore, sql: str) -> list[tuple]:
    """Rows of ``sql`` read through the store's own backend (SQLite or PostgreSQL)."""
    with store.backend.read() as con:
        return [tuple(r) for r in con.execute(sql).fetchall()]


def test_round_trip_remove_and_reopen(
    tmp_path: Path, gallery_at: str, untrained_tiny_checkpoint: Path
) -> None:
    sqlite_file = "://" not in gallery_at
    db = tmp_path / "sub" / "gallery.db" if sqlite_file else gallery_at
    embedder = load_embedder(untrained_tiny_checkpoint)
    store = GalleryStore(db)
    assert store.list_people() == [] and store.change_counter() >= 0
    assert store.set_chip_format("PNG") == "png"  # lossless chips: the same pixels come back
    start = store.change_counter()
    ann = store.add_person("Ann")
    assert ann.name == "Ann" and ann.face_count == 0 and ann.created
    with pytest.raises(GalleryError, match="'Ann' is already"):
        store.add_person("Ann")
    ann_crops, bob_crops = orl_crops(1, 3), orl_crops(2, 2)
    records = [
        FaceRecord(c, source=f"ann/{i}.jpg", box=(1, 2, 30, 40), landmarks=np.ones((5, 2)))
        for i, c in enumerate(ann_crops)
    ]
    ann_ids = store.add_faces("Ann", records, embedder)
    bob_ids = store.add_faces("Bob", [FaceRecord(c) for c in bob_crops], embedder)  # created
    assert len(ann_ids) == 3 and len(bob_ids) == 2 and store.change_counter() > start

    people = store.list_people()
    assert [(p.name, p.face_count) for p in people] == [("Ann", 3), ("Bob", 2)]
    faces = store.faces_of("Ann")
    assert [f.id for f in faces] == ann_ids and faces[0].source == "ann/0.jpg"
    assert faces[0].box == (1.0, 2.0, 30.0, 40.0) and np.array(faces[0].landmarks).shape == (5, 2)
    png = store.face_thumbnail(ann_ids[1])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), ann_crops[1])  # lossless
    assert np.array_equal(store.face_crop(bob_ids[0]), bob_crops[0])

    emb = store.embeddings(embedder)
    assert emb.names == ["Ann"] * 3 + ["Bob"] * 2 and list(emb.face_ids) == ann_ids + bob_ids
    expected = embedder.embed(np.stack(ann_crops + bob_crops))
    assert np.abs(emb.vectors - expected).max() < 1e-5
    store.close()

    # A second store object (as another process would) sees the same gallery.
    again = GalleryStore(db)
    assert [(p.name, p.face_count) for p in again.list_people()] == [("Ann", 3), ("Bob", 2)]
    assert again.remove_person("Ann") == 3
    assert [p.name for p in again.list_people()] == ["Bob"]
    with pytest.raises(GalleryError, match="'Ann' is not in the gallery"):
        again.remove_person("Ann")
    with pytest.raises(GalleryError, match="not in the gallery"):
        again.faces_of("Ann")
    with pytest.raises(GalleryError, match=f"face {ann_ids[0]}"):
        again.face_thumbnail(ann_ids[0])
    # Ann's faces, crops and embeddings are gone; Bob's are untouched.
    assert query(again, "SELECT COUNT(*) FROM faces") == [(2,)]
    assert query(again, "SELECT face_id FROM embeddings ORDER BY face_id") == [
        (i,) for i in bob_ids
    ]
    # Ids are never handed out twice: Ann's are not reused by the next faces.
    new_ids = again.add_faces("Cy", [FaceRecord(c) for c in orl_crops(3, 2)])
    assert min(new_ids) > max(ann_ids + bob_ids)
    again.remove_person("Cy")
    assert min(again.add_faces("Di", [FaceRecord(c) for c in orl_crops(4, 1)])) > max(new_ids)
    if sqlite_file:
        assert isinstance(db, Path)
        assert rows(db, "PRAGMA foreign_key_check") == []
        assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    again.close()


def test_user_mistakes_are_gallery_errors(
    tmp_path: Path, gallery_at: str, untrained_tiny_checkpoint: Path
) -> None:
    store = GalleryStore(gallery_at)
    embedder = load_embedder(untrained_tiny_checkpoint)
    with pytest.raises(GalleryError, match="no faces to add"):
        store.add_faces("Ann", [], embedder)
    for bad in ("", "  ", "a/b", "x\ny"):
        with pytest.raises(GalleryError, match="name"):
            store.add_person(bad)
    with pytest.raises(GalleryError, match="face #2"):
        store.add_faces(
            "Ann",
            [
                FaceRecord(np.zeros((112, 112, 3), np.uint8)),
                FaceRecord(np.zeros((112, 112), np.uint8)),
            ],
        )
    assert store.list_people() == []  # nothing half-added
    with pytest.raises(GalleryError, match="empty"):
        store.export(tmp_path / "out.npz", embedder)
    store.close()
    with pytest.raises(GalleryError, match="no gallery there"):
        GalleryStore(str(tmp_path / "missing.db"), create=False)


def test_unusable_sqlite_files_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(GalleryError, match="junk.db"):
        GalleryStore(junk)
    newer = tmp_path / "newer.db"
    GalleryStore(newer).close()
    with sqlite3.connect(newer) as con:
        con.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(GalleryError, match="schema 99 is newer"):
        GalleryStore(newer)


def test_reembed_after_a_model_change(
    tmp_path: Path, gallery_at: str, untrained_tiny_checkpoint: Path
) -> None:
    store = GalleryStore(gallery_at)
    old = load_embedder(untrained_tiny_checkpoint)
    crops = orl_crops(3, 2) + orl_crops(4, 2)
    ids = store.add_faces("C", [FaceRecord(c) for c in crops[:2]], old)
    ids += store.add_faces("D", [FaceRecord(c) for c in crops[2:]])  # embedded on demand
    stored = [store.face_crop(i) for i in ids]  # JPEG chips: close to the crops, not equal
    assert max(np.abs(s.astype(int) - c).mean() for s, c in zip(stored, crops, strict=True)) < 3
    assert store.model_keys() == {model_key(old): 2}

    import torch

    torch.manual_seed(123)
    spec = ModelSpec(backbone="tiny", embedding_dim=48, input_size=112)
    new_path = save_checkpoint(tmp_path / "new.pt", build_model(spec).eval())
    new = load_embedder(new_path)
    assert model_key(new) != model_key(old)
    assert store.reembed(new) == 4
    keys = store.model_keys()
    assert keys == {model_key(old): 2, model_key(new): 4}
    emb = store.embeddings(model_key(new))
    assert emb.vectors.shape == (4, 48)
    assert np.abs(emb.vectors - new.embed(np.stack(stored))).max() < 1e-5
    # The old model gets its missing embedding on demand, from the stored crop.
    assert store.embeddings(old).vectors.shape == (4, 32)
    assert store.reembed(old, missing_only=True) == 0

    # A new threshold rewrites the checkpoint but not the weights: same key, no re-embedding.
    update_checkpoint(new_path, threshold=0.42)
    assert model_key(load_embedder(new_path)) == model_key(new)
    # ONNX Runtime and PyTorch over the same weights share the key (and the embeddings).
    from facemetric.models.export import export_onnx

    export_onnx(new_path)
    assert model_key(load_embedder(new_path, engine="onnx")) == model_key(new)


def test_export_writes_npz_and_json(
    tmp_path: Path, gallery_at: str, untrained_tiny_checkpoint: Path
) -> None:
    store = GalleryStore(gallery_at)
    embedder = load_embedder(untrained_tiny_checkpoint)
    ids = store.add_faces("E", [FaceRecord(c, source="e.jpg") for c in orl_crops(5, 2)], embedder)
    out = store.export(tmp_path / "exp" / "gallery", None)  # one model stored: no need to name it
    assert out == tmp_path / "exp" / "gallery.npz"
    data = np.load(out)
    assert data["embeddings"].shape == (2, 32) and list(data["face_ids"]) == ids
    assert list(data["names"]) == ["E", "E"]
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["model_key"] == model_key(embedder) and meta["dim"] == 32 and meta["count"] == 2
    assert [f["id"] for f in meta["faces"]] == ids and meta["faces"][0]["source"] == "e.jpg"
    assert meta["people"][0]["name"] == "E"
    store.add_faces("F", [FaceRecord(orl_crops(6, 1)[0])], "other", vectors=np.ones((1, 8)))
    with pytest.raises(GalleryError, match="2 models"):  # a second model's rows
        store.export(tmp_path / "x.npz")
    store.close()


# ---- a writer killed mid-transaction, readers meanwhile -----------------------------------------
WRITER = r"""
import sys, time
import numpy as np
import types
from pathlib import Path
from facemetric.gallery import store as S

class Embedder:  # deterministic, no torch: the store is what is under test
    model_key = "k"
    spec = types.SimpleNamespace(alignment="arcface", input_size=112)
    def embed(self, faces, flip=False):
        v = faces.reshape(len(faces), -1)[:, :16].astype(np.float32) + 1
        return v / np.linalg.norm(v, axis=1, keepdims=True)

slow = S.insert_embeddings  # what add_faces writes new faces' embeddings with
def put(con, *a):
    time.sleep(0.3)  # a long transaction, so the kill lands inside one
    slow(con, *a)
S.insert_embeddings = put

store = S.GalleryStore(Path(sys.argv[1]))
K = int(sys.argv[2])
rng = np.random.default_rng(0)
for n in range(1000):
    crops = rng.integers(0, 255, (K, 112, 112, 3), dtype=np.uint8)
    print("begin", n, flush=True)
    store.add_faces(f"p{n:03d}", [S.FaceRecord(c) for c in crops], Embedder())
    print("done", n, flush=True)
"""


def test_killed_writer_leaves_a_consistent_store_and_readers_never_see_half(
    tmp_path: Path,
) -> None:
    db, k = tmp_path / "g.db", 30
    GalleryStore(db).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(k)], stdout=subprocess.PIPE, text=True
    )
    reader = GalleryStore(db)
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:  # another thread of this process, through the same store object
        try:
            while not stop.is_set():
                counts = [p.face_count for p in reader.list_people()]
                seen.extend(counts)
                emb = reader.embeddings("k")
                assert len(emb.face_ids) % k == 0
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    done = -1
    assert proc.stdout is not None
    for line in proc.stdout:
        word, n = line.split()
        if word == "done":
            done = int(n)
        if word == "begin" and int(n) == 3:
            time.sleep(0.15)  # about half-way through the 4th transaction
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    stop.set()
    thread.join(timeout=30)
    assert not errors, errors
    assert seen and all(c == k for c in seen)  # a person is never seen half-added

    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    store = GalleryStore(db)
    people = store.list_people()
    assert done >= 2 and len(people) in (done + 1, done + 2)
    assert all(p.face_count == k for p in people)
    assert rows(db, "SELECT COUNT(*) FROM embeddings")[0][0] == k * len(people)
    assert rows(db, "PRAGMA foreign_key_check") == []
    store.add_faces("after", [FaceRecord(np.zeros((112, 112, 3), np.uint8))])  # still writable
    reader.close()
    store.close()
