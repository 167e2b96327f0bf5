"""A new user's mistakes, answered at once in one line (issue 29): a missing gallery for
``serve``, empty folders, mistyped commands and options, a partial ``identify``.

"At once" is checked as "before torch is imported" (a model needs it), in a fresh process;
the times themselves are measured by benchmarks/cli_startup.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from facemetric.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


def answer(tmp_path: Path, *argv: str) -> tuple[int, bool, str]:
    """(exit code, whether torch was imported, stderr) of ``facemetric ARGV`` in a fresh
    process."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"FACEMETRIC_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
             "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], result["torch"], done.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_serve_refuses_a_missing_gallery_and_names_gallery_build(tmp_path: Path) -> None:
    code, torch, err = answer(tmp_path, "serve", "--db", "missing.db", "--port", "0")
    line = one_line(err)
    assert code == 2 and not torch
    assert "missing.db: no gallery there" in line and "facemetric gallery build" in line
    assert "--create" in line
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize(
    ("layout", "argv", "says"),
    [
        ({}, ["gallery", "build", "photos", "--db", "g.db"], "photos: no identity folders"),
        ({"photos/ann": None}, ["gallery", "build", "photos"], "no photos in its person folders"),
        ({}, ["identify", "photos", "--known", "photos"], "no images in photos"),
        ({"photos/ann": None}, ["identify", "photos", "--known", "photos"], "no images in photos"),
        ({"photos/ann/notes.txt": "x", "x/a.jpg": "x"}, ["identify", "x/a.jpg", "--known",
          "photos"], "no photos in its person folders (ann)"),
    ],
)  # fmt: skip
def test_empty_folders_are_answered_before_a_model_loads(
    tmp_path: Path, layout: dict[str, str | None], argv: list[str], says: str
) -> None:
    (tmp_path / "photos").mkdir()
    for rel, text in layout.items():
        path = tmp_path / rel
        if text is None:
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    code, torch, err = answer(tmp_path, *argv)
    assert code == 2 and not torch and says in one_line(err), err
    assert "no face found" not in err  # it never looked for faces


def test_identify_of_an_empty_folder_with_a_gallery_is_answered_before_a_model_loads(
    tmp_path: Path,
) -> None:
    import sqlite3

    (tmp_path / "empty").mkdir()
    sqlite3.connect(tmp_path / "g.db").close()  # there, so the gallery check passes
    code, torch, err = answer(tmp_path, "identify", "empty", "--db", "g.db")
    assert code == 2 and not torch and "no images in empty" in one_line(err)


@pytest.mark.parametrize(
    ("argv", "prog", "says"),
    [
        (["galery", "list"], "facemetric", "did you mean 'gallery'?"),
        (["identfy", "x.jpg"], "facemetric", "did you mean 'identify'?"),
        (["gallery", "lst"], "facemetric gallery", "did you mean 'list'?"),
        (["gallery", "list", "--dbb", "x.db"], "facemetric gallery list",
         "unrecognized arguments: --dbb x.db (did you mean --db?)"),
        (["identify", "x.jpg", "--top-k", "abc"], "facemetric identify",
         "argument --top-k: invalid int value: 'abc'"),
    ],
)  # fmt: skip
def test_mistyped_commands_and_options_are_one_line_naming_the_subcommand(
    tmp_path: Path, argv: list[str], prog: str, says: str
) -> None:
    code, torch, err = answer(tmp_path, *argv)
    line = one_line(err)
    assert code == 2 and not torch
    assert line.startswith(f"{prog}: error: ") and says in line, line
    assert line.endswith(f"see: {prog} --help")
    assert "choose from" not in line  # the suggestion, not the list of every command
