"""Enrolment quality checks and the gallery audit: the figures on tiny inputs, then real photos
(a blurred copy, a tiny face, a profile, another person's photo in a folder; a planted duplicate
and a planted wrong person found by ``gallery check``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import shared_set
from facemetric.cli import main
from facemetric.data.image import load_image
from facemetric.data.quality import QualityFloors, face_quality, pose, problems, sharpness
from facemetric.enrol.screen import QualityPolicy, parse_floors, screen_records
from facemetric.errors import ConfigError

A, B, C, D = "person_07201", "person_07205", "person_07207", "person_07209"
FRONTAL = np.array([[70, 86], [130, 86], [100, 110], [75, 136], [125, 136]], np.float64)


# ---- the figures, no photos needed ---------------------------------------------------------------
def test_sharpness_falls_with_blur_and_ignores_contrast() -> None:
    rng = np.random.default_rng(0)
    chip = (rng.random((200, 200, 3)) * 255).astype(np.uint8)
    chip = cv2.GaussianBlur(chip, (0, 0), 1.0)
    sharp = sharpness(chip)
    assert sharpness(cv2.GaussianBlur(chip, (0, 0), 3.0)) < sharp / 4
    dim = (chip.astype(np.float32) * 0.5 + 40).astype(np.uint8)
    assert sharpness(dim) == pytest.approx(sharp, rel=0.1)
    assert sharpness(np.full((200, 200, 3), 7, np.uint8)) == 0.0


def test_pose_from_landmarks() -> None:
    yaw, roll = pose(FRONTAL)
    assert abs(yaw) < 1e-6 and abs(roll) < 1e-6
    turned = FRONTAL.copy()
    turned[2, 0] += 0.6 * 60  # nose moved by its depth: tan(yaw) = 1
    assert pose(turned)[0] == pytest.approx(45.0, abs=0.1)
    tilt = np.radians(20)
    rot = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    assert pose(FRONTAL @ rot.T)[1] == pytest.approx(20.0, abs=0.1)


def test_problems_name_each_floor() -> None:
    floors = QualityFloors(min_consistency=0.9)
    good = {"eye_px": 40, "sharpness": 1.0, "yaw": 5, "score": 0.99, "consistency": 0.95}
    assert problems(good, floors) == []
    bad = {"eye_px": 9, "sharpness": 0.05, "yaw": -60, "score": 0.5, "consistency": 0.8}
    why = problems(bad, floors)
    assert [w.split(" (")[0] for w in why] == [
        "face too small",
        "blurred",
        "turned away",
        "unclear face",
        "unlike the person's other photos",
    ]
    assert problems(bad, QualityFloors(0, 0, 0, 0, 0)) == []  # 0 turns each off


def test_problems_say_the_rule_as_applied_and_never_show_the_figure_equal_to_it() -> None:
    """Issue 29: "16 px between the eyes, floor 16" and "yaw 45, limit 45" read as passing."""
    floors = QualityFloors(min_eye_px=16, max_yaw=45, min_consistency=0.9)
    close = {"eye_px": 15.6, "sharpness": 1.0, "yaw": 45.3, "score": 0.99, "consistency": 0.8996}
    small, turned, unlike = problems(close, floors)
    assert small == "face too small (at least 16 px between the eyes, got 15.6)"
    assert turned == "turned away (yaw 45.3°, above the 45° limit)"
    assert (
        unlike == "unlike the person's other photos (similarity to them at least 0.9, got 0.8996)"
    )
    far = problems({"eye_px": 9.2, "yaw": -60.0}, floors)
    assert far == ["face too small (at least 16 px between the eyes, got 9)",
                   "turned away (yaw 60°, above the 45° limit)"]  # fmt: skip


def test_floors_parse_and_check() -> None:
    assert parse_floors(["min_eye_px=24", "max-yaw=30"]).min_eye_px == 24.0
    with pytest.raises(ConfigError, match="min_eye_px"):
        parse_floors(["eyes=3"])
    with pytest.raises(ConfigError, match="not a number"):
        parse_floors(["min_eye_px=big"])
    with pytest.raises(ConfigError, match=">= 0"):
        QualityFloors(min_sharpness=-1)
    with pytest.raises(ConfigError, match="refuse"):
        QualityPolicy(mode="maybe")


def test_consistency_refuses_the_odd_one_only_with_two_voters() -> None:
    chip = np.zeros((200, 200, 3), np.uint8)
    from facemetric.gallery.records import FaceRecord

    recs = [FaceRecord(chip, source=s, quality={"eye_px": 40.0, "sharpness": 1.0}) for s in "abcd"]
    e = np.eye(4, dtype=np.float32)
    same = np.array([1, 0, 0, 0], np.float32)
    vecs = np.stack([same, same, same, e[1]])
    out = screen_records(recs, vecs, floors=QualityFloors(min_consistency=0.5))
    assert out.accepted == [True, True, True, False]
    assert "unlike" in out.refused()["d"]
    assert out.records[3].quality is not None and out.records[3].quality["consistency"] == 0.0
    two = screen_records(recs[:2], np.stack([same, e[1]]), floors=QualityFloors(0, 0, 0, 0, 0.5))
    assert two.accepted == [True, True] and set(two.flagged()) == {"a", "b"}
    flag = screen_records(
        recs, vecs, floors=QualityFloors(min_consistency=0.5), allow_low_quality=True
    )
    assert all(flag.accepted) and "d" in flag.flagged()


# ---- real photos --------------------------------------------------------------------------------
def wild(person: str) -> list[Path]:
    return sorted((shared_set("celeba-wild") / person).glob("*.jpg"))


def tiny_copy(image: np.ndarray, factor: float = 0.2) -> np.ndarray:
    """The photo shrunk by ``factor`` onto a grey canvas of its size: the same face, tiny."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    canvas = np.full_like(image, 128)
    canvas[: small.shape[0], : small.shape[1]] = small
    return canvas


