"""Writing galleries: enrolment throughput with precomputed embeddings into PostgreSQL (beside
SQLite, same run) for each chip format side by side, and ``gallery copy`` of a SQLite gallery
into PostgreSQL.

A real PostgreSQL 15 server is started in a temporary folder with its default durability (fsync
on, synchronous commit), on 127.0.0.1. Faces carry a real 200 px gallery chip (scikit-image's
astronaut's face, cut as enrolment cuts it, or with ``--chip picture`` the whole picture shrunk;
encoded once per format, the same bytes for every face; content hashes differ) and a 128-d
embedding. Printed per format and store: faces/s, chip bytes and the database's bytes per
face (tables, TOAST and indexes of faces, embeddings and the change log).

    .venv/bin/python benchmarks/store_throughput.py            # 20,000 faces, copy 100,000
    .venv/bin/python benchmarks/store_throughput.py --faces 4000 --copy-faces 0   # quick
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
from facemetric.gallery.records import CHIP_SIZE, FaceRecord, encode_chip
from facemetric.gallery.store import GalleryStore

DIM = 128


def chip(kind: str = "picture") -> np.ndarray:
    """``face``: the astronaut's gallery chip as enrolment cuts it (RetinaFace); ``picture``:
    the whole picture shrunk to a chip (busier than a face chip: more bytes)."""
    from PIL import Image
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    if kind == "picture":
        return np.asarray(Image.fromarray(img).resize((CHIP_SIZE, CHIP_SIZE)))
    from facemetric.data.align import detect_and_align
    from facemetric.data.detect import create_detector

    face = detect_and_align(img, create_detector("retinaface"))[0]
    return FaceRecord.from_photo(img, face).chip


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


def enrol_many(
    store: GalleryStore, people: int, per_person: int, batch: int, png: bytes, pixels: np.ndarray
) -> float:
    """Faces per second for the same faces through ``add_many``, ``batch`` faces (whole
    people) a transaction."""
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(people * per_person, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    step = max(1, batch // per_person)
    start = time.perf_counter()
    for first in range(0, people, step):
        entries = []
        for p in range(first, min(people, first + step)):
            records = [
                FaceRecord(pixels, chip_png=png, content_sha256=f"b{p}-{i}", source=f"p{p}/{i}.jpg")
                for i in range(per_person)
            ]
            entries.append((f"bulk person {p:06d}", records,
                            vectors[p * per_person : (p + 1) * per_person]))  # fmt: skip
        store.add_many(entries, "bench-model")
    return people * per_person / (time.perf_counter() - start)


def stored_bytes(store: GalleryStore) -> int:
    """Bytes the gallery's faces take: the SQLite file, or PostgreSQL's faces, embeddings and
    changes tables with their TOAST and indexes."""
    if store.kind == "sqlite":
        return Path(store.path).stat().st_size
    with store.backend.read() as con:
        row = con.execute(
            "SELECT pg_total_relation_size('faces') + pg_total_relation_size('embeddings') "
            "+ pg_total_relation_size('changes')"
        ).fetchone()
    return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=20_000, help="faces enrolled per store")
    parser.add_argument("--per-person", type=int, default=20)
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["png-before", "png", "jpeg"],
        help="chip formats; png-before: PNG with PostgreSQL's storage as before (compression "
        "attempted on every chip)",
    )
    parser.add_argument("--copy-faces", type=int, default=100_000, help="faces copied (0: none)")
    parser.add_argument("--encode-faces", type=int, default=1000, help="faces enrolled from pixels")
    parser.add_argument("--batch", type=int, default=500, help="faces a transaction (add_many)")
    parser.add_argument("--chip", choices=("face", "picture"), default="face",
                        help="the chip every face carries (see chip())")  # fmt: skip
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()

    import pgserver

    why = pgserver.available()
    if why:
        raise SystemExit(why)
    pixels = chip(args.chip)
    print(
        f"chip: the astronaut's {args.chip}, {CHIP_SIZE} px; embeddings {DIM}-d float32; "
        f"{args.per_person} faces a call"
    )
    server = pgserver.PostgresServer(durable=True)
    folder = Path(tempfile.mkdtemp(prefix="facemetric-bench-"))
    try:
        people = args.faces // args.per_person
        rates: dict[tuple[str, str], float] = {}
        for fmt in args.formats:
            data = encode_chip(pixels, fmt.removesuffix("-before"))
            print(f"\n{fmt}: {len(data):,} bytes a chip")
            for name in args.stores:
                location = str(folder / f"enrol-{fmt}.db") if name == "sqlite" else None
                store = GalleryStore(location or server.new_database())
                store.set_chip_format(fmt.removesuffix("-before"))
                if fmt.endswith("-before") and name == "postgresql":
                    with store.backend.write() as con:
                        con.execute("ALTER TABLE faces ALTER COLUMN crop_png SET STORAGE EXTENDED")
                rate = enrol(store, people, args.per_person, data, pixels)
                rates[(fmt, name)] = rate
                per_face = stored_bytes(store) / (people * args.per_person)
                print(f"  enrol {people * args.per_person:,} faces, precomputed embeddings and "
                      f"chips, {name}: {rate:,.0f} faces/s, {per_face:,.0f} bytes a face "
                      "stored")  # fmt: skip
                rate = enrol_many(store, people, args.per_person, args.batch, data, pixels)
                rates[(fmt, name + " add_many")] = rate
                print(f"    the same faces through add_many, {args.batch} a transaction: "
                      f"{rate:,.0f} faces/s")  # fmt: skip
                if args.encode_faces:
                    n = max(1, args.encode_faces // args.per_person)
                    rate = enrol(store, n, args.per_person, None, pixels, prefix="encoded ")
                    print(f"    one person a call, each chip encoded on the way: {rate:,.0f} "
                          "faces/s")  # fmt: skip
                store.close()
        first = args.formats[0]
        for fmt in args.formats[1:]:
            for name in (s + tail for s in args.stores for tail in ("", " add_many")):
                ratio = rates[(fmt, name)] / rates[(first, name)]
                print(f"{name}: {fmt} enrols {ratio:.2f}x the faces/s of {first}")

        if args.copy_faces:
            src = GalleryStore(folder / "copy-src.db")
            data = encode_chip(pixels)
            enrol(src, args.copy_faces // args.per_person, args.per_person, data, pixels)
            dst = GalleryStore(server.new_database())
            start = time.perf_counter()
            report = copy_gallery(src, dst)
            took = time.perf_counter() - start
            print(f"gallery copy SQLite -> PostgreSQL ({len(data):,} byte chips): {report.faces:,} "
                  f"faces ({report.embeddings:,} embeddings) in {took:.1f} s, "
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
