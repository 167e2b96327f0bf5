"""Unknown faces: incremental grouping against batch average linkage, the pool on both backends
(keep, name, merge, split, dismiss, retention), the keeper hooked into identify on real photos,
the CLI and the API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import shared_set
from facemetric.cli import main
from facemetric.gallery.records import CHIP_SIZE, decode_png
from facemetric.gallery.store import GalleryStore
from facemetric.unknown import Grouper, UnknownKeeper, UnknownStore
from facemetric.web.app import create_app
from webutil import TOKEN, astronaut, encode, web_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEY = "test-model"


def blobs(people: int, each: int, dim: int = 16, spread: float = 0.07, seed: int = 0):
    """Unit vectors around ``people`` random centres, shuffled: (vectors, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, each, axis=0) + spread * rng.normal(size=(people * each, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.repeat(np.arange(people), each)
    order = rng.permutation(len(x))
    return x[order].astype(np.float32), labels[order]


def batch_average(x: np.ndarray, threshold: float) -> np.ndarray:
    """Brute-force average linkage: merge the closest pair of groups while it reaches the
    threshold (mean pairwise similarity)."""
    groups = [[i] for i in range(len(x))]
    sims = x @ x.T
    while len(groups) > 1:
        best, pair = -2.0, (0, 0)
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                link = sims[np.ix_(groups[a], groups[b])].mean()
                if link > best:
                    best, pair = link, (a, b)
        if best < threshold:
            break
        a, b = pair
        groups[a] += groups.pop(b)
    labels = np.empty(len(x), np.int64)
    for g, members in enumerate(groups):
        labels[members] = g
    return labels


def partition(labels) -> set[frozenset[int]]:  # type: ignore[no-untyped-def]
    out: dict[int, set[int]] = {}
    for i, g in enumerate(labels):
        out.setdefault(int(g), set()).add(i)
    return {frozenset(v) for v in out.values()}


def chip(seed: int) -> np.ndarray:
    """A real face chip (scikit-image's astronaut), shifted so chips differ."""
    from PIL import Image

    img = Image.fromarray(astronaut()).resize((CHIP_SIZE, CHIP_SIZE))
    return np.roll(np.asarray(img), seed, axis=1)


# ---- grouping ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incremental_grouping_equals_brute_force_batch(seed: int) -> None:
    x, truth = blobs(5, 6, seed=seed)
    grouper = Grouper(0.7)
    for i, v in enumerate(x):
        grouper.add(i, v)
    got = partition(grouper.labels(range(len(x))))
    assert got == partition(batch_average(x.astype(np.float64), 0.7))
    assert got == partition(truth)


def test_after_every_face_no_two_groups_reach_the_threshold() -> None:
    x, _ = blobs(8, 5, spread=0.3, seed=3)
    grouper = Grouper(0.6)
    for i, v in enumerate(x):
        grouper.add(i, v)
        groups = list(grouper.groups.values())
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                link = (x[list(groups[a])] @ x[list(groups[b])].T).mean()
                assert link < 0.6 + 1e-9


def test_frozen_group_is_joined_but_never_merged() -> None:
    x, _ = blobs(1, 4, spread=0.05)
    grouper = Grouper(0.7)
    grouper.add(1, x[0])
    grouper.add(2, x[1], group=99, merge=False)  # a group the user split off
    grouper.freeze(99)
    p = grouper.add(3, x[2])
    assert not any(99 in m for m in p.merges)
    assert len(grouper.groups) == 2


# ---- the pool on both backends ----------------------------------------------------------------
def kept_pool(location: str, vectors: np.ndarray, **kw) -> tuple[GalleryStore, UnknownKeeper]:  # type: ignore[no-untyped-def]
    store = GalleryStore(location)
    keeper = UnknownKeeper(store, KEY, threshold=0.7, interval=0.0, **kw)
    for i, v in enumerate(vectors):
        keeper.keep_chip(chip(i), v, source=f"photo-{i}.jpg")
    return store, keeper


def no_orphans(store: GalleryStore) -> None:
    with store.backend.read() as con:
        empty = con.execute(
            "SELECT COUNT(*) FROM unknown_groups g WHERE NOT EXISTS "
            "(SELECT 1 FROM unknown_faces f WHERE f.group_id = g.id)"
        ).fetchone()[0]
        loose = con.execute(
            "SELECT COUNT(*) FROM unknown_faces f WHERE f.group_id IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM unknown_groups g WHERE g.id = f.group_id)"
        ).fetchone()[0]
    assert (int(empty), int(loose)) == (0, 0)


def test_kept_faces_are_grouped_and_named_into_the_gallery(gallery_at: str) -> None:
    x, truth = blobs(3, 4, seed=5)
    store, keeper = kept_pool(gallery_at, x)
    pool = UnknownStore(store)
    groups = pool.groups()
    assert [g.size for g in groups] == [4, 4, 4]
    by_face = keeper.face_groups()
    ids = sorted(by_face)
    assert partition([by_face[i] for i in ids]) == partition(truth)
    face = groups[0].faces[0]
    assert face.source and face.source.startswith("photo-") and face.model_key == KEY
    assert decode_png(pool.face_image(face.id)).shape == (CHIP_SIZE, CHIP_SIZE, 3)
    no_orphans(store)

    named = pool.name(groups[0].id, "Ada Lovelace")
    assert len(named.added) == 4 and named.removed == 4
    assert store.get_person("Ada Lovelace").face_count == 4
    emb = store.embeddings(KEY)  # the stored embeddings went with them
    assert len(emb.vectors) == 4 and set(emb.names) == {"Ada Lovelace"}
    assert pool.count() == 8 and len(pool.groups()) == 2
    no_orphans(store)
    # the keeper sees that another hand changed the pool, and goes on from there
    assert len(keeper.face_groups()) == 8
    store.close()


def test_merge_split_dismiss(gallery_at: str) -> None:
    x, _ = blobs(3, 3, seed=7)
    store, keeper = kept_pool(gallery_at, x)
    pool = UnknownStore(store)
    a, b, c = pool.groups()
    merged = pool.merge(a.id, [b.id])
    assert merged.size == 6 and all(f.pinned for f in merged.faces)
    assert {g.id for g in pool.groups()} == {a.id, c.id}

    face, source = merged.faces[0].id, merged.faces[0].source or ""
    alone = pool.split(a.id, face)
    assert alone.size == 1 and alone.faces[0].id == face
    assert pool.group(a.id).size == 5
    # a new face like the split one joins one of them but does not undo the split
    like = x[int(source.removeprefix("photo-").removesuffix(".jpg"))]
    keeper.keep_chip(chip(50), like, source="again.jpg")
    assert pool.group(alone.id).size + pool.group(a.id).size == 7
    assert len(pool.groups()) == 3

    pool.dismiss(c.id)
    assert c.id not in {g.id for g in pool.groups()}
    assert c.id in {g.id for g in pool.groups(("open", "dismissed"))}
    with pytest.raises(Exception, match="does not exist"):
        pool.merge(a.id, [123456])
    with pytest.raises(Exception, match="not in unknown group"):
        pool.split(c.id, face)
    no_orphans(store)
    store.close()


def test_retention_prunes_rows_and_groups(gallery_at: str) -> None:
    x, _ = blobs(4, 3, seed=9)
    store, keeper = kept_pool(gallery_at, x, max_faces=5)
    pool = UnknownStore(store)
    assert pool.count() == 5  # the oldest went as new ones came
    kept = sorted(keeper.face_groups())
    with store.backend.read() as con:
        sources = [r[0] for r in con.execute("SELECT source FROM unknown_faces ORDER BY id")]
    assert sources == [f"photo-{i}.jpg" for i in range(7, 12)]
    no_orphans(store)
    import time

    assert pool.prune(max_days=1.0, max_faces=None, now=time.time() + 2 * 86_400) == 5
    assert pool.count() == 0 and pool.groups(("open", "dismissed")) == []
    no_orphans(store)
    assert len(kept) == 5 and keeper.face_groups() == {}
    store.close()


# ---- real photos through identify --keep-unknown ------------------------------------------------
@pytest.fixture(scope="module")
def wild_people() -> list[Path]:
    wild = shared_set("celeba-wild")
    return sorted(p for p in wild.iterdir() if p.is_dir() and len(list(p.iterdir())) >= 8)[:3]


def test_identify_keeps_unknown_faces_of_real_photos_and_naming_enrols(
    tmp_path: Path, wild_people: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "gallery.db")
    known, *strangers = wild_people
    photos = sorted(known.iterdir())[:3]
    assert main(["gallery", "add", "Known", *map(str, photos), "--db", db, "--model", "dlib"]) == 0
    images = [p for s in strangers for p in sorted(s.iterdir())[:6]]
    capsys.readouterr()
    code = main(["identify", *map(str, images), "--db", db, "--model", "dlib", "--keep-unknown",
                 "--json"])  # fmt: skip
    assert code == 0
    answers = json.loads(capsys.readouterr().out)
    unmatched = sum(1 for a in answers for f in a["faces"] if not f["is_match"])
    store = GalleryStore(db)
    pool = UnknownStore(store)
    assert pool.count() == unmatched > 0  # every face that matched nobody, and only those
    # groups never mix the two strangers; each has a group of several faces
    owner = {str(p): p.parent.name for p in images}
    with store.backend.read() as con:
        rows = con.execute("SELECT group_id, source FROM unknown_faces").fetchall()
    people_in: dict[int, set[str]] = {}
    for gid, source in rows:
        people_in.setdefault(int(gid), set()).add(owner[source])
    assert all(len(v) == 1 for v in people_in.values()), people_in
    sizes = {s.name: max((len([r for r in rows if r[0] == g]) for g, v in people_in.items()
                          if v == {s.name}), default=0) for s in strangers}  # fmt: skip
    assert min(sizes.values()) >= 2, sizes

    assert main(["unknown", "list", "--db", db, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["size"] == max(g["size"] for g in listed)
    group = listed[0]["id"]
    assert main(["unknown", "name", str(group), "Stranger One", "--db", db]) == 0
    assert "enrolled as Stranger One" in capsys.readouterr().out
    assert store.get_person("Stranger One").face_count == listed[0]["size"]
    # the named stranger is now recognised
    first = next(src for gid, src in rows if int(gid) == group)
    assert main(["identify", first, "--db", db, "--model", "dlib", "--json"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["faces"][0]["identity"] == "Stranger One"
    assert main(["unknown", "dismiss", str(listed[1]["id"]), "--db", db]) == 0
    assert main(["unknown", "name", "999999", "X", "--db", db]) == 2
    assert "does not exist" in capsys.readouterr().err
    store.close()


# ---- the API ----------------------------------------------------------------------------------
def test_api_lists_names_merges_splits_dismisses(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    settings = web_settings(tmp_path, untrained_tiny_checkpoint, keep_unknown=True)
    x, _ = blobs(3, 3, seed=11)
    store, _keeper = kept_pool(settings.db or "", x)
    store.close()
    with TestClient(create_app(settings)) as client:
        body = client.get("/api/unknown").json()
        assert body["keeping"] is True and body["total_faces"] == 9
        # a face nobody matches is kept once: the same stranger again within the interval is not
        for _ in range(2):
            r = client.post("/api/identify", files={"file": ("a.png", encode(astronaut(), "PNG"))})
            assert r.status_code == 200 and r.json()["faces"][0]["is_match"] is False
        body = client.get("/api/unknown").json()
        assert body["total_faces"] == 10 and body["groups"][-1]["faces"][0]["source"] == "web"
        client.post(f"/api/unknown/{body['groups'][-1]['id']}/dismiss", headers=AUTH)
        body = client.get("/api/unknown").json()
        a, b, c = body["groups"]
        face = a["faces"][0]
        img = client.get(face["image_url"])
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
        assert img.content.startswith(b"\xff\xd8\xff")  # kept as the gallery keeps chips
        assert client.get("/api/unknown/faces/999999/image").status_code == 404
        assert client.post(f"/api/unknown/{a['id']}/name", json={"name": "Ada"}).status_code == 401
        r = client.post(f"/api/unknown/{a['id']}/merge", json={"others": [b["id"]]}, headers=AUTH)
        assert r.status_code == 200 and r.json()["size"] == 6
        r = client.post(f"/api/unknown/{a['id']}/split", json={"face_id": face["id"]}, headers=AUTH)
        assert r.status_code == 201 and r.json()["size"] == 1
        r = client.post(f"/api/unknown/{c['id']}/dismiss", headers=AUTH)
        assert r.status_code == 200 and r.json()["status"] == "dismissed"
        r = client.post(f"/api/unknown/{a['id']}/name", json={"name": "Ada"}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["added"] == 5 and r.json()["face_count"] == 5
        assert [p["name"] for p in client.get("/api/people").json()] == ["Ada"]
        assert client.post("/api/unknown/424242/dismiss", headers=AUTH).status_code == 404
        r = client.post(f"/api/unknown/{c['id']}/name", json={"name": " "}, headers=AUTH)
        assert r.status_code == 422
        assert client.get("/unknown").status_code == 200


def test_two_keepers_share_one_pool(gallery_at: str) -> None:
    """Two servers on one database: each sees what the other kept before it writes."""
    x, _ = blobs(2, 4, seed=13)
    store_a, store_b = GalleryStore(gallery_at), GalleryStore(gallery_at)
    a = UnknownKeeper(store_a, KEY, threshold=0.7, interval=0.0)
    b = UnknownKeeper(store_b, KEY, threshold=0.7, interval=0.0)
    for i, v in enumerate(x):
        (a if i % 2 else b).keep_chip(chip(i), v, source=f"photo-{i}.jpg")
    assert a.face_groups() == b.face_groups()
    pool = UnknownStore(store_a)
    assert sorted(g.size for g in pool.groups()) == [4, 4]
    no_orphans(store_a)
    store_a.close()
    store_b.close()


def test_identify_keep_unknown_starts_from_an_empty_gallery(
    tmp_path: Path, untrained_tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    db = tmp_path / "gallery.db"
    GalleryStore(db).close()
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut()).save(photo)
    model = ["--model", str(untrained_tiny_checkpoint)]
    assert main(["identify", str(photo), "--db", str(db), *model]) == 2  # empty: a mistake
    assert "gallery is empty" in capsys.readouterr().err
    code = main(["identify", str(photo), "--db", str(db), *model, "--keep-unknown"])
    assert code == 0
    assert main(["unknown", "list", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "1 group(s), 1 unknown face(s)" in out and "astronaut.png" in out
    assert main(["unknown", "prune", "--db", str(db)]) == 2
    assert main(["unknown", "prune", "--max-faces", "0", "--db", str(db)]) == 2
    assert "--max-faces: must be at least 1" in capsys.readouterr().err
    assert main(["identify", str(photo), "--known", str(tmp_path), *model, "--keep-unknown"]) == 2
    assert "use it with --db" in capsys.readouterr().err


def test_live_stream_keeps_a_stranger_once_per_interval(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    from webutil import frame_640x480

    settings = web_settings(tmp_path, untrained_tiny_checkpoint, keep_unknown=True)
    frame = encode(frame_640x480(astronaut()), quality=80)
    with TestClient(create_app(settings)) as client, client.websocket_connect("/ws/stream") as ws:
        assert ws.receive_json()["type"] == "hello"
        for _ in range(5):  # five frames of the same stranger
            ws.send_bytes(frame)
            answer = ws.receive_json()
            assert answer["type"] == "result" and answer["faces"][0]["is_match"] is False
        body = client.get("/api/unknown").json()
        face = body["groups"][0]["faces"][0]
        assert body["total_faces"] == 1 and face["source"] == "camera:webcam"  # a camera now


def test_repair_stays_bounded_next_to_a_large_group() -> None:
    x, _ = blobs(1, 40, spread=0.03, seed=17)
    grouper = Grouper(0.7, repair_limit=10)
    for i, v in enumerate(x):
        grouper.add(i, v)
    assert [len(m) for m in grouper.groups.values()] == [40]
