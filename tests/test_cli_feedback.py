"""Quick, clean feedback for user mistakes (issue 14 item 8): typos are reported before torch
loads, a closed output pipe is no error, a busy port is one line and exit 2. The time a typo
takes is measured by benchmarks/cli_startup.py, not asserted here."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from webutil import running_server

CONSOLE = Path(sys.executable).with_name("facemetric")

# Run main() in a fresh interpreter and report whether torch got imported on the way.
PROBE = """
import sys
from facemetric.cli import main
code = main(sys.argv[1:])
print("torch loaded" if "torch" in sys.modules else "torch not loaded", code)
"""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "nosuchdir"], "nosuchdir: data folder not found"),
        (["train", ".", "--backbone", "resnet19"], "--backbone: unknown name 'resnet19'"),
        (["train", ".", "--loss", "trplet"], "--loss: unknown name 'trplet'"),
        (["evaluate", "nosuch.pt", "--identify", ".", "--out", "x"], "nosuch.pt: model not found"),
        (["evaluate", "dlib", "--identify", "nosuchdir", "--out", "x"], "nosuchdir: folder not"),
        (["embed", "dlib", "nosuchdir", "--out", "x.npz"], "nosuchdir: photo folder not found"),
        (["gallery", "build", "nosuchdir"], "nosuchdir: photo folder not found"),
        (["gallery", "add", "ann", "nosuch.jpg"], "nosuch.jpg: no such file or folder"),
        (["data", "align", "nosuchdir", "out"], "nosuchdir: photo folder not found"),
        (["data", "align", ".", "out", "--template", "dlb"], "--template: unknown name 'dlb'"),
    ],
)
def test_typos_are_reported_before_torch_loads(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.stdout.split() == ["torch", "not", "loaded", "2"], done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_closed_output_pipe_is_not_an_error(tmp_path: Path) -> None:
    """`facemetric data rename ROOT --dry-run --json | head -1` used to end in a traceback."""
    for person in ("ann", "bob"):
        (tmp_path / person).mkdir()
        for i in range(200):
            (tmp_path / person / f"IMG_{i}.jpg").write_bytes(b"not decoded by rename")
    done = subprocess.run(
        f"'{CONSOLE}' data rename '{tmp_path}' --dry-run --json | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "{"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_serve_on_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                str(CONSOLE),
                "serve",
                "--create",
                "--port",
                str(port),
                "--db",
                str(tmp_path / "g.db"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port} is already in use" in lines[0], done.stderr
    assert not (tmp_path / "g.db").exists()  # it stopped before opening anything


@pytest.mark.slow
def test_serve_still_serves_on_its_own_socket(tmp_path: Path) -> None:
    with running_server(tmp_path, "--db", str(tmp_path / "g.db"), "--model", "dlib") as server:
        import httpx

        assert httpx.get(server.url + "/api/model", timeout=10).json()["backbone"] == "dlib_resnet"
