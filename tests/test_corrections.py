"""Corrections that stick: a face marked "not Eileen" is no longer named Eileen, her own photo
still is, and undoing the correction restores the answer (store + recognizer, API, CLI).

The untrained tiny model takes every face for everyone, which is exactly what a correction is
for: the mirrored astronaut photo is named Eileen until it is marked wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facemetric.cli import main
from facemetric.data.detect import create_detector
from facemetric.enrol.correct import correct_photo, undo_correction
from facemetric.gallery.corrections import CorrectionNotFoundError, CorrectionStore
from facemetric.gallery.store import GalleryStore
from facemetric.models import load_embedder
from facemetric.recognize.decision import CLOSER_TO_NEGATIVE, MATCH
from facemetric.recognize.recognizer import Recognizer
from facemetric.web.app import create_app
from webutil import TOKEN, astronaut, encode, web_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def mirrored() -> np.ndarray:
    return np.ascontiguousarray(astronaut()[:, ::-1])


@pytest.fixture
def recognizer(tmp_path: Path, untrained_tiny_checkpoint: Path) -> Recognizer:
    embedder = load_embedder(untrained_tiny_checkpoint, engine="torch")
    store = GalleryStore(tmp_path / "g.db")
    return Recognizer(embedder, store, create_detector("retinaface"))


def test_correction_changes_the_next_answer_and_undo_restores_it(recognizer: Recognizer) -> None:
    recognizer.enroll("Eileen", [astronaut()])
    (before,) = recognizer.recognize(mirrored())
    assert before.identity == "Eileen" and before.reason == MATCH

    done = correct_photo(recognizer, mirrored(), "wrong", "Eileen", source="test")
    assert done.kind == "wrong" and done.person == "Eileen" and done.face_id is not None
    assert done.similarity == pytest.approx(before.similarity, abs=1e-3)
    (after,) = recognizer.recognize(mirrored())
    assert after.identity is None and not after.is_match
    assert after.reason == CLOSER_TO_NEGATIVE and after.decision is not None
    assert after.decision.vetoed == ("Eileen",) and after.nearest == "Eileen"
    (own,) = recognizer.recognize(astronaut())  # her own photo is closer to her reference
    assert own.identity == "Eileen"

    store = CorrectionStore(recognizer.store)
    assert [c.id for c in store.list()] == [done.id] == [c.id for c in store.list("Eileen")]
    assert recognizer.store.faces_of("Eileen", "negative")[0].id == done.face_id
    assert recognizer.store.list_people()[0].face_count == 1  # negatives are not references

    assert undo_correction(recognizer, done.id).id == done.id
    (again,) = recognizer.recognize(mirrored())
    assert again.identity == "Eileen" and again.reason == MATCH
    assert store.list() == [] and recognizer.store.faces_of("Eileen", "negative") == []
    with pytest.raises(CorrectionNotFoundError, match=f"correction {done.id}"):
        store.undo(done.id)


def test_confirmed_answer_adds_a_reference(recognizer: Recognizer) -> None:
    recognizer.enroll("Eileen", [astronaut()])
    done = correct_photo(recognizer, mirrored(), "confirmed", "Eileen")
    assert recognizer.store.list_people()[0].face_count == 2
    (face,) = recognizer.recognize(mirrored())
    assert face.gallery_face_id == done.face_id and (face.top_k[0].best or 0) > 0.999
    undo_correction(recognizer, done.id)
    assert recognizer.store.list_people()[0].face_count == 1


def test_corrections_api(tmp_path: Path, untrained_tiny_checkpoint: Path) -> None:
    settings = web_settings(tmp_path, untrained_tiny_checkpoint)
    with TestClient(create_app(settings)) as client:
        photo = ("astronaut.png", encode(astronaut(), "PNG"), "image/png")
        r = client.post(
            "/api/people", data={"name": "Eileen"}, files=[("files", photo)], headers=AUTH
        )
        assert r.status_code == 201, r.text
        frame = ("frame.jpg", encode(mirrored()), "image/jpeg")

        def answer() -> dict:
            r = client.post("/api/identify", files={"file": frame})
            assert r.status_code == 200, r.text
            (face,) = r.json()["faces"]
            assert face["decision"]["threshold"] == pytest.approx(r.json()["threshold"], abs=1e-4)
            return face

        face = answer()
        assert face["identity"] == "Eileen" and face["reason"] == "match"
        form = {"person": "Eileen", "kind": "wrong", "box": ",".join(map(str, face["box"]))}
        assert client.post("/api/corrections", data=form, files={"file": frame}).status_code == 401
        bad = client.post(
            "/api/corrections", data={**form, "box": "1,2"}, files={"file": frame}, headers=AUTH
        )
        assert bad.status_code == 422 and "box" in bad.text
        nobody = client.post(
            "/api/corrections",
            data={**form, "person": "Nobody"},
            files={"file": frame},
            headers=AUTH,
        )
        assert nobody.status_code == 404
        r = client.post("/api/corrections", data=form, files={"file": frame}, headers=AUTH)
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["kind"] == "wrong" and made["person"] == "Eileen" and made["image_url"]

        face = answer()
        assert face["identity"] is None and face["reason"] == "closer_to_negative"
        listed = client.get("/api/corrections").json()
        assert [c["id"] for c in listed] == [made["id"]]
        assert client.get("/api/corrections", params={"person": "Nobody"}).json() == []

        assert client.delete(f"/api/corrections/{made['id']}").status_code == 401
        r = client.delete(f"/api/corrections/{made['id']}", headers=AUTH)
        assert r.status_code == 200 and r.json()["id"] == made["id"]
        assert answer()["identity"] == "Eileen"
        assert client.delete(f"/api/corrections/{made['id']}", headers=AUTH).status_code == 404
        assert client.get("/api/corrections").json() == []


def test_corrections_cli(
    tmp_path: Path, untrained_tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(astronaut()).save(a)
    Image.fromarray(mirrored()).save(b)
    common = ["--db", str(tmp_path / "g.db"), "--model", str(untrained_tiny_checkpoint)]

    def run(*argv: str) -> tuple[int, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out + err

    assert run("gallery", "add", "Eileen", str(a), *common)[0] == 0
    code, out = run("gallery", "correct", str(b), "--not", "Nobody", *common)
    assert code == 2 and "'Nobody' is not in the gallery" in out
    code, out = run("gallery", "correct", str(b), "--not", "Eileen", "--json", *common)
    assert code == 0, out
    made = json.loads(out)
    assert made["kind"] == "wrong" and made["source"] == str(b)
    code, out = run("identify", str(b), "--json", *common)
    (face,) = json.loads(out[: out.rindex("]") + 1])[0]["faces"]
    assert face["identity"] is None and face["reason"] == "closer_to_negative"
    code, out = run("gallery", "corrections", "--db", common[1], "--json")
    assert [c["id"] for c in json.loads(out)] == [made["id"]]
    code, out = run("gallery", "undo", str(made["id"]), "--db", common[1])
    assert code == 0 and f"undid correction {made['id']}" in out
    code, out = run("identify", str(b), "--json", *common)
    assert json.loads(out[: out.rindex("]") + 1])[0]["faces"][0]["identity"] == "Eileen"
    code, out = run("gallery", "undo", str(made["id"]), "--db", common[1])
    assert code == 2 and "unknown" in out


class VectorModel:
    """Stands in for a model whose embeddings are given (no pixels are embedded)."""

    def __init__(self) -> None:
        from facemetric.models import ModelSpec

        self.spec = ModelSpec(backbone="tiny", embedding_dim=4, input_size=16)
        self.threshold = 0.5
        self.meta: dict = {}
        self.checkpoint_path = Path("<vectors>")
        self.model_key = "vectors-test"


def test_corrections_store_on_each_backend(gallery_at: str) -> None:
    """Add, list, undo on SQLite and PostgreSQL; a follower sees the negative come and go."""
    from facemetric.gallery.live import LiveGallery
    from facemetric.gallery.records import FaceRecord

    model = VectorModel()
    store = GalleryStore(gallery_at)
    rng = np.random.default_rng(0)
    chip = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    store.add_faces("Ada", [chip], model.model_key, vectors=np.eye(4, dtype=np.float32)[:1])
    live = LiveGallery(store, model, compute_missing=False)  # type: ignore[arg-type]
    live.refresh()
    corrections = CorrectionStore(store)
    other = FaceRecord.from_crop(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    vec = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
    made = corrections.add("wrong", "Ada", other, model, vec, 0.93, "test", "look-alike")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="'Bob' is not in the gallery"):
        corrections.add("wrong", "Bob", other, model, vec)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="correction kind"):
        corrections.add("maybe", "Ada", other, model, vec)  # type: ignore[arg-type]
    assert live.refresh() and set(live.negatives()) == {"Ada"}
    np.testing.assert_allclose(live.negatives()["Ada"], vec[None])
    (listed,) = corrections.list()
    assert listed == corrections.get(made.id) and listed.note == "look-alike"
    assert listed.similarity == pytest.approx(0.93) and listed.person == "Ada"
    assert len(live) == 1  # a negative is not a reference
    corrections.undo(made.id)
    assert live.refresh() and live.negatives() == {}
    assert corrections.list() == [] and store.faces_of("Ada", None)[0].kind == "reference"
    with pytest.raises(CorrectionNotFoundError):
        corrections.get(made.id)
    store.close()
