"""Writing galleries: enrolment throughput with precomputed embeddings into PostgreSQL (beside
SQLite, same run), and ``gallery copy`` of a SQLite gallery into PostgreSQL.

A real PostgreSQL 15 server is started in a temporary folder with its default durability (fsync
on), on 127.0.0.1. Faces carry a real 200 px gallery chip (a PNG of scikit-image's astronaut,
encoded once, the same bytes for every face; content hashes differ) and a 128-d embedding.

    .venv/bin/python benchmarks/store_throughput.py            # 20,000 faces, copy 100,000
    .venv/bin/python benchmarks/store_throughput.py --faces 2000 --copy-faces 5000   # quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from facemetric.gallery.copy import copy_gallery
from facemetric.gallery.records import CHIP_SIZE, FaceRecord, encode_png
from facemetric.gallery.store import GalleryStore

DIM = 128


def chip() -> np.ndarray:
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((CHIP_SIZE, CHIP_SIZE)))


def enrol(
    store: GalleryStore,
    people: int,
    per_person: int,
    png: bytes | None,
    pixels: np.ndarray,
    prefix: str = "",
) -> float:
    """Faces per second for ``people`` x ``per_person`` faces, one ``add_faces`` per person."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(people * per_person, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    start = time.perf_counter()
    for p in range(people):
        records = [
            FaceRecord(
                pixels, chip_png=png, content_sha256=f"{prefix}{p}-{i}", source=f"p{p}/{i}.jpg"
            )
            for i in range(per_person)
        ]
        store.add_faces(f"{prefix}person {p:06d}", records, "bench-model",
                        vectors=vectors[p * per_person : (p + 1) * per_person])  # fmt: skip
    return people * per_person / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=20_000, help="faces enrolled per store")
    parser.add_argument("--per-person", type=int, default=20)
    parser.add_argument("--copy-faces", type=int, default=100_000, help="faces copied")
    parser.add_argument("--encode-faces", type=int, default=1000, help="faces enrolled from pixels")
    args = parser.parse_args()

    import pgserver

    why = pgserver.available()
    if why:
        raise SystemExit(why)
    pixels = chip()
    png = encode_png(pixels)
    print(f"chip: {CHIP_SIZE} px, {len(png):,} bytes PNG; embeddings {DIM}-d float32")
    server = pgserver.PostgresServer(durable=True)
    folder = Path(tempfile.mkdtemp(prefix="facemetric-bench-"))
    try:
        people = args.faces // args.per_person
        for name, location in (("sqlite", str(folder / "enrol.db")),
                               ("postgresql", server.new_database())):  # fmt: skip
            store = GalleryStore(location)
            rate = enrol(store, people, args.per_person, png, pixels)
            print(f"enrol {people * args.per_person:,} faces, precomputed embeddings and "
                  f"chips, {name}: {rate:,.0f} faces/s")  # fmt: skip
            n = max(1, args.encode_faces // args.per_person)
            rate = enrol(store, n, args.per_person, None, pixels, prefix="encoded ")
            print(f"  the same with each chip PNG-encoded on the way, {name}: {rate:,.0f} faces/s")
            store.close()

        src = GalleryStore(folder / "copy-src.db")
        enrol(src, args.copy_faces // args.per_person, args.per_person, png, pixels)
        dst = GalleryStore(server.new_database())
        start = time.perf_counter()
        report = copy_gallery(src, dst)
        took = time.perf_counter() - start
        print(f"gallery copy SQLite -> PostgreSQL: {report.faces:,} faces "
              f"({report.embeddings:,} embeddings) in {took:.1f} s, "
              f"{report.faces / took:,.0f} faces/s")  # fmt: skip
        start = time.perf_counter()
        again = copy_gallery(src, dst)
        print(f"  copying again: {again.faces} faces copied, {again.skipped:,} skipped in "
              f"{time.perf_counter() - start:.1f} s")  # fmt: skip
        src.close()
        dst.close()
    finally:
        server.close()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
