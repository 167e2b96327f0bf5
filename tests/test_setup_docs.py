"""A new user's set-up (issue 29): quiet installs with one line per step, the README saying
where the console script lives, how to pick the demo's port, and a clone command that works on
any machine."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_setup_installs_quietly_with_a_line_per_step() -> None:
    plan = subprocess.run(
        ["make", "-n", "-B", "setup"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout  # -n: printed, not run
    installs = [line for line in plan.splitlines() if "pip install" in line]
    assert len(installs) >= 3
    assert all(" -q " in line and "--disable-pip-version-check" in line for line in installs)
    steps = re.findall(r'echo "setup (\d)/(\d):', plan)
    assert [int(n) for n, _ in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 3
    assert ".venv/bin/facemetric" in plan and "source .venv/bin/activate" in plan


def test_readme_says_where_facemetric_lives_the_port_and_a_portable_clone() -> None:
    readme = (REPO / "README.md").read_text()
    assert ".venv/bin/facemetric" in readme and "source .venv/bin/activate" in readme
    assert "make demo PORT=" in readme
    assert "git clone . /tmp/fresh" in readme
    assert "/work/" not in readme  # no folder of the development machine
    demo = (REPO / "scripts" / "demo.sh").read_text()
    assert "PORT=${PORT:-8000}" in demo