@pytest.fixture(scope="module")
def parts() -> tuple[object, object]:
    shared_set("celeba-wild")
    from facemetric.data.detect import create_detector
    from facemetric.models import load_embedder

    return load_embedder("dlib"), create_detector("retinaface")


def recognizer(parts: tuple[object, object], db: Path) -> object:
    from facemetric.gallery.store import GalleryStore
    from facemetric.recognize.recognizer import Recognizer

    embedder, detector = parts
    return Recognizer(embedder, GalleryStore(db), detector)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A's folder: 3 good photos, a blurred copy, a tiny copy, a profile and B's photo."""
    a, b = wild(A), wild(B)
    root = tmp_path_factory.mktemp("people")
    out = root / A
    out.mkdir()
    for p in a[:3]:
        (out / p.name).write_bytes(p.read_bytes())
    Image.fromarray(cv2.GaussianBlur(load_image(a[3]), (0, 0), 5.0)).save(out / "blurred.png")
    Image.fromarray(tiny_copy(load_image(a[4]))).save(out / "tiny.png")
    profile = shared_set("cfp") / "001" / "profile_01.jpg"
    (out / "profile.jpg").write_bytes(profile.read_bytes())
    (out / "someone-else.jpg").write_bytes(b[0].read_bytes())
    return root


def test_enrolment_refuses_bad_photos_with_reasons(
    parts: tuple[object, object], folder: Path, tmp_path: Path
) -> None:
    from facemetric.enrol.build import add_photos

    rec = recognizer(parts, tmp_path / "g.db")
    report = add_photos(rec, A, [folder / A])  # type: ignore[arg-type]
    why = {Path(k).name: v for k, v in report.skipped.items()}
    assert report.added == {A: 3}, why
    assert "blurred" in why["blurred.png"]
    assert "too small" in why["tiny.png"]
    assert "turned away" in why["profile.jpg"]
    assert "unlike the person's other photos" in why["someone-else.jpg"]
    assert all(v.startswith("low quality: ") for v in why.values())
    faces = rec.store.faces_of(A)  # type: ignore[attr-defined]
    q = faces[0].quality
    assert {"eye_px", "sharpness", "yaw", "roll", "score", "consistency"} <= set(q)
    assert q["consistency"] > 0.9 and "flags" not in q


def test_cli_refuses_or_flags(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "g.db")
    assert main(["gallery", "build", str(folder), "--db", db, "--model", "dlib"]) == 0
    out = capsys.readouterr().out
    assert "added 3 faces of 1 people" in out
    assert "tiny.png: low quality: face too small" in out
    assert "enrol them anyway with --allow-low-quality" in out
    db2 = str(tmp_path / "g2.db")
    args = ["gallery", "add", A, str(folder / A), "--db", db2, "--model", "dlib"]
    assert main([*args, "--allow-low-quality"]) == 0
    out = capsys.readouterr().out
    assert "added 7 faces" in out and "flagged" in out and "blurred.png: blurred" in out
    tiny = ["gallery", "add", A, str(folder / A / "tiny.png"), "--db", str(tmp_path / "g3.db")]
    assert main([*tiny, "--model", "dlib", "--quality-floor", "min_eye_px=0"]) == 0
    assert "added 1 faces" in capsys.readouterr().out
    assert main([*args, "--quality-floor", "eyes=1"]) == 2
    assert "--quality-floor" in capsys.readouterr().err


def test_figures_of_real_photos(parts: tuple[object, object]) -> None:
    from facemetric.data.align import align_face
    from facemetric.gallery.records import CHIP_SIZE, CHIP_TEMPLATE

    _, detector = parts
    image = load_image(wild(A)[0])
    det = max(detector.detect(image), key=lambda d: d.area)  # type: ignore[attr-defined]
    chip = align_face(image, det.landmarks, CHIP_SIZE, CHIP_TEMPLATE)
    figures = face_quality(chip, det.landmarks, det.box, det.score)
    assert figures["eye_px"] > 30 and figures["sharpness"] > 0.5 and abs(figures["yaw"]) < 20
    blurred = face_quality(cv2.GaussianBlur(chip, (0, 0), 3.0))
    assert blurred["sharpness"] < figures["sharpness"] / 3


def test_gallery_check_finds_planted_duplicate_and_wrong_person(
    parts: tuple[object, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facemetric.enrol.build import add_photos
    from facemetric.gallery.check import CheckOptions, check_gallery

    db = tmp_path / "g.db"
    rec = recognizer(parts, db)
    off = QualityPolicy(mode="off")
    for person in (A, B, C):
        add_photos(rec, person, wild(person)[:3], quality=off)  # type: ignore[arg-type]
    store = rec.store  # type: ignore[attr-defined]
    threshold = float(rec.threshold)  # type: ignore[attr-defined]
    clean = check_gallery(store, rec.embedder, CheckOptions(threshold))  # type: ignore[attr-defined]
    assert clean.clean, [f.message for f in clean.findings]
    assert main(["gallery", "check", "--db", str(db), "--model", "dlib"]) == 0
    assert "clean" in capsys.readouterr().out

    add_photos(rec, C, [wild(B)[0]], quality=off)  # type: ignore[arg-type]  # B's photo as C
    add_photos(rec, A, [wild(D)[0]], quality=off)  # type: ignore[arg-type]  # D's photo in A
    report = check_gallery(store, rec.embedder, CheckOptions(threshold))  # type: ignore[attr-defined]
    kinds = {(f.kind, tuple(f.people)) for f in report.findings}
    assert ("duplicate", (B, C)) in kinds
    assert ("outlier", (A,)) in kinds
    wrong = [f for f in report.findings if f.kind == "outlier" and f.people == [A]]
    assert D in wrong[0].message or wild(D)[0].name in wrong[0].message

    # the real console script: exit status 1 for findings, JSON on stdout
    console = Path(sys.executable).with_name("facemetric")
    done = subprocess.run(
        [str(console), "gallery", "check", "--db", str(db), "--model", "dlib", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["clean"] is False and doc["counts"]["duplicate"] >= 1
    assert doc["counts"]["outlier"] >= 1


def test_api_enrol_and_preview_answer_reasons(folder: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from facemetric.web.app import create_app
    from webutil import TOKEN, web_settings

    names = [p.name for p in wild(A)[:3]] + ["blurred.png", "someone-else.jpg"]
    files = [("files", (n, (folder / A / n).read_bytes(), "image/jpeg")) for n in names]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(web_settings(tmp_path, Path("dlib")))) as c:
        r = c.post("/api/enroll/preview", data={"name": A}, files=files)
        assert r.status_code == 200, r.text
        photos = {p["filename"]: p for p in r.json()["photos"]}
        assert (
            photos["blurred.png"]["refused"] and "blurred" in photos["blurred.png"]["problems"][0]
        )
        assert photos["someone-else.jpg"]["refused"]
        assert not photos[names[0]]["refused"] and photos[names[0]]["quality"]["eye_px"] > 20
        r = c.post("/api/people", data={"name": A}, files=files, headers=auth)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["added"] == 3 and body["flagged"] == {}
        assert set(body["skipped"]) == {"blurred.png", "someone-else.jpg"}
        assert all(v.startswith("low quality: ") for v in body["skipped"].values())
        one = [files[3]]
        r = c.post("/api/people", data={"name": "Solo"}, files=one, headers=auth)
        assert r.status_code == 422 and "blurred" in r.json()["detail"]
    (tmp_path / "b").mkdir()
    settings = web_settings(tmp_path / "b", Path("dlib"), enrol_quality="flag")
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/people", data={"name": A}, files=files, headers=auth)
        assert r.status_code == 201, r.text
        assert r.json()["added"] == 5 and set(r.json()["flagged"]) == {
            "blurred.png",
            "someone-else.jpg",
        }


def test_quality_settings_are_checked() -> None:
    from pydantic import ValidationError

    from facemetric.web.settings import WebSettings

    assert WebSettings(quality_floors={"min_eye_px": 24}).quality_floors == {"min_eye_px": 24}
    with pytest.raises(ValidationError, match="unknown floor"):
        WebSettings(quality_floors={"eyes": 1})
    with pytest.raises(ValidationError, match=">= 0"):
        WebSettings(quality_floors={"max_yaw": -5})
    with pytest.raises(ValidationError):
        WebSettings(enrol_quality="maybe")  # type: ignore[arg-type]


def test_cross_person_pass_matches_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    from facemetric.gallery import check

    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((16, 4)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs[9] = vecs[2]  # a duplicate across people
    person = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4, 5, 5, 5, 6, 6])
    monkeypatch.setattr(check, "BLOCK_CELLS", 40)  # several blocks of rows
    best_sim, best_row, near = check._cross_person(vecs, person, 0.999)
    sims = vecs @ vecs.T
    for i in range(16):
        others = [j for j in range(16) if person[j] != person[i]]
        j = max(others, key=lambda k: sims[i, k])
        assert best_row[i] == j and best_sim[i] == pytest.approx(sims[i, j], abs=1e-6)
    brute = [
        (i, j)
        for i in range(16)
        for j in range(i + 1, 16)
        if person[i] != person[j] and sims[i, j] >= 0.999
    ]
    assert [(i, j) for i, j, _ in near] == brute == [(2, 9)]
