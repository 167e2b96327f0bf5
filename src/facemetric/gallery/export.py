"""A gallery's embeddings (``.npz``) and metadata (``.json``) for other tools."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facemetric.errors import GalleryError

if TYPE_CHECKING:
    from facemetric.gallery.store import GalleryStore
    from facemetric.models.inference import Embedder


# ---- export ------------------------------------------------------------------------------
def export_gallery(
    store: GalleryStore, path: str | Path, embedder: Embedder | str | None = None
) -> Path:
    """Write embeddings (``.npz``) and metadata (``.json`` beside it) for other tools.

    Without ``embedder`` the store must hold embeddings of exactly one model.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if embedder is None:
        keys = store.model_keys()
        if len(keys) != 1:
            raise GalleryError(
                f"{store.path}: embeddings of {len(keys)} models stored; name one with --model"
            )
        embedder = next(iter(keys))
    emb = store.embeddings(embedder)
    if len(emb.face_ids) == 0:
        raise GalleryError(f"{store.path}: the gallery is empty, nothing to export")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        embeddings=emb.vectors,
        face_ids=emb.face_ids,
        person_ids=emb.person_ids,
        names=np.array(emb.names),
    )
    faces = {f.id: f for p in store.list_people() for f in store.faces_of(p.name)}
    meta = {
        "gallery": str(store.path),
        "model_key": emb.model_key,
        "dim": int(emb.vectors.shape[1]),
        "count": len(emb.face_ids),
        "people": [p.__dict__ for p in store.list_people()],
        "faces": [faces[int(i)].__dict__ for i in emb.face_ids],
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
