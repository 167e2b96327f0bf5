"""Search indexes against a brute-force loop on tiny inputs: exact kinds give its answers, the
approximate ones (forced on small galleries by low thresholds) find its nearest face and always
return exact similarities; additions and removals in place; the kind chosen by size."""

from __future__ import annotations

import numpy as np
import pytest

from facemetric.errors import ConfigError
from facemetric.gallery import approximate
from facemetric.gallery.approximate import ApproximateIndex
from facemetric.gallery.index import (
    ExactIndex,
    available_indexes,
    create_index,
    planned_index,
)
from facemetric.gallery.scan import QUERY_BLOCK
from facemetric.gallery.slots import VectorSlots

KINDS = ["exact", "faiss", "auto", "hnsw", "ivf"]
APPROXIMATE = ["hnsw", "ivf"]


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def people(rng: np.random.Generator, n: int, d: int, per: int = 5, spread: float = 0.4):
    """``n`` faces of ``n // per`` people (unit vectors around each person's centre) and one
    new face of each of 40 of them: what a gallery and its probes look like."""
    centres = unit(rng, n // per, d)
    noise = spread / np.sqrt(d)
    faces = np.repeat(centres, per, axis=0) + noise * rng.normal(size=(n, d)).astype(np.float32)
    probes = centres[rng.choice(len(centres), 40, replace=False)]
    probes = probes + noise * rng.normal(size=probes.shape).astype(np.float32)
    norm = np.linalg.norm
    return faces / norm(faces, axis=1, keepdims=True), probes / norm(probes, axis=1, keepdims=True)


def brute_force(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims, rows = [], []
    for q in queries:
        scored = sorted(
            ((float(np.dot(q.astype(np.float64), g)), i) for i, g in enumerate(gallery)),
            key=lambda t: -t[0],
        )[:k]
        sims.append([s for s, _ in scored])
        rows.append([i for _, i in scored])
    return np.array(sims), np.array(rows)


def exhaustive(name: str, vectors: np.ndarray, ids: np.ndarray | None = None) -> object:
    """An approximate index whose FAISS part searches everything (every list, a beam as wide
    as the gallery): its answers must be the exact scan's."""
    ids = np.arange(len(vectors)) if ids is None else ids
    if name == "hnsw":
        params = {"M": 16, "efConstruction": 40, "efSearch": 512}
    elif name == "ivf":
        params = {"nlist": 4, "nprobe": 4, "codes": "Flat"}
    else:
        return create_index(name, vectors, ids)
    return ApproximateIndex(ids, vectors, name, approx_above=0, background=False, params=params)


def assert_exact_answers(index: object, vectors: np.ndarray, ids: np.ndarray, q: np.ndarray, k):
    """``index`` answers ``q`` as brute force over (ids, vectors) does (rows may swap only
    where two faces tie to within float32 rounding)."""
    sims, got = index.search(q, k)  # type: ignore[attr-defined]
    want_sims, _ = brute_force(vectors, q, k)
    assert sims.shape == got.shape == (len(q), min(k, len(ids))) and got.dtype == np.int64
    row_of = {int(i): r for r, i in enumerate(ids)}
    rows = np.vectorize(row_of.__getitem__)(got)
    np.testing.assert_allclose(
        np.einsum("qd,qkd->qk", q.astype(np.float64), vectors[rows].astype(np.float64)),
        want_sims,
        atol=1e-5,
    )
    np.testing.assert_allclose(sims, want_sims, atol=1e-5)
    assert all(len(set(r)) == len(r) for r in got.tolist())


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize(("n", "q", "k"), [(50, 1, 5), (200, 7, 10), (30, 3, 30), (300, 150, 4)])
def test_search_matches_brute_force(name: str, n: int, q: int, k: int) -> None:
    rng = np.random.default_rng(n + q + k)
    gallery, queries = unit(rng, n, 16), unit(rng, q, 16)
    ids = rng.choice(10 * n, n, replace=False)  # ids are not rows
    index = exhaustive(name, gallery, ids)
    assert len(index) == n  # type: ignore[arg-type]
    if name in APPROXIMATE and n >= approximate.MIN_APPROX_ENTRIES:
        assert index.kind == name  # type: ignore[attr-defined]
    assert_exact_answers(index, gallery, ids, queries, k)


@pytest.mark.parametrize("name", APPROXIMATE)
def test_approximate_finds_the_nearest_face_with_exact_similarities(name: str) -> None:
    """The default parameters for the size, on a gallery of people: recall@1 against the exact
    scan, and every similarity returned is the exact one of the face returned."""
    rng = np.random.default_rng(7)
    gallery, probes = people(rng, 2000, 32)
    ids = np.arange(10_000, 12_000)
    index = create_index(name, gallery, ids)
    assert index.kind == name and len(index) == 2000
    sims, got = index.search(probes, 10)
    _, exact_ids = create_index("exact", gallery, ids).search(probes, 10)
    assert (got[:, 0] == exact_ids[:, 0]).mean() >= 0.95
    np.testing.assert_allclose(
        sims, np.einsum("qd,qkd->qk", probes, gallery[got - 10_000]), atol=1e-5
    )
    assert (np.diff(sims, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("name", KINDS)
def test_adds_and_removes_in_place_equal_a_fresh_index(name: str) -> None:
    rng = np.random.default_rng(11)
    vectors = unit(rng, 400, 16)
    held = {int(i): v for i, v in zip(range(0, 800, 2), vectors, strict=True)}
    index = exhaustive(name, vectors, np.arange(0, 800, 2))
    next_id = 1001
    for step in range(6):
        new = unit(rng, 40, 16)
        new_ids = np.arange(next_id, next_id + 40)
        next_id += 40
        index.add(new_ids, new)  # type: ignore[attr-defined]
        held.update(zip(new_ids.tolist(), new, strict=True))
        gone = rng.choice(sorted(held), 50, replace=False)
        index.remove(np.concatenate([gone, [999_999]]))  # an id never held is ignored
        for i in gone.tolist():
            del held[i]
        if step % 2:  # an id held gets its new vector
            again = np.array(sorted(held)[:5])
            fresh = unit(rng, 5, 16)
            index.add(again, fresh)  # type: ignore[attr-defined]
            held.update(zip(again.tolist(), fresh, strict=True))
    ids = np.array(sorted(held))
    final = np.stack([held[i] for i in ids.tolist()])
    assert len(index) == len(ids)  # type: ignore[arg-type]
    queries = np.concatenate([unit(rng, 5, 16), final[:3]])
    assert_exact_answers(index, final, ids, queries, 10)
    _, got = index.search(queries, len(ids) + 5)  # type: ignore[attr-defined]
    assert set(got[0].tolist()) == set(ids.tolist())  # everything, and nothing removed


def test_slots_stay_dense_and_give_memory_back() -> None:
    rng = np.random.default_rng(3)
    slots = VectorSlots(8, np.arange(5000), unit(rng, 5000, 8))
    slots.remove(np.arange(0, 5000, 3))
    kept = [i for i in range(5000) if i % 3]
    assert sorted(slots.ids.tolist()) == kept and len(slots) == len(kept)
    assert (slots.rows(np.array(kept)) < len(slots)).all()
    assert slots.rows(np.array([0, 3])).tolist() == [-1, -1]
    before = slots.memory_bytes()
    slots.remove(np.arange(5000))
    assert len(slots) == 0 and slots.memory_bytes() < before / 2


def test_slots_against_a_dict_over_random_changes() -> None:
    rng = np.random.default_rng(12)
    slots, held = VectorSlots(4), {}
    for _ in range(300):
        if rng.random() < 0.6 or not held:
            ids = rng.choice(500, rng.integers(1, 30), replace=False)
            vectors = unit(rng, len(ids), 4)
            slots.add(ids, vectors)
            held.update(zip(ids.tolist(), vectors, strict=True))
        else:
            ids = rng.choice(600, rng.integers(1, 30), replace=False)
            removed = slots.remove(ids)
            assert sorted(removed.tolist()) == sorted(i for i in ids.tolist() if i in held)
            for i in removed.tolist():
                del held[i]
        assert len(slots) == len(held) and sorted(slots.ids.tolist()) == sorted(held)
    rows = slots.rows(np.arange(600))
    for i in range(600):
        if i in held:
            np.testing.assert_array_equal(slots.vectors[rows[i]], held[i])
        else:
            assert rows[i] == -1 and i not in slots


def test_auto_chooses_the_kind_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    gallery = unit(rng, 300, 16)
    index = ApproximateIndex(np.arange(300), gallery, "hnsw", approx_above=400, background=False)
    assert index.kind == "exact"
    index.add(np.arange(300, 500), unit(rng, 200, 16))
    assert index.kind == "hnsw" and index.describe()["efSearch"] > 0
    index.remove(np.arange(250, 500))  # 250 faces: above half the threshold, stays
    assert index.kind == "hnsw"
    index.remove(np.arange(100, 250))  # 100: below half: back to the exact scan
    assert index.kind == "exact" and len(index) == 100
    monkeypatch.setattr(approximate, "AUTO_APPROX_ABOVE", 200)
    auto = create_index("auto", gallery)
    auto.wait(30)  # type: ignore[attr-defined]  # auto builds in a background thread
    assert auto.kind == approximate.AUTO_METHOD == "ivf"
    assert create_index("auto", gallery[:100]).kind == "exact"


def test_background_build_replays_the_changes_made_meanwhile() -> None:
    rng = np.random.default_rng(6)
    vectors = unit(rng, 3000, 16)
    index = ApproximateIndex(
        np.arange(3000),
        vectors,
        "ivf",
        approx_above=1000,
        background=True,
        params={"nlist": 4, "nprobe": 4, "codes": "Flat"},
    )
    extra = unit(rng, 100, 16)
    index.add(np.arange(5000, 5100), extra)  # most likely while the build runs
    index.remove(np.arange(0, 3000, 2))
    index.wait(30)
    assert not index.building and index.kind == "ivf"
    ids = np.concatenate([np.arange(1, 3000, 2), np.arange(5000, 5100)])
    final = np.concatenate([vectors[1::2], extra])
    assert_exact_answers(index, final, ids, np.concatenate([unit(rng, 4, 16), extra[:2]]), 5)


def test_hnsw_rebuilds_once_many_faces_are_dead() -> None:
    rng = np.random.default_rng(8)
    index = ApproximateIndex(np.arange(1000), unit(rng, 1000, 16), "hnsw", 0, background=False)
    index.remove(np.arange(100))
    assert index.describe()["dead"] == 100
    index.remove(np.arange(100, 300))  # 300 of 1000 dead: past REBUILD_STALE, rebuilt
    assert index.describe()["dead"] == 0 and len(index) == 700
    _, got = index.search(unit(rng, 20, 16), 10)
    assert (got >= 300).all()


def test_k_larger_than_gallery_and_empty_gallery() -> None:
    rng = np.random.default_rng(2)
    gallery = unit(rng, 3, 8)
    for name in KINDS:
        sims, ids = create_index(name, gallery, [7, 8, 9]).search(unit(rng, 2, 8), 10)
        assert ids.shape == (2, 3) and sorted(ids[0].tolist()) == [7, 8, 9]
        assert (np.diff(sims, axis=1) <= 1e-6).all()
        empty = create_index(name, np.zeros((0, 8), np.float32))
        sims, ids = empty.search(unit(rng, 2, 8), 3)
        assert len(empty) == 0 and ids.shape == (2, 0)
        empty.add([4], gallery[:1])
        assert empty.search(gallery[0], 3)[1].tolist() == [[4]]


def test_bad_input_and_the_registry() -> None:
    rng = np.random.default_rng(3)
    index = ExactIndex(np.arange(10), unit(rng, 10, 8))
    sims, ids = index.search(index.slots.vectors[4], 1)  # a 1-D query is one query
    assert ids.tolist() == [[4]] and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError, match=r"queries.*\(N, 8\)"):
        index.search(unit(rng, 2, 9), 1)
    with pytest.raises(ConfigError, match="unknown back end 'annoy'"):
        create_index("annoy", unit(rng, 2, 8))
    with pytest.raises(ConfigError, match="same id is given twice"):
        index.add([11, 11], unit(rng, 2, 8))
    with pytest.raises(ConfigError, match="3 ids for 2 vectors"):
        create_index("exact", unit(rng, 2, 8), [1, 2, 3])
    assert set(KINDS) <= set(available_indexes())


def test_exact_and_faiss_agree_on_batches_over_a_block() -> None:
    rng = np.random.default_rng(1)
    gallery, queries = unit(rng, 1000, 32), unit(rng, QUERY_BLOCK * 2 + 5, 32)
    a = create_index("exact", gallery).search(queries, 8)
    b = create_index("faiss", gallery).search(queries, 8)
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)


def test_planned_index_and_describe() -> None:
    assert planned_index(5_000)["kind"] == "exact"
    big = planned_index(2_000_000)
    assert big["kind"] == approximate.AUTO_METHOD and big["entries"] == 2_000_000
    assert planned_index(2_000_000, "ivf")["nlist"] >= 1024
    assert planned_index(2_000_000, "hnsw")["efSearch"] >= 64
    rng = np.random.default_rng(4)
    index = create_index("ivf", unit(rng, 2000, 16))
    info = index.describe()
    assert info["kind"] == "ivf" and info["entries"] == 2000 and info["nprobe"] >= 1
    assert index.memory_bytes() > 2000 * 16 * 4


def test_live_gallery_follows_changes_into_the_approximate_index(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live gallery on an IVF index: another store's removals and additions reach it in
    place, and its status names the index in use and its size."""
    from pathlib import Path

    from facemetric.gallery.live import LiveGallery
    from facemetric.gallery.store import FaceRecord, GalleryStore

    class Embedder:  # deterministic, no torch: the first pixels of a chip
        model_key = "index-test"
        spec = type("Spec", (), {"alignment": "arcface", "input_size": 112, "embedding_dim": 8})()

        def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
            v = faces.reshape(len(faces), -1)[:, :8].astype(np.float32) + 1
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    def chips(seed: int, n: int) -> list[FaceRecord]:
        rng = np.random.default_rng(seed)
        return [FaceRecord(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)) for _ in range(n)]

    monkeypatch.setattr(approximate, "MIN_APPROX_ENTRIES", 8)
    db = str(Path(str(tmp_path)) / "g.db")
    embedder = Embedder()
    mine, other = GalleryStore(db), GalleryStore(db)
    ann = mine.add_faces("Ann", chips(1, 10), embedder)
    bob = mine.add_faces("Bob", chips(2, 10), embedder)
    live = LiveGallery(mine, embedder, index="ivf").current()
    assert live.status().index["kind"] == "ivf" and live.status().index["entries"] == 20
    other.remove_person("Ann")
    cy_records = chips(3, 2)
    cy = other.add_faces("Cy", cy_records, embedder)
    assert live.refresh()
    status = live.status().index
    assert status["kind"] == "ivf" and status["entries"] == 12
    _, found = live.search(embedder.embed(np.stack([r.chip for r in chips(1, 10)])), 12)
    assert not set(found.ravel().tolist()) & set(ann)  # a removed face never comes back
    sims, found = live.search(embedder.embed(np.stack([cy_records[0].chip])), 1)
    assert found[0, 0] == cy[0] and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert set(found.ravel().tolist()) <= set(bob) | set(cy)
    mine.close()
    other.close()
