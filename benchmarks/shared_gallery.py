"""Several servers on one PostgreSQL gallery: how fast a change made through one server reaches
another, and what a kill -9 amid concurrent enrolments or a database restart leaves behind.

Two real ``facemetric serve`` processes on a real PostgreSQL 15 (default durability, fsync on),
all on 127.0.0.1. The model is the tiny backbone with random weights: this measures the
plumbing (change log, NOTIFY, incremental index updates), not accuracy.

    .venv/bin/python benchmarks/shared_gallery.py              # 20 enrolments, 5 kill rounds
    .venv/bin/python benchmarks/shared_gallery.py --enrolments 5 --kill-rounds 1   # quick
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pgserver
from test_web_postgres import AUTH, gallery_contents, generations, serve_args, variants
from webutil import running_server


def tiny_model(folder: Path) -> Path:
    import torch

    from facemetric.models import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(0)
    path = folder / "tiny.pt"
    model = build_model(ModelSpec(backbone="tiny", embedding_dim=32, input_size=112)).eval()
    save_checkpoint(path, model, meta={"note": "untrained, for the benchmark"})
    return path


def named(url: str, photo: bytes) -> list[str | None]:
    r = httpx.post(
        url + "/api/identify", files={"file": ("p.jpg", photo, "image/jpeg")}, timeout=30
    )
    r.raise_for_status()
    return [f["identity"] for f in r.json()["faces"]]


def until(check, timeout: float = 30.0) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``check()`` holds (polled every 10 ms); inf after ``timeout``."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if check():
            return time.perf_counter() - start
        time.sleep(0.01)
    return float("inf")


def propagation(folder: Path, url: str, model: Path, n: int) -> None:
    photos = variants(n)
    args = serve_args(model, url)
    added, removed = [], []
    with running_server(folder, *args) as a, running_server(folder, *args) as b:
        for i, photo in enumerate(photos):
            name = f"visitor {i}"
            files = {"files": ("v.jpg", photo, "image/jpeg")}
            r = httpx.post(a.url + "/api/people", data={"name": name}, files=files, headers=AUTH,
                           timeout=60)  # fmt: skip
            r.raise_for_status()
            added.append(until(lambda: named(b.url, photo) == [name]))  # noqa: B023
            httpx.delete(f"{a.url}/api/people/{name}", headers=AUTH, timeout=60).raise_for_status()
            removed.append(until(lambda: named(b.url, photo) == [None]))  # noqa: B023
    for what, times in (
        ("enrolled on A -> named by B", added),
        ("removed on A -> B stops", removed),
    ):
        print(f"{what}: median {statistics.median(times) * 1000:.0f} ms, worst "
              f"{max(times) * 1000:.0f} ms over {len(times)} (polled every 10 ms)")  # fmt: skip


def kill_rounds(folder: Path, server: pgserver.PostgresServer, model: Path, rounds: int) -> None:
    if rounds:
        kill_enrolments(folder, server, model, rounds)
    restart(folder, server, model)


def kill_enrolments(
    folder: Path, server: pgserver.PostgresServer, model: Path, rounds: int
) -> None:
    totals = {"answered 201": 0, "in flight at the kill": 0, "people kept": 0, "partial": 0,
              "lost": 0}  # fmt: skip
    for r in range(rounds):
        url = server.new_database()
        photos = variants(30)
        answers: dict[str, int] = {}

        with running_server(folder, *serve_args(model, url)) as a:
            threads = [
                threading.Thread(target=enrol, args=(i, a.url, photos, answers)) for i in range(10)
            ]
            for t in threads:
                t.start()
            until(lambda: len(gallery_contents(url)) >= 1 + r % 5, timeout=60)  # noqa: B023
            a.process.send_signal(signal.SIGKILL)
            for t in threads:
                t.join()
        contents = gallery_contents(url)
        ok = {n for n, c in answers.items() if c == 201}
        totals["answered 201"] += len(ok)
        totals["in flight at the kill"] += sum(1 for c in answers.values() if c == -1)
        totals["people kept"] += len(contents)
        totals["partial"] += sum(1 for n in contents.values() if n != 3)
        totals["lost"] += len(ok - set(contents))
    print(f"kill -9 amid 10 concurrent enrolments (3 photos each), {rounds} rounds: "
          + ", ".join(f"{k} {v}" for k, v in totals.items()))  # fmt: skip


def restart(folder: Path, server: pgserver.PostgresServer, model: Path) -> None:
    url = server.new_database()
    args = serve_args(model, url)
    photo = variants(1)[0]
    with running_server(folder, *args) as a, running_server(folder, *args) as b:
        server.stop()
        server.start()
        files = {"files": ("x.jpg", photo, "image/jpeg")}
        back = until(lambda: _post(b.url, files), timeout=60)
        agree = until(lambda: len(generations(a, b)) == 1 and named(a.url, photo) == ["after"],
                      timeout=60)  # fmt: skip
        print(f"PostgreSQL restarted under two servers: B writes again {back:.1f} s after the "
              f"restart; A names B's new person {agree:.2f} s later; "
              f"generations {generations(a, b)}")  # fmt: skip


def enrol(i: int, base: str, photos: list[bytes], answers: dict[str, int]) -> None:
    """Enrol person ``p{i}`` with three photos; their answer's status (-1: no answer)."""
    files = [("files", (f"{j}.jpg", photos[3 * i + j], "image/jpeg")) for j in range(3)]
    try:
        r = httpx.post(base + "/api/people", data={"name": f"p{i}"}, files=files, headers=AUTH,
                       timeout=60)  # fmt: skip
        answers[f"p{i}"] = r.status_code
    except httpx.HTTPError:
        answers[f"p{i}"] = -1


def _post(url: str, files: dict) -> bool:  # type: ignore[type-arg]
    try:
        r = httpx.post(url + "/api/people", data={"name": "after"}, files=files, headers=AUTH,
                       timeout=30)  # fmt: skip
    except httpx.HTTPError:
        return False
    return r.status_code == 201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enrolments", type=int, default=20)
    parser.add_argument("--kill-rounds", type=int, default=5, help="0: none")
    args = parser.parse_args()
    why = pgserver.available()
    if why:
        raise SystemExit(why)
    folder = Path(tempfile.mkdtemp(prefix="facemetric-bench-"))
    server = pgserver.PostgresServer(durable=True)
    try:
        model = tiny_model(folder)
        propagation(folder, server.new_database(), model, args.enrolments)
        kill_rounds(folder, server, model, args.kill_rounds)
    finally:
        server.close()


if __name__ == "__main__":
    main()
