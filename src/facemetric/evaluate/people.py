"""Whose faces an evaluation uses: a split's test people, and the people a model trained on.

An evaluation on people the model has seen in training (or picked its best epoch on) tells
little about new people; ``overlap`` finds them from what the checkpoint records: its run's
``config`` (data folders and split) and, for a fine-tune, the same for the model it started from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facemetric.data.split import identity_of, list_identity_images, read_split
from facemetric.errors import ConfigError, FacemetricError
from facemetric.evaluate.protocols import describe_missing, missing_images

SHOWN = 8  # names listed in a warning before "..."
MAX_INIT_DEPTH = 5  # fine-tunes of fine-tunes followed back this far


@dataclass
class SplitTest:
    """The test people of a split: the data root and ``{person: [relative paths]}``."""

    root: Path
    people: dict[str, list[str]]
    split: Path


def split_test_people(split: str | Path, root: str | Path | None = None) -> SplitTest:
    """The people of ``split/test.txt`` under ``root`` (default: the root the split's
    ``split.json`` records, else the split folder itself); errors name the missing images."""
    s = read_split(split)
    if not s.test:
        raise ConfigError(
            f"{split}/test.txt lists no images: the split holds no test people "
            "(make one with facemetric data split ROOT --test F)"
        )
    recorded = s.meta.get("root")
    if root is None:
        root = Path(recorded) if recorded else Path(split)
    root = Path(root)
    missing = missing_images(s.test, root)
    if missing:
        hint = "" if recorded is None else f" (split.json records the root {recorded})"
        raise ConfigError(
            describe_missing(missing, root, f"{split}/test.txt")
            + f"; pass --root DIR, the folder the split was made of{hint}"
        )
    people: dict[str, list[str]] = {}
    for p in s.test:
        people.setdefault(identity_of(p), []).append(p)
    return SplitTest(root=root, people=people, split=Path(split))


@dataclass
class TrainedPeople:
    """People a model saw in training or validation, and where that was learnt."""

    names: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # what could not be read, and why


def trained_people(meta: dict[str, Any], depth: int = 0) -> TrainedPeople:
    """From a checkpoint's meta: with a split, its train and val people; without, every person
    of the data folders (the auto validation hold-out picked the best epoch, so it counts);
    plus, for a fine-tune (``config.init``), the people of the model it started from."""
    out = TrainedPeople()
    cfg = meta.get("config") or {}
    roots = [str(r) for r in cfg.get("data") or (meta.get("data") or {}).get("roots") or []]
    split = cfg.get("split")
    if split:
        try:
            s = read_split(split)
            out.names |= set(s.identities("train")) | set(s.identities("val"))
            out.sources.append(f"train.txt and val.txt of {split}")
        except FacemetricError as exc:
            out.unknown.append(str(exc))
    else:
        for root in roots:
            try:
                out.names |= set(list_identity_images(root))
                out.sources.append(root)
            except FacemetricError as exc:
                out.unknown.append(str(exc))
    init = cfg.get("init")
    if init and depth < MAX_INIT_DEPTH:
        from facemetric.models.checkpoint import load_checkpoint
        from facemetric.models.pretrained import is_pretrained_name
        from facemetric.models.resolve import resolve_model_path

        if not is_pretrained_name(str(init)):
            try:
                base = trained_people(load_checkpoint(resolve_model_path(init)).meta, depth + 1)
            except FacemetricError as exc:
                out.unknown.append(f"the model it was fine-tuned from: {exc}")
            else:
                out.names |= base.names
                out.sources += [f"{s} (via {init})" for s in base.sources]
                out.unknown += base.unknown
    return out


def overlap(evaluated: set[str], meta: dict[str, Any]) -> dict[str, Any] | None:
    """How many of the ``evaluated`` people the model saw in training, with a warning sentence
    (``warning`` is None when none); None when the checkpoint records no training data."""
    seen = trained_people(meta)
    if not seen.sources and not seen.unknown:
        return None
    common = sorted(evaluated & seen.names)
    doc: dict[str, Any] = {
        "evaluated_people": len(evaluated),
        "trained_people": len(seen.names),
        "overlapping_people": len(common),
        "examples": common[:SHOWN],
        "training_data": seen.sources,
        "unknown": seen.unknown,
        "warning": None,
    }
    if common:
        names = ", ".join(common[:SHOWN]) + (" ..." if len(common) > SHOWN else "")
        doc["warning"] = (
            f"{len(common)} of the {len(evaluated)} people evaluated were seen by this model in "
            f"training or validation ({names}; from {'; '.join(seen.sources)}): these numbers "
            "overstate how it does on new people; evaluate on people it never saw (facemetric "
            "evaluate MODEL --split SPLIT uses the split's test.txt)"
        )
    elif seen.unknown and not seen.sources:
        doc["warning"] = (
            "could not tell whether the people evaluated were seen in training: "
            + "; ".join(seen.unknown)
        )
    return doc
