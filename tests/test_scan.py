"""data check: real CFP photos (with their exact duplicates) plus synthetic broken files."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from conftest import shared_set
from facemetric.data.scan import (
    CheckConfig,
    check_dataset,
    find_duplicates,
    near_pairs,
    render_report,
)
from facemetric.errors import ConfigError, DatasetError

# CFP identities known to hold byte-identical frontal photos (checked with sha256).
CFP_WITH_DUPLICATES = {
    "417": ("frontal_03.jpg", "frontal_10.jpg"),
    "013": ("frontal_08.jpg", "frontal_09.jpg"),
}
CFP_PLAIN = ("001", "002", "003")


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture
def messy_root(tmp_path: Path) -> Path:
    """Five CFP identities copied to a temp folder, then spoiled on purpose."""
    cfp = shared_set("cfp")
    root = tmp_path / "photos"
    for name in (*CFP_WITH_DUPLICATES, *CFP_PLAIN):
        shutil.copytree(cfp / name, root / name)
    good = (root / "001/frontal_01.jpg").read_bytes()
    (root / "001/truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "001/garbage.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    (root / "001/notes.txt").write_text("not an image")
    (root / "001/.DS_Store").write_bytes(b"\0")
    (root / "002/copy of 001.jpg").write_bytes(good)  # exact duplicate across identities
    # near duplicate: the same photo re-encoded at another quality (different bytes)
    rgb = np.asarray(Image.open(root / "003/frontal_01.jpg").convert("RGB"))
    (root / "003/reencoded.jpg").write_bytes(jpeg_bytes(rgb, quality=60))
    (root / "003/tiny.png").write_bytes(_png(skdata.astronaut()[::40, ::40]))  # 13x13
    (root / "loner").mkdir()
    (root / "loner/only.png").write_bytes(_png(skdata.astronaut()))
    (root / "README.txt").write_text("top-level files are not data")
    return root


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_check_finds_every_kind_of_problem(messy_root: Path) -> None:
    report = check_dataset(
        messy_root, CheckConfig(min_images=2, min_size=32, workers=1, progress=False)
    )
    assert report.identities == 6
    assert report.images_per_identity["loner"] == 1
    assert report.images_per_identity["001"] == 14  # 16 image files, 2 unreadable
    assert report.images_per_identity["003"] == 16
    unreadable = {u["path"]: u["reason"] for u in report.unreadable}
    assert set(unreadable) == {"001/truncated.jpg", "001/garbage.jpg"}
    assert "truncated" in unreadable["001/truncated.jpg"]
    assert report.non_images == ["001/notes.txt"]
    assert "README.txt" in report.ignored and "001/.DS_Store" in report.ignored
    assert [s["path"] for s in report.small] == ["003/tiny.png"]
    assert report.few_images == ["loner"]

    exact = {tuple(g.files): g for g in report.exact_duplicates}
    for name, (a, b) in CFP_WITH_DUPLICATES.items():
        group = exact[(f"{name}/{a}", f"{name}/{b}")]
        assert not group.cross_identity
    across = exact[("001/frontal_01.jpg", "002/copy of 001.jpg")]
    assert across.cross_identity and across.identities == ["001", "002"]

    near_files = [set(g.files) for g in report.near_duplicates]
    assert any({"003/frontal_01.jpg", "003/reencoded.jpg"} <= files for files in near_files)
    for group in report.near_duplicates:  # byte-identical pairs are reported as exact, not near
        assert len({(messy_root / f).read_bytes() for f in group.files}) > 1
    assert not report.ok


def test_process_pool_gives_the_same_report(messy_root: Path) -> None:
    one = check_dataset(messy_root, CheckConfig(workers=1, progress=False)).to_dict()
    two = check_dataset(messy_root, CheckConfig(workers=2, progress=False)).to_dict()
    for d in (one, two):
        d.pop("seconds")
        d["config"].pop("workers")
    assert one == two


def test_json_and_table(messy_root: Path) -> None:
    report = check_dataset(messy_root, CheckConfig(workers=1, progress=False))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["identities"] == 6
    assert data["problems"]["unreadable"] == 2
    assert data["ok"] is False
    assert any(g["cross_identity"] for g in data["exact_duplicates"])
    table = render_report(report, limit=3)
    assert "identities" in table and "001/garbage.jpg" in table
    assert "ACROSS 001, 002" in table
    assert table.endswith("problems found (see above)")


def test_clean_folder_is_ok(tmp_path: Path) -> None:
    rgb = skdata.astronaut()
    for person, crops in {
        "a": [rgb[:200, :200], rgb[200:, 200:]],
        "b": [rgb[:200, 300:], rgb[300:, :200]],
    }.items():
        (tmp_path / person).mkdir()
        for i, crop in enumerate(crops):
            (tmp_path / person / f"{i}.png").write_bytes(_png(np.ascontiguousarray(crop)))
    report = check_dataset(tmp_path, CheckConfig(progress=False))
    assert report.ok, report.to_dict()
    assert render_report(report).endswith("OK: no problems found")


def test_near_pairs_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, size=8, dtype=np.uint64)
    flips = np.array([1 << int(b) for b in rng.integers(0, 64, size=40)], dtype=np.uint64)
    hashes = np.concatenate([base, base[rng.integers(0, 8, 40)] ^ flips, base[:3]])
    for d in (0, 1, 3, 10):
        got = sorted(near_pairs(hashes, d, block=7))
        want = sorted(
            (i, j, bin(int(hashes[i]) ^ int(hashes[j])).count("1"))
            for i in range(len(hashes))
            for j in range(i + 1, len(hashes))
            if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= d
        )
        assert got == want


def test_find_duplicates_groups_transitively() -> None:
    from facemetric.data.scan import ImageInfo

    infos = [
        ImageInfo("a/1.jpg", "h1", 10, 10, 0b0000),
        ImageInfo("a/2.jpg", "h2", 10, 10, 0b0001),
        ImageInfo("b/3.jpg", "h3", 10, 10, 0b0011),  # 1 bit from a/2, 2 bits from a/1
        ImageInfo("c/4.jpg", "h1", 10, 10, 0b0000),  # same bytes as a/1
        ImageInfo("c/5.jpg", "h5", 10, 10, 0xFFFF),
        ImageInfo("c/6.jpg", "", error="cannot read"),
    ]
    exact, near = find_duplicates(infos, near_distance=1)
    assert [g.files for g in exact] == [["a/1.jpg", "c/4.jpg"]]
    assert [g.files for g in near] == [["a/1.jpg", "a/2.jpg", "b/3.jpg", "c/4.jpg"]]
    assert near[0].identities == ["a", "b", "c"] and near[0].max_distance == 1
    assert find_duplicates(infos, near_distance=-1)[1] == []


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        check_dataset(tmp_path / "missing")
    (tmp_path / "x.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="no identity sub-folders"):
        check_dataset(tmp_path)
    with pytest.raises(ConfigError, match="near_distance"):
        CheckConfig(near_distance=65)
