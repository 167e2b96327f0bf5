"""CLI for where a gallery lives: ``gallery info`` (backend, schema, generation, index) and
``gallery copy SRC DST`` (between SQLite files and PostgreSQL databases)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from facemetric.cli.options import DB_HELP, gallery_options, open_store

CHIP_FORMATS = ("png", "jpeg", "webp")  # facemetric.gallery.records.CHIP_FORMATS (not imported:
# the parser is built without importing the gallery)
LOCATION_HELP = "a SQLite file or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"


def cmd_info(args: argparse.Namespace) -> int:
    from facemetric.gallery.approximate import AUTO_APPROX_ABOVE
    from facemetric.gallery.index import planned_index
    from facemetric.gallery.migrate import schema_version

    store = open_store(gallery_options(args))
    with store:
        people = store.list_people()
        faces = sum(p.face_count for p in people)
        with store.backend.read() as con:
            version = schema_version(store.backend, con)
        keys = store.model_keys()
        plan = planned_index(faces)
        info: dict[str, Any] = {
            "location": store.location,
            "backend": store.kind,
            "schema": version,
            "generation": store.change_counter(),
            "people": len(people),
            "faces": faces,
            "models": keys,
            "index": plan["kind"],
            "index_detail": plan,
            "chip_format": store.chip_format(),
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['location']} ({info['backend']}, schema {info['schema']})")
    print(
        f"  {info['people']} people, {info['faces']} reference faces, generation "
        f"{info['generation']}"
    )
    params = ", ".join(f"{k} {v}" for k, v in plan.items() if k not in ("kind", "entries"))
    print(
        f"  search index: {plan['kind']}{f' ({params})' if params else ''}, 'auto' for "
        f"{faces:,} faces (exact scan up to {AUTO_APPROX_ABOVE:,}, approximate above)"
    )
    print(f"  new chips stored as {info['chip_format']}")
    for key, count in keys.items():
        print(f"  model {key}: {count} embeddings")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facemetric.errors import GalleryError
    from facemetric.gallery.copy import copy_gallery
    from facemetric.gallery.store import GalleryStore

    src = GalleryStore(args.src, create=False)
    dst = GalleryStore(args.dst, create=True)
    if src.location == dst.location:
        raise GalleryError(f"{src.location}: source and destination are the same gallery")
    with (
        src,
        dst,
        tqdm(total=_face_count(src), unit="face", disable=args.quiet, file=sys.stderr) as bar,
    ):
        report = copy_gallery(src, dst, progress=bar.update, chip_format=args.chip_format)
    converted = f", {report.converted} chips stored as {args.chip_format}" * bool(args.chip_format)
    print(
        f"copied {report.faces} faces ({report.embeddings} embeddings) of {report.people} "
        f"people from {src.location} to {dst.location}; {report.skipped} already there"
        f"{converted}"
    )
    return 0


def _face_count(store: Any) -> int:
    with store.backend.read() as con:
        return int(con.execute("SELECT COUNT(*) FROM faces").fetchone()[0])


def register(gsub: Any) -> None:
    """Add ``gallery info`` and ``gallery copy`` to the ``gallery`` command group."""
    p = gsub.add_parser(
        "info",
        help="where the gallery lives, its size and the search index in use",
        description="Backend, location (never a password), schema version, generation, "
        "people, faces, models with embeddings and the search index 'auto' uses for its size.",
    )
    p.add_argument("--db", metavar="PATH_OR_URL", help=DB_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_info, model=None)

    p = gsub.add_parser(
        "copy",
        help="copy a gallery into another store (SQLite <-> PostgreSQL)",
        description="Copy every person with their faces (chips, landmarks, quality) and the "
        "embeddings of every model from SRC into DST (created when missing). Faces DST "
        "already has are skipped, so running it again adds nothing and a copy that was "
        "stopped goes on where it was.",
    )
    p.add_argument("src", metavar="SRC", help=LOCATION_HELP)
    p.add_argument("dst", metavar="DST", help=LOCATION_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--chip-format",
        choices=CHIP_FORMATS,
        help="store the copied chips in this format (decoded and encoded again; default: "
        "each chip's bytes as they are)",
    )
    p.set_defaults(func=cmd_copy, model=None)
