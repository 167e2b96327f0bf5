"""How long a user waits for the answer to a typo (issue 14: goal < 1 s), beside how long
importing torch alone takes on this machine, median of ``--rounds`` runs each::

    .venv/bin/python benchmarks/cli_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
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
]


def seconds(argv: list[str], cwd: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        torch_s = seconds([sys.executable, "-c", "import torch"], cwd, args.rounds)
        print(f"{'python -c import torch':55s} {torch_s:6.2f} s  (for scale)")
        for case in CASES:
            s = seconds([str(CONSOLE), *case], cwd, args.rounds)
            print(f"{'facemetric ' + ' '.join(case):55s} {s:6.2f} s")


if __name__ == "__main__":
    main()
