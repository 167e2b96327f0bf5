"""How long a user waits for the answer to a typo, an empty folder or a missing gallery
(issues 14 and 29: goal < 1 s), beside how long importing torch alone takes on this machine,
median of ``--rounds`` runs each; ``--baseline SRC`` runs the same cases on another source tree
(e.g. an older commit's ``src``, from ``git archive``) in the same run, for a ratio::

    .venv/bin/python benchmarks/cli_startup.py [--rounds 5] [--baseline /tmp/old/src]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONSOLE = Path(sys.executable).with_name("facemetric")
CASES = [
    ["--help"],
    ["train", "nosuchdir"],
    ["train", ".", "--backbone", "resnet19"],
    ["evaluate", "nosuch.pt", "--identify", ".", "--out", "x"],
    ["identify", "x.jpg", "--db", "nosuch.db"],
    ["gallery", "build", "nosuchdir"],
    ["data", "align", "nosuchdir", "out"],
    # issue 29: mistyped commands and options, empty folders, a missing gallery for serve
    ["galery", "list"],
    ["gallery", "list", "--dbb", "x.db"],
    ["identify", "x.jpg", "--top-k", "abc"],
    ["gallery", "build", "empty", "--db", "new.db"],
    ["gallery", "build", "nophotos", "--db", "new.db"],
    ["identify", "empty", "--known", "people"],
    ["identify", "empty", "--db", "gallery.db"],
    ["serve", "--db", "missing.db"],
]


def make_folders(cwd: str) -> None:
    """empty/, nophotos/ann/ (a person folder without photos), people/ann/a.jpg."""
    root = Path(cwd)
    (root / "empty").mkdir()
    (root / "nophotos" / "ann").mkdir(parents=True)
    (root / "people" / "ann").mkdir(parents=True)
    (root / "people" / "ann" / "a.jpg").write_bytes(b"not read: answered before")
    from facemetric.gallery.store import GalleryStore

    GalleryStore(root / "gallery.db").close()  # an (empty) gallery that exists


def seconds(argv: list[str], cwd: str, rounds: int, src: str | None = None) -> float:
    env = {**os.environ, "FACEMETRIC_HOME": str(Path(cwd) / "home")}
    if src is not None:
        env["PYTHONPATH"] = src
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, capture_output=True, check=False, env=env, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", metavar="SRC", help="another source tree to time too")
    parser.add_argument("--match", default="", help="only the cases whose command has this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        make_folders(cwd)
        torch_s = seconds([sys.executable, "-c", "import torch"], cwd, args.rounds)
        print(f"{'python -c import torch':55s} {torch_s:6.2f} s  (for scale)")
        for case in [c for c in CASES if args.match in " ".join(c)]:
            s = seconds([str(CONSOLE), *case], cwd, args.rounds, os.environ.get("PYTHONPATH"))
            line = f"{'facemetric ' + ' '.join(case):55s} {s:6.2f} s"
            if args.baseline and case[0] == "serve":  # before issue 29 it served an empty gallery
                line += "   baseline: not timed (it started serving)"
            elif args.baseline:
                b = seconds([str(CONSOLE), *case], cwd, args.rounds, args.baseline)
                line += f"   baseline {b:6.2f} s   ratio {b / s:5.1f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
