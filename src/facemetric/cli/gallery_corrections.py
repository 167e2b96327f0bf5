"""CLI for corrections: ``gallery correct PHOTO --not NAME | --confirm NAME``,
``gallery corrections`` (list) and ``gallery undo ID``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from facemetric.cli.options import (
    DB_HELP,
    add_model_options,
    check_inputs,
    gallery_options,
    open_recognizer,
    open_store,
)


def cmd_correct(args: argparse.Namespace) -> int:
    from facemetric.data.image import load_image
    from facemetric.enrol.correct import correct_photo, parse_box

    check_inputs(args, args.photo)
    kind, person = ("wrong", args.wrong) if args.wrong else ("confirmed", args.confirm)
    box = parse_box(args.box)
    rec = open_recognizer(gallery_options(args))
    rec.store.get_person(person)  # a name not in the gallery is said before any work
    done = correct_photo(
        rec, load_image(args.photo), kind, person, box, args.face, args.photo, args.note
    )
    if args.json:
        print(json.dumps(done.to_dict(), indent=2))
        return 0
    what = "is not" if kind == "wrong" else "is"
    print(
        f"correction {done.id}: {args.photo} {what} {person} (face {done.face_id} added as a "
        f"{'negative' if kind == 'wrong' else 'reference'} face); undo with: facemetric gallery "
        f"undo {done.id}"
    )
    return 0


def cmd_corrections(args: argparse.Namespace) -> int:
    from facemetric.gallery.corrections import CorrectionStore

    store = open_store(gallery_options(args))
    found = CorrectionStore(store).list(args.person)
    if args.json:
        print(json.dumps([c.to_dict() for c in found], indent=2))
        return 0
    for c in found:
        sim = "-" if c.similarity is None else f"{c.similarity:.4f}"
        print(f"{c.id}\t{c.kind}\t{c.person}\tface {c.face_id}\t{sim}\t{c.created}\t{c.source}")
    print(f"{len(found)} corrections in {store.path}")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from facemetric.gallery.corrections import CorrectionStore

    store = open_store(gallery_options(args))
    done = CorrectionStore(store).undo(args.id)
    print(f"undid correction {done.id} ({done.kind}, {done.person}); face {done.face_id} removed")
    return 0


def register(gsub: Any) -> None:
    """Add ``correct``, ``corrections`` and ``undo`` to the ``gallery`` command group."""
    p = gsub.add_parser(
        "correct",
        help="mark an answer wrong (--not NAME) or right (--confirm NAME)",
        description="Correct the answer for a face of PHOTO: --not NAME stores the face as a "
        "negative face of NAME (a later face closer to it than to NAME's references is not "
        "NAME); --confirm NAME adds it as a reference of NAME. Every correction is listed by "
        "'gallery corrections' and undone by 'gallery undo ID'.",
    )
    p.add_argument("photo", metavar="PHOTO", help="the photo the answer was for")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--not", dest="wrong", metavar="NAME", help="this face is not NAME")
    which.add_argument("--confirm", metavar="NAME", help="this face is NAME")
    p.add_argument("--face", type=int, help="which face: its number as identify prints it")
    p.add_argument("--box", metavar="X1,Y1,X2,Y2", help="which face: its box as identify gives")
    p.add_argument("--note", help="a note kept with the correction")
    p.add_argument("--json", action="store_true", help="the correction as one JSON object")
    add_model_options(p)
    p.set_defaults(func=cmd_correct)

    p = gsub.add_parser(
        "corrections",
        help="every correction, newest first",
        description="Every correction (wrong or confirmed answers), newest first.",
    )
    p.add_argument("--person", metavar="NAME", help="only NAME's")
    p.add_argument("--db", metavar="PATH", help=DB_HELP)
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=cmd_corrections, model=None)

    p = gsub.add_parser(
        "undo",
        help="undo a correction (its face goes with it)",
        description="Undo correction ID: it is removed with the face it added.",
    )
    p.add_argument("id", metavar="ID", type=int, help="the correction's id")
    p.add_argument("--db", metavar="PATH", help=DB_HELP)
    p.set_defaults(func=cmd_undo, model=None)
