"""rename_images_in_folder: plan, collisions, crash recovery, undo, and no byte ever lost."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facemetric.data import rename as rename_mod
from facemetric.data.rename import (
    JOURNAL_NAME,
    TEMP_PREFIX,
    natural_key,
    rename_images_in_folder,
    resolve_prefix,
)
from facemetric.errors import ConfigError, DatasetError


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file (the journal excluded)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != JOURNAL_NAME:
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def contents(root: Path) -> list[str]:
    """The multiset of file contents, regardless of names."""
    return sorted(snapshot(root).values())


def make_tree(root: Path, spec: dict[str, list[str]]) -> None:
    for folder, names in spec.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / folder / name).write_bytes(f"{folder}/{name}".encode())


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_natural_order_prefix_and_extension_normalisation(tmp_path: Path) -> None:
    make_tree(tmp_path, {"A": ["img10.JPG", "img2.jpeg", "IMG1.png", "notes.txt"], "B": ["x.Jpg"]})
    before = snapshot(tmp_path)
    result = rename_images_in_folder(tmp_path)
    assert names(tmp_path / "A") == ["A_1.png", "A_2.jpg", "A_3.jpg", "notes.txt"]
    assert names(tmp_path / "B") == ["B_1.jpg"]
    # natural order: IMG1 < img2 < img10, contents follow their file
    assert (tmp_path / "A/A_3.jpg").read_bytes() == b"A/img10.JPG"
    assert (tmp_path / "A/A_1.png").read_bytes() == b"A/IMG1.png"
    assert result.skipped == ["A/notes.txt"]
    assert [str(m) for m in result.done][:1] == ["A/IMG1.png -> A/A_1.png"]
    assert sorted(snapshot(tmp_path).values()) == sorted(before.values())


def test_prefix_template_and_literal(tmp_path: Path) -> None:
    make_tree(tmp_path, {"A": ["a.jpg"], "B": ["b.jpg", "c.jpg"]})
    rename_images_in_folder(tmp_path, "img_{folder}")
    assert names(tmp_path / "B") == ["img_B_1.jpg", "img_B_2.jpg"]
    rename_images_in_folder(tmp_path, "P")
    assert names(tmp_path / "A") == ["P_1.jpg"]
    assert names(tmp_path / "B") == ["P_1.jpg", "P_2.jpg"]


@pytest.mark.parametrize("bad", ["", "{person}", "a/b", ".hidden", "{0}", "x\\y"])
def test_bad_prefix_is_a_config_error(tmp_path: Path, bad: str) -> None:
    make_tree(tmp_path, {"A": ["a.jpg"]})
    with pytest.raises(ConfigError, match="prefix"):
        rename_images_in_folder(tmp_path, bad)
    assert names(tmp_path / "A") == ["a.jpg"]


def test_natural_key() -> None:
    assert sorted(["a10", "a2", "A1", "b"], key=natural_key) == ["A1", "a2", "a10", "b"]
    assert resolve_prefix(None, "Zoë") == "Zoë"


def test_idempotent_second_run(tmp_path: Path) -> None:
    make_tree(tmp_path, {"A": ["z.jpg", "y.jpg"], "B": ["q.png"]})
    rename_images_in_folder(tmp_path)
    after = snapshot(tmp_path)
    journal = (tmp_path / JOURNAL_NAME).read_bytes()
    second = rename_images_in_folder(tmp_path)
    assert second.planned == [] and second.done == []
    assert snapshot(tmp_path) == after
    assert (tmp_path / JOURNAL_NAME).read_bytes() == journal  # undo still reverts the real run


def test_existing_target_names_are_shuffled_safely(tmp_path: Path) -> None:
    # A_1.jpg exists and must itself become A_2.jpg: the two-phase move must not overwrite it.
    make_tree(tmp_path, {"A": ["A_1.jpg", "0.jpg", "A_2.jpg"]})
    before = snapshot(tmp_path)
    rename_images_in_folder(tmp_path)
    assert names(tmp_path / "A") == ["A_1.jpg", "A_2.jpg", "A_3.jpg"]
    assert (tmp_path / "A/A_1.jpg").read_bytes() == b"A/0.jpg"
    assert (tmp_path / "A/A_2.jpg").read_bytes() == b"A/A_1.jpg"
    assert sorted(snapshot(tmp_path).values()) == sorted(before.values())


def test_name_taken_outside_the_plan_is_skipped_over(tmp_path: Path) -> None:
    make_tree(tmp_path, {"A": ["x.jpg", "y.jpg"]})
    (tmp_path / "A/A_1.jpg").mkdir()  # a folder named like a target: not ours to touch
    (tmp_path / "A/A_1.jpg/keep.txt").write_text("keep")
    result = rename_images_in_folder(tmp_path)
    assert result.collisions == ["A/A_1.jpg"]
    assert names(tmp_path / "A") == ["A_1.jpg", "A_2.jpg", "A_3.jpg"]
    assert (tmp_path / "A/A_1.jpg/keep.txt").read_text() == "keep"
    assert (tmp_path / "A/A_2.jpg").read_bytes() == b"A/x.jpg"


def test_file_appearing_at_a_target_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, {"A": ["x.jpg"]})
    real_replace = os.replace

    def intruder(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        real_replace(src, dst)
        if Path(dst).name.startswith(TEMP_PREFIX):  # after phase 1, someone writes A_1.jpg
            (tmp_path / "A/A_1.jpg").write_bytes(b"intruder")

    monkeypatch.setattr(rename_mod.os, "replace", intruder)
    with pytest.raises(DatasetError, match="already exists"):
        rename_images_in_folder(tmp_path)
    monkeypatch.setattr(rename_mod.os, "replace", real_replace)
    assert (tmp_path / "A/A_1.jpg").read_bytes() == b"intruder"
    assert b"A/x.jpg" in [p.read_bytes() for p in (tmp_path / "A").iterdir()]
    (tmp_path / "A/A_1.jpg").rename(tmp_path / "intruder.bin")
    rename_images_in_folder(tmp_path)  # re-running completes once the name is free
    assert (tmp_path / "A/A_1.jpg").read_bytes() == b"A/x.jpg"


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path, {"A": ["b.JPEG", "a.jpg"], "B": ["c.png"]})
    before = snapshot(tmp_path)
    result = rename_images_in_folder(tmp_path, dry_run=True)
    assert [str(m) for m in result.planned] == [
        "A/a.jpg -> A/A_1.jpg",
        "A/b.JPEG -> A/A_2.jpg",
        "B/c.png -> B/B_1.png",
    ]
    assert result.done == []
    assert snapshot(tmp_path) == before
    assert not (tmp_path / JOURNAL_NAME).exists()


def test_unicode_and_spaces(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Zoë Saldaña": ["photo 2.jpg", "фото 1.JPG"], "李 雷": ["一.png"]})
    before = contents(tmp_path)
    rename_images_in_folder(tmp_path)
    assert names(tmp_path / "Zoë Saldaña") == ["Zoë Saldaña_1.jpg", "Zoë Saldaña_2.jpg"]
    assert names(tmp_path / "李 雷") == ["李 雷_1.png"]
    assert contents(tmp_path) == before
    rename_images_in_folder(tmp_path, undo=True)
    assert names(tmp_path / "Zoë Saldaña") == ["photo 2.jpg", "фото 1.JPG"]


def test_undo_after_completed_run(tmp_path: Path) -> None:
    make_tree(tmp_path, {"A": ["A_2.jpg", "A_1.jpg", "c.jpeg"], "B": ["x.png"]})
    before = snapshot(tmp_path)
    rename_images_in_folder(tmp_path)
    assert snapshot(tmp_path) != before
    result = rename_images_in_folder(tmp_path, undo=True)
    assert snapshot(tmp_path) == before
    assert len(result.done) == 2  # A_1.jpg and A_2.jpg kept their names
    assert not (tmp_path / JOURNAL_NAME).exists()
    with pytest.raises(DatasetError, match="nothing to undo"):
        rename_images_in_folder(tmp_path, undo=True)


class Crash(RuntimeError):
    pass


def crash_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make the rename module's os.replace raise after ``n`` successful file moves."""
    real_replace = os.replace
    count = {"moves": 0}

    def flaky(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        if Path(dst).name != JOURNAL_NAME:
            if count["moves"] >= n:
                raise Crash(f"simulated crash after {n} moves")
            count["moves"] += 1
        real_replace(src, dst)

    monkeypatch.setattr(rename_mod.os, "replace", flaky)


TREE = {"A": ["A_1.jpg", "b.jpg", "a.JPG", "A_3.jpg"], "B": ["z.png", "y.png"], "C": ["c.jpg"]}
# TREE needs 6 moves (A_3.jpg keeps its name), so 12 os.replace calls in two phases.


@pytest.mark.parametrize("crash_at", [0, 1, 3, 6, 7, 9, 11])
def test_interrupted_run_is_completed_by_rerunning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    make_tree(tmp_path, TREE)
    rename_images_in_folder(tmp_path, dry_run=True)
    expected_tmp = tmp_path.parent / (tmp_path.name + "_expected")
    make_tree(expected_tmp, TREE)
    rename_images_in_folder(expected_tmp)
    expected = snapshot(expected_tmp)

    crash_after(monkeypatch, crash_at)
    with pytest.raises(Crash):
        rename_images_in_folder(tmp_path)
    monkeypatch.undo()
    assert contents(tmp_path) == sorted(expected.values())  # nothing lost mid-way
    result = rename_images_in_folder(tmp_path)
    assert result.resumed
    assert snapshot(tmp_path) == expected


@pytest.mark.parametrize("crash_at", [0, 2, 6, 8, 11])
def test_interrupted_run_can_be_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    make_tree(tmp_path, TREE)
    before = snapshot(tmp_path)
    crash_after(monkeypatch, crash_at)
    with pytest.raises(Crash):
        rename_images_in_folder(tmp_path)
    monkeypatch.undo()
    rename_images_in_folder(tmp_path, undo=True)
    assert snapshot(tmp_path) == before
    assert not any(p.name.startswith(TEMP_PREFIX) for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("crash_at", [1, 5, 10])
def test_interrupted_undo_is_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    make_tree(tmp_path, TREE)
    before = snapshot(tmp_path)
    rename_images_in_folder(tmp_path)
    crash_after(monkeypatch, crash_at)
    with pytest.raises(Crash):
        rename_images_in_folder(tmp_path, undo=True)
    monkeypatch.undo()
    assert contents(tmp_path) == sorted(before.values())
    rename_images_in_folder(tmp_path, undo=True)
    assert snapshot(tmp_path) == before


def test_not_a_data_root(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="pass its parent folder"):
        rename_images_in_folder(tmp_path)
    with pytest.raises(DatasetError, match="not a folder"):
        rename_images_in_folder(tmp_path / "missing")


def test_corrupt_journal_is_reported(tmp_path: Path) -> None:
    make_tree(tmp_path, {"A": ["a.jpg"]})
    (tmp_path / JOURNAL_NAME).write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable rename journal"):
        rename_images_in_folder(tmp_path)
    assert names(tmp_path / "A") == ["a.jpg"]


SLOW_RENAME = """
import os, sys, time
from facemetric.data import rename
real = os.replace
def slow(a, b):
    real(a, b)
    if not str(b).endswith(rename.JOURNAL_NAME):
        print("moved", flush=True)
        time.sleep(0.2)
rename.os.replace = slow
rename.rename_images_in_folder(sys.argv[1])
"""


def test_subprocess_killed_mid_run_is_completed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_tree(root, {"A": [f"p{i}.jpg" for i in range(6)]})
    before = contents(root)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_RENAME, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for _ in range(4):  # let it make 4 of its 12 moves, then kill it without warning
        assert proc.stdout.readline().strip() == "moved"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert contents(root) == before
    assert any(p.name.startswith(TEMP_PREFIX) for p in (root / "A").iterdir())
    result = rename_images_in_folder(root)
    assert result.resumed
    assert names(root / "A") == [f"A_{i}.jpg" for i in range(1, 7)]
    assert (root / "A/A_6.jpg").read_bytes() == b"A/p5.jpg"
    assert contents(root) == before


folder_names = st.sampled_from(["A", "B", "Zoë", "a b", "李"])
file_names = st.text(alphabet=st.sampled_from(list("abAB_12 é.")), min_size=1, max_size=6).map(
    lambda s: s.strip(". ") or "x"
)
extensions = st.sampled_from([".jpg", ".JPG", ".jpeg", ".png", ".PNG", ".txt", ""])
trees = st.dictionaries(
    folder_names,
    st.lists(st.tuples(file_names, extensions), min_size=0, max_size=6),
    min_size=1,
    max_size=3,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=trees, prefix=st.sampled_from([None, "{folder}", "img", "A"]), crash=st.integers(0, 20))
def test_random_trees_never_lose_a_byte(
    tmp_path_factory: pytest.TempPathFactory,
    tree: dict[str, list[tuple[str, str]]],
    prefix: str | None,
    crash: int,
) -> None:
    root = tmp_path_factory.mktemp("tree")
    for folder, files in tree.items():
        (root / folder).mkdir()
        for i, (stem, ext) in enumerate(files):
            path = root / folder / f"{stem}{ext}"
            if not path.exists():
                path.write_bytes(f"{folder}|{stem}{ext}|{i}|{time.time_ns()}".encode())
    before = snapshot(root)
    rename_images_in_folder(root, prefix, dry_run=True)
    assert snapshot(root) == before

    # a crash somewhere, then a rerun that completes, a no-op rerun, and an undo
    real_replace = os.replace
    moves = {"n": 0}

    def flaky(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        if Path(dst).name != JOURNAL_NAME:
            moves["n"] += 1
            if moves["n"] > crash:
                raise Crash
        real_replace(src, dst)

    rename_mod.os.replace = flaky  # type: ignore[assignment]
    try:
        rename_images_in_folder(root, prefix)
    except Crash:
        pass
    finally:
        rename_mod.os.replace = real_replace
    assert contents(root) == sorted(before.values())
    rename_images_in_folder(root, prefix)
    renamed = snapshot(root)
    assert sorted(renamed.values()) == sorted(before.values())
    assert rename_images_in_folder(root, prefix).done == []
    assert snapshot(root) == renamed
    for rel in renamed:  # every image is now <stem>_<n><lower ext>, non-images untouched
        name = rel.split("/", 1)[1]
        if name.lower().endswith((".jpg", ".jpeg", ".png")):
            assert name.rsplit("_", 1)[1].split(".")[0].isdigit(), rel
    if (root / JOURNAL_NAME).exists():
        rename_images_in_folder(root, undo=True)
        assert snapshot(root) == before
