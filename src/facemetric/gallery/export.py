"""A gallery's embeddings (``.npz``) and metadata (``.json``) for other tools: the files'
layout. What goes in them (which model, every person and face) ``GalleryStore.export`` reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from facemetric.gallery.embeddings import GalleryEmbeddings
from facemetric.gallery.listing import Face, Person


def write_export(
    path: str | Path,
    gallery: str,
    emb: GalleryEmbeddings,
    people: list[Person],
    faces: dict[int, Face],
) -> Path:
    """Write ``emb`` to ``path`` (``.npz`` added when missing) and, beside it, a ``.json`` with
    the gallery it came from, ``people`` and the face (of ``faces``) of each row; the path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        embeddings=emb.vectors,
        face_ids=emb.face_ids,
        person_ids=emb.person_ids,
        names=np.array(emb.names),
    )
    meta = {
        "gallery": gallery,
        "model_key": emb.model_key,
        "dim": int(emb.vectors.shape[1]),
        "count": len(emb.face_ids),
        "people": [p.__dict__ for p in people],
        "faces": [faces[int(i)].__dict__ for i in emb.face_ids],
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
