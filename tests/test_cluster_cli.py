"""``facemetric cluster`` on real photos: groups per person, strangers unsorted, folders, JSON and
CSV, a second run that embeds nothing, an unreadable photo skipped, --db names a group."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import SHARED_DATA, requires_shared_data, shared_set
from facemetric.cli import cluster as cli_cluster
from facemetric.cli import main

REPO = Path(__file__).resolve().parents[1]
WILD = SHARED_DATA / "celeba-wild"  # FACEMETRIC_SHARED_DATA moves it, as for every test
needs_data = requires_shared_data
PEOPLE = 3  # people with several photos each
PHOTOS = 4
STRANGERS = 2  # people with one photo each


def test_cli_lists_every_method_of_the_core() -> None:
    from facemetric.cluster import core

    assert set(cli_cluster.METHODS) == set(core.available_methods())
    assert cli_cluster.DEFAULT_METHOD == core.DEFAULT_METHOD
    from facemetric.cluster.library import CSV_COLUMNS

    assert tuple(cli_cluster.CSV_COLUMNS_HELP) == CSV_COLUMNS


def _single_face_photos(pipeline, folder: Path, n: int) -> list[Path]:  # type: ignore[no-untyped-def]
    from facemetric.data.image import load_image

    out = []
    for photo in sorted(folder.iterdir()):
        if len(pipeline.faces(load_image(photo)).boxes) == 1:
            out.append(photo)
        if len(out) == n:
            break
    return out


@pytest.fixture(scope="module")
def pipeline():  # type: ignore[no-untyped-def]
    from facemetric.cluster.library import FacePipeline
    from facemetric.models import load_embedder

    return FacePipeline(load_embedder("dlib"), "retinaface", flip=True)  # as the CLI does


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, pipeline) -> Path:  # type: ignore[no-untyped-def]
    """PEOPLE people x PHOTOS photos in nested folders, STRANGERS lone photos, one corrupt file;
    photos with exactly one face, so the truth of every face is known."""
    shared_set("celeba-wild")  # skips when absent
    root = tmp_path_factory.mktemp("library")
    folders = sorted(p for p in WILD.iterdir() if p.is_dir())
    for k, person in enumerate(folders[:PEOPLE]):
        dest = root / ("2019" if k % 2 else "2020") / person.name
        dest.mkdir(parents=True)
        for photo in _single_face_photos(pipeline, person, PHOTOS):
            shutil.copy(photo, dest / photo.name)
    for person in folders[-STRANGERS:]:
        (photo,) = _single_face_photos(pipeline, person, 1)
        shutil.copy(photo, root / f"{person.name}.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def _truth(image: str) -> str:
    return Path(image).parent.name or "stranger:" + image


@needs_data
def test_groups_each_person_and_leaves_strangers_unsorted(
    library: Path, pipeline, tmp_path: Path
) -> None:
    from facemetric.cluster.library import ClusterConfig, cluster_library

    skipped: list[str] = []
    result = cluster_library(
        ClusterConfig(library, tmp_path / "out", progress=False),
        pipeline=pipeline,
        on_skip=lambda p, why: skipped.append(f"{p.name}: {why}"),
    )
    assert len(skipped) == 1 and skipped[0].startswith("broken.jpg")
    assert result.report.skipped and result.report.photos == PEOPLE * PHOTOS + STRANGERS
    by_group: dict[str, set[str]] = {}
    for face in result.faces:
        by_group.setdefault(face.group, set()).add(_truth(face.image))
    # no group mixes two people, strangers (the top-level photos) are unsorted, and each
    # person is one group holding (nearly) all of their faces
    for group, people in by_group.items():
        assert group == "unsorted" or len(people) == 1, f"{group} mixes {people}"
    strangers = [f for f in result.faces if "/" not in f.image]
    assert len(strangers) == STRANGERS and all(f.group == "unsorted" for f in strangers)
    assert len(by_group) - ("unsorted" in by_group) == PEOPLE
    for group in by_group.keys() - {"unsorted"}:
        assert sum(f.group == group for f in result.faces) >= PHOTOS - 1


@needs_data
def test_cli_writes_folders_json_csv_and_reuses_embeddings(
    library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sorted"
    assert main(["cluster", str(library), "--out", str(out), "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert "skipped" in captured.err and "broken.jpg" in captured.err
    assert len(rows) == PEOPLE * PHOTOS + STRANGERS
    assert {"image", "face", "box", "group", "person", "similarity"} <= set(rows[0])
    groups = Counter(r["group"] for r in rows)
    assert groups["unsorted"] >= STRANGERS
    for group in groups:
        links = list((out / group).iterdir())
        assert links and all(p.is_symlink() and p.resolve().is_file() for p in links)
    # a nested photo is linked under its flattened relative path
    nested = next(r for r in rows if "/" in r["image"])
    assert (out / nested["group"] / nested["image"].replace("/", "__")).is_symlink()

    # a second run (the real console script, --csv, --copy) embeds nothing
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "facemetric.cli",
            "cluster",
            str(library),
            "--out",
            str(out),
            "--csv",
            "--copy",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "embedded 0 photos" in proc.stderr and f"reused {len(rows)}" in proc.stderr
    table = list(csv.reader(io.StringIO(proc.stdout)))
    assert tuple(table[0]) == cli_cluster.CSV_COLUMNS_HELP
    assert len(table) - 1 == len(rows)
    assert {r[6] for r in table[1:]} == set(groups)
    copies = [p for g in groups for p in (out / g).iterdir()]
    assert copies and all(p.is_file() and not p.is_symlink() for p in copies)


@needs_data
def test_db_names_the_group_of_a_known_person(library: Path, pipeline, tmp_path: Path) -> None:
    from facemetric.cluster.library import ClusterConfig, cluster_library
    from facemetric.data.image import load_image
    from facemetric.gallery.store import GalleryStore
    from facemetric.recognize.recognizer import Recognizer

    person = sorted(p for p in WILD.iterdir() if p.is_dir())[0]
    in_library = {p.name for p in library.rglob("*.jpg")}
    enrol = [p for p in sorted(person.iterdir()) if p.name not in in_library][:3]
    store = GalleryStore(tmp_path / "gallery.db", create=True)
    rec = Recognizer(pipeline.embedder, store, pipeline.detector)
    rec.enroll("Ada Lovelace", [load_image(p) for p in enrol])
    result = cluster_library(
        ClusterConfig(library, tmp_path / "out", progress=False),
        pipeline=pipeline,
        recognizer=rec,
    )
    named = {f.group for f in result.faces if _truth(f.image) == person.name}
    assert "Ada Lovelace" in named
    assert (tmp_path / "out" / "Ada Lovelace").is_dir()
    store.close()


def test_groups_take_a_known_name_only_with_a_majority() -> None:
    import numpy as np

    from facemetric.cluster.folders import folder_name, name_groups

    labels = np.array([0, 0, 0, 1, 1, 2, 2, -1])
    persons = ["Ada", "Ada", None, "Bob", None, "Ada", "Ada", "Cy"]
    names = name_groups(labels, persons, known=True)
    # group 1 is half Bob: not a majority; group 2 is Ada too and gets a second folder
    assert names == {-1: "unsorted", 0: "Ada", 1: "person-002", 2: "Ada-2"}
    assert name_groups(labels, persons, known=False)[0] == "person-001"
    assert folder_name("../a/b") == "_a_b" and folder_name("...") == "person"
