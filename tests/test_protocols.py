"""Pairs files (LFW pairs.txt and tsv), missing images, probe/gallery splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conftest import shared_set
from facemetric.errors import ConfigError, DatasetError
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


def official_lfw_pairs(folds: int = 10, per_fold: int = 300) -> tuple[str, list[tuple]]:
    """A pairs.txt laid out byte for byte like LFW's: a tab-separated ``10<TAB>300`` header,
    then per fold 300 matched ``name<TAB>n1<TAB>n2`` and 300 mismatched
    ``name1<TAB>n1<TAB>name2<TAB>n2`` lines, LF endings (names made up, numbers unpadded)."""
    lines, expected = [f"{folds}\t{per_fold}"], []
    for f in range(folds):
        for i in range(per_fold):
            name = f"Person_{f}_{i}"
            lines.append(f"{name}\t{1 + i % 3}\t{4 + i % 7}")
            expected.append((f + 1, True, name, 1 + i % 3, name, 4 + i % 7))
        for i in range(per_fold):
            a, b = f"Abel_{f}_{i}", f"Zoe_{f}_{i}"
            lines.append(f"{a}\t{1 + i % 5}\t{b}\t{12 + i % 2}")
            expected.append((f + 1, False, a, 1 + i % 5, b, 12 + i % 2))
    return "\n".join(lines) + "\n", expected


def test_official_lfw_pairs_txt_with_tab_separated_header_and_fields(tmp_path: Path) -> None:
    """Issue 14 item 9: LFW's pairs.txt was refused ('expected the header fold same image1
    image2'): the tab in its header '10<TAB>300' was taken for the tsv format."""
    text, expected = official_lfw_pairs()
    assert text.startswith("10\t300\nPerson_0_0\t1\t4\n")
    path = tmp_path / "pairs.txt"
    path.write_bytes(text.encode("ascii"))
    proto = read_pairs(path)
    assert proto.format == "lfw" and proto.n_folds == 10 and len(proto.pairs) == 6000
    got = [(p.fold, p.same, p.image1, p.image2) for p in proto.pairs]
    want = [
        (f, same, f"{a}/{a}_{n1:04d}.jpg", f"{b}/{b}_{n2:04d}.jpg")
        for f, same, a, n1, b, n2 in expected
    ]
    assert got == want
    # the same file with spaces parses to the same pairs
    spaced = tmp_path / "pairs_spaces.txt"
    spaced.write_text(text.replace("\t", " "))
    assert read_pairs(spaced).pairs == proto.pairs
    # no LFW images here: every missing one is counted and the first are named
    (tmp_path / "lfw").mkdir()
    with pytest.raises(DatasetError) as err:
        check_pairs_images(proto, tmp_path / "lfw")
    msg = str(err.value)
    assert msg.startswith(f"{len(proto.images)} image(s) named in {path} are missing under")
    assert "Abel_0_0/Abel_0_0_0001.jpg" in msg and "more" in msg


def test_official_lfw_pairs_txt_through_evaluate(
    tmp_path: Path, untrained_tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facemetric.cli import main

    text, _ = official_lfw_pairs(folds=2, per_fold=3)
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    root = tmp_path / "lfw"
    (root / "Person_0_0").mkdir(parents=True)
    argv = ["evaluate", str(untrained_tiny_checkpoint), "--pairs", str(path), "--root", str(root)]
    assert main([*argv, "--out", str(tmp_path / "ev"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "expected the header" not in err
    assert "image(s) named in" in err and "Person_0_0/Person_0_0_0001.jpg" in err


def _people(root: Path, sizes: dict[str, int]) -> Path:
    for name, n in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{i}.png").write_bytes(b"")  # names are all make_pairs reads
    return root


def test_make_pairs_every_genuine_pair_and_as_many_impostors(tmp_path: Path) -> None:
    from itertools import combinations

    from facemetric.evaluate.protocols import make_pairs

    sizes = {f"p{i:02d}": n for i, n in enumerate([1, 2, 3, 4, 5, 6, 2, 3, 7, 1, 4, 2, 5, 3])}
    root = _people(tmp_path / "people", sizes)
    made = make_pairs(root, seed=3)
    brute = {
        (f"{k}/{a}.png", f"{k}/{b}.png")
        for k, n in sizes.items()
        for a, b in combinations(range(n), 2)
    }
    genuine = [(p.image1, p.image2) for p in made.pairs if p.same]
    assert sorted(genuine) == sorted(brute) and made.genuine == len(brute)
    assert made.people == len(sizes)
    impostors = [p for p in made.pairs if not p.same]
    assert all(identity_of(p.image1) != identity_of(p.image2) for p in impostors)
    assert len({frozenset((p.image1, p.image2)) for p in impostors}) == len(impostors)
    # folds are made of whole people: nobody's images appear in two folds
    fold_of: dict[str, set[int]] = {}
    for p in made.pairs:
        for im in (p.image1, p.image2):
            fold_of.setdefault(identity_of(im), set()).add(p.fold)
    assert all(len(f) == 1 for f in fold_of.values())
    assert made.folds == 7 == len({p.fold for p in made.pairs})  # 14 people: 2 per fold at most
    # as many impostor pairs as genuine ones, or every pair of two people of one fold if fewer
    members = [[k for k, f in fold_of.items() if f == {n}] for n in range(1, 8)]
    possible = sum(sizes[a] * sizes[b] for m in members for a, b in combinations(m, 2))
    assert made.impostor == min(made.genuine, possible) > 0.9 * made.genuine
    # reproducible for a seed, different for another
    assert make_pairs(root, seed=3).pairs == made.pairs
    assert make_pairs(root, seed=4).pairs != made.pairs


def test_make_pairs_counts_folds_and_file_round_trip(tmp_path: Path) -> None:
    from facemetric.evaluate.protocols import make_pairs, write_pairs

    root = _people(tmp_path / "people", {f"id{i:02d}": 5 for i in range(40)})
    made = make_pairs(root, genuine=50, impostor=120, seed=1, folds=10)
    assert (made.genuine, made.impostor, made.folds) == (50, 120, 10)
    per_fold = Counter(p.fold for p in made.pairs if not p.same)
    assert set(per_fold) <= set(range(1, 11))
    path = write_pairs(made.pairs, tmp_path / "out" / "pairs.tsv")
    proto = read_pairs(path)
    assert proto.format == "tsv" and proto.pairs == made.pairs and proto.n_folds == 10
    check_pairs_images(proto, root)  # every path is relative to the root and exists
    # every fold mixes both kinds (cutting a one-fold file into blocks still works)
    for f in range(1, 11):
        kinds = {p.same for p in made.pairs if p.fold == f}
        assert kinds == {True, False}, f
    with pytest.raises(DatasetError, match="at least 2 people"):
        make_pairs(_people(tmp_path / "one", {"solo": 3}))
    with pytest.raises(ConfigError, match="folds=0"):
        make_pairs(root, folds=0)
