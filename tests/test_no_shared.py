"""The suite passes on a machine without ../shared/data: a test that needs the research photos
skips through ``requires_shared_data`` / ``shared_set``; a file that runs differently without
them (a stand-in data set) is listed in the Makefile's NO_SHARED_TESTS, which ``make test`` runs
a second time with FACEMETRIC_SHARED_DATA pointed nowhere."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _no_shared_tests() -> set[str]:
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r"^NO_SHARED_TESTS :=(.*)$", makefile, re.M)
    assert match, "the Makefile has no NO_SHARED_TESTS line"
    return set(match.group(1).split())


def test_files_that_fall_back_without_the_photos_are_run_both_ways() -> None:
    """A test that branches on the photos being there (``if ... .is_dir():`` on a SHARED_DATA
    path, then something else than a skip) is a fallback: its file must be in NO_SHARED_TESTS."""
    fallback = re.compile(r"if [^\n]*\.is_dir\(\):\n(?!\s*pytest\.skip)")
    branching = {
        f"tests/{p.name}"
        for p in sorted((REPO / "tests").glob("test_*.py"))
        if "SHARED_DATA" in (text := p.read_text()) and fallback.search(text)
    }
    assert branching == _no_shared_tests()
    for name in branching:
        assert (REPO / name).is_file(), name


def test_no_test_names_the_shared_folder_itself() -> None:
    """A literal ../shared path would not skip on a machine without it."""
    offenders = [
        p.name
        for p in sorted((REPO / "tests").glob("*.py"))
        if p.name not in ("conftest.py", Path(__file__).name)
        and re.search(r"[\"']shared[\"'] / [\"']data|Path\([\"'][./]*shared", p.read_text())
    ]
    assert offenders == []


def test_ci_runs_the_readme_command_and_it_includes_the_second_pass() -> None:
    assert (REPO / ".ci" / "run").read_text().strip().endswith("make test")
    makefile = (REPO / "Makefile").read_text()
    pytest_rule = makefile[makefile.index("\npytest:") :].split("\n\n")[0]
    assert "pytest-no-shared" in pytest_rule
    assert "FACEMETRIC_SHARED_DATA=/nonexistent" in makefile
