"""Pairs files (LFW pairs.txt and tsv), missing images, probe/gallery splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conftest import shared_set
from facemetric.errors import DatasetError
from facemetric.evaluate.protocols import (
    check_pairs_images,
    identity_of,
    missing_images,
    read_pairs,
    split_probe_gallery,
    subset_pairs,
)

LFW = """2 2
Abel_Pacheco\t1\t4
Akhmed_Zakayev\t1\t3
Abdel_Madi_Shabneh\t1\tDean_Barker\t1
Abdel_Madi_Shabneh\t1\tGiancarlo_Fisichella\t1
Alan_Ball\t2\t3
Ann_Veneman\t9\t11
Abdullah\t3\tAbilio_Gomes\t1
Alexandra_Stevenson\t1\tElton_John\t12
"""


def test_lfw_pairs_txt(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(LFW)
    proto = read_pairs(path)
    assert proto.format == "lfw" and len(proto.pairs) == 8 and proto.n_folds == 2
    first = proto.pairs[0]
    assert (first.image1, first.image2) == (
        "Abel_Pacheco/Abel_Pacheco_0001.jpg",
        "Abel_Pacheco/Abel_Pacheco_0004.jpg",
    )
    assert first.same and first.fold == 1
    diff = proto.pairs[2]
    assert not diff.same
    assert diff.image2 == "Dean_Barker/Dean_Barker_0001.jpg"
    assert [p.fold for p in proto.pairs] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert [p.same for p in proto.pairs] == [True, True, False, False] * 2
    assert proto.pairs[5].image2 == "Ann_Veneman/Ann_Veneman_0011.jpg"
    # space-separated and the single-number header of pairsDevTest.txt
    (tmp_path / "dev.txt").write_text("1\nA 1 2\nA 1 B 3\n")
    dev = read_pairs(tmp_path / "dev.txt", lfw_ext=".png")
    assert dev.pairs[1].image2 == "B/B_0003.png" and dev.n_folds == 1


def test_lfw_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("1 2\nA 1 2\nA 1 3\nA 1 B 1\n")
    with pytest.raises(
        DatasetError, match=r"pairs.txt:1: header promises .* 4 pairs, the file has 3"
    ):
        read_pairs(path)
    path.write_text("1 1\nA 1 x\nA 1 B 1\n")
    with pytest.raises(DatasetError, match=r"pairs.txt:2: image number 'x'"):
        read_pairs(path)
    path.write_text("1 1\nA 1 2 3 4 5\nA 1 B 1\n")
    with pytest.raises(DatasetError, match=r"pairs.txt:2: expected 'name n1 n2'"):
        read_pairs(path)
    path.write_text("hello world\n")
    with pytest.raises(DatasetError, match="unknown pairs format"):
        read_pairs(path)
    with pytest.raises(DatasetError, match="not found"):
        read_pairs(tmp_path / "nope.txt")


def test_tsv_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("fold\tsame\timage1\timage2\n1\t1\ta/1.jpg\ta/2.jpg\n2\t0\ta/1.jpg\tb/1.jpg\n")
    proto = read_pairs(path)
    assert proto.format == "tsv" and proto.n_folds == 2
    assert proto.images == ["a/1.jpg", "a/2.jpg", "b/1.jpg"]
    assert proto.pairs[1].same is False and proto.pairs[1].fold == 2
    path.write_text("fold\tsame\timage1\timage2\n1\tmaybe\ta/1.jpg\ta/2.jpg\n")
    with pytest.raises(DatasetError, match=r"pairs.tsv:2: same='maybe'"):
        read_pairs(path)
    path.write_text("fold\tsame\timage1\timage2\n1\t1\ta/1.jpg\n")
    with pytest.raises(DatasetError, match=r"pairs.tsv:2: expected 4 tab-separated columns, got 3"):
        read_pairs(path)


def test_cfp_pairs_files_parse() -> None:
    cfp = shared_set("cfp")
    for name in ("pairs_FF.tsv", "pairs_FP.tsv"):
        proto = read_pairs(cfp / name)
        assert proto.format == "tsv" and proto.n_folds == 10
        counts = Counter(p.same for p in proto.pairs)
        assert counts[True] > 1000 and counts[False] > 1000
        assert all(identity_of(p.image1) == identity_of(p.image2) for p in proto.pairs if p.same)
        assert all(
            identity_of(p.image1) != identity_of(p.image2) for p in proto.pairs if not p.same
        )
        check_pairs_images(proto, cfp)  # every image is there


def test_missing_images_are_counted_and_named(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.jpg").write_bytes(b"x")
    lines = ["fold\tsame\timage1\timage2", "1\t1\ta/1.jpg\ta/2.jpg"]
    lines += [f"1\t0\ta/1.jpg\tghost/{i}.jpg" for i in range(14)]
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    proto = read_pairs(path)
    assert len(missing_images(proto.images, tmp_path)) == 15
    with pytest.raises(DatasetError) as err:
        check_pairs_images(proto, tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"15 image(s) named in {path} are missing under {tmp_path}: a/2.jpg")
    assert "ghost/0.jpg" in msg and "... and 5 more" in msg


def test_subset_draws_from_every_fold_and_label() -> None:
    proto = read_pairs(shared_set("cfp") / "pairs_FF.tsv")
    sub = subset_pairs(proto, 200, seed=1)
    assert len(sub.pairs) == 200
    assert Counter((p.fold, p.same) for p in sub.pairs) == {
        (f, s): 10 for f in range(1, 11) for s in (True, False)
    }
    assert subset_pairs(proto, 200, seed=1).pairs == sub.pairs
    assert subset_pairs(proto, 10**6) is proto


def make_folder(root: Path, counts: dict[str, int]) -> None:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"img_{i:02d}.png").write_bytes(b"x")
    (root / "manifest.jsonl").write_text("{}\n")  # top-level files are not data


def test_probe_gallery_split(tmp_path: Path) -> None:
    make_folder(tmp_path, {f"p{i}": 3 for i in range(8)} | {"solo": 1, "solo2": 1})
    split = split_probe_gallery(tmp_path, enrol=1, seed=0)
    assert len(split.not_enrolled) == 5  # half of 10, rounded
    enrolled, strangers = set(split.enrolled), set(split.not_enrolled)
    assert not enrolled & strangers
    assert {identity_of(p) for p in split.gallery} == enrolled
    assert {identity_of(p) for p in split.mated} == enrolled
    assert {identity_of(p) for p in split.strangers} == strangers
    for name in enrolled:  # the first image (sorted) enrols, the rest probe
        assert f"{name}/img_00.png" in split.gallery
        assert f"{name}/img_01.png" in split.mated and f"{name}/img_02.png" in split.mated
    # identities chosen for enrolment without a probe image are skipped, not enrolled
    assert set(split.skipped) <= {"solo", "solo2"}
    assert set(split.enrolled) | strangers | set(split.skipped) == {f"p{i}" for i in range(8)} | {
        "solo",
        "solo2",
    }
    again = split_probe_gallery(tmp_path, enrol=1, seed=0)
    assert again.not_enrolled == split.not_enrolled
    other = [split_probe_gallery(tmp_path, seed=s).not_enrolled for s in range(1, 6)]
    assert any(o != split.not_enrolled for o in other)
    closed = split_probe_gallery(tmp_path, enrol=2, stranger_fraction=0.0)
    assert not closed.strangers and len(closed.enrolled) == 8 and len(closed.gallery) == 16


def test_probe_gallery_needs_two_identities(tmp_path: Path) -> None:
    make_folder(tmp_path, {"a": 3, "b": 1})
    with pytest.raises(DatasetError, match="identification needs at least 2"):
        split_probe_gallery(tmp_path, stranger_fraction=0.0)
    with pytest.raises(DatasetError, match="not a folder"):
        split_probe_gallery(tmp_path / "missing")
