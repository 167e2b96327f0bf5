"""The gallery of a ``--known`` folder: ``facemetric identify unknown/ --known known_people/``.

The folder of known people (``known_people/person/*.jpg``) is the gallery. It is built into a
SQLite gallery cached under ``$FACEMETRIC_HOME/known/``, one per folder (absolute path), model
(weights hash) and detector, and brought up to date on each use: a manifest beside it records
every photo's size and modification time as last synced. Nothing changed: the gallery is used as
it is (no photo is read). Photos added to a person: only those are enrolled. A photo removed or
changed: that person is enrolled afresh. A person folder removed: the person is removed. Without
a manifest (first use, or a run that stopped half way) the gallery is built from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facemetric.enrol.build import BuildReport, collect_faces, expand_images, identity_folders
from facemetric.errors import DatasetError
from facemetric.gallery.store import GalleryStore, model_key
from facemetric.paths import facemetric_home
from facemetric.recognize.recognizer import Recognizer

if TYPE_CHECKING:
    from facemetric.models.inference import Embedder

CACHE_FOLDER = "known"
MANIFEST_VERSION = 1

Listing = dict[str, dict[str, list[int]]]  # person -> photo (relative, posix) -> [size, mtime_ns]


@dataclass
class KnownGallery:
    """A ``--known`` folder's cached gallery and what bringing it up to date did."""

    recognizer: Recognizer
    folder: Path
    path: Path  # the cached SQLite file
    reused: bool  # nothing had changed: no photo was read
    report: BuildReport = field(default_factory=BuildReport)  # what this use enrolled
    removed: list[str] = field(default_factory=list)  # people whose folder disappeared
    skipped: dict[str, str] = field(default_factory=dict)  # every photo left out (rel. path)

    @property
    def people(self) -> int:
        return len(self.recognizer.store.list_people())

    @property
    def faces(self) -> int:
        return int(self.recognizer.store.count_faces())


def known_gallery(
    folder: str | Path,
    embedder: Embedder,
    detector: str = "retinaface",
    threshold: float | None = None,
    top_k: int = 3,
    decision: Any = None,
) -> KnownGallery:
    """The recognizer over the cached gallery of ``folder`` (``folder/person/**`` images),
    built or brought up to date first (see the module docstring).

    ``DatasetError`` when ``folder`` has no identity folders or no face in any photo."""
    from facemetric.data.detect import create_detector

    root = Path(folder).expanduser().resolve()
    listing = photo_listing(root)
    key = model_key(embedder)
    cache = facemetric_home() / CACHE_FOLDER
    cache.mkdir(parents=True, exist_ok=True)
    stem = hashlib.sha256(f"{root}\0{key}\0{detector}".encode()).hexdigest()[:24]
    db, manifest_path = cache / f"{stem}.db", cache / f"{stem}.json"
    with _locked(cache / f"{stem}.lock"):
        old = _read_manifest(manifest_path, root, key, detector)
        store = GalleryStore(db, create=True) if db.is_file() else None
        if old is None or store is None or store.count_faces() != old["faces"]:
            # no record of what the gallery holds (or it was changed by hand): start afresh
            if store is not None:
                store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            store, old = GalleryStore(db, create=True), None
        rec = Recognizer(
            embedder,
            store,
            create_detector(detector),
            threshold=threshold,
            top_k=top_k,
            decision=decision,
        )
        if old is not None and old["people"] == listing:
            return KnownGallery(rec, root, db, reused=True, skipped=dict(old["skipped"]))
        manifest_path.unlink(missing_ok=True)  # the gallery changes: trusted again once synced
        known = _sync(KnownGallery(rec, root, db, reused=False), listing, old)
        if known.faces == 0:
            raise DatasetError(
                f"{root}: no face found in any photo (expected {root}/person/photo.jpg)"
            )
        _write_manifest(
            manifest_path,
            {
                "version": MANIFEST_VERSION,
                "folder": str(root),
                "model_key": key,
                "detector": detector,
                "people": listing,
                "faces": known.faces,
                "skipped": known.skipped,
            },
        )
        return known


def photo_listing(root: Path) -> Listing:
    """Every image under each person folder of ``root`` with its size and modification time."""
    listing: Listing = {}
    for person in identity_folders(root):
        files: dict[str, list[int]] = {}
        for path in expand_images([person]):
            st = path.stat()
            files[path.relative_to(root).as_posix()] = [int(st.st_size), int(st.st_mtime_ns)]
        listing[person.name] = files
    return listing


def _sync(known: KnownGallery, listing: Listing, old: dict[str, Any] | None) -> KnownGallery:
    """Bring ``known``'s gallery from the ``old`` manifest's state (None: empty) to ``listing``."""
    rec, root, store = known.recognizer, known.folder, known.recognizer.store
    before: Listing = old["people"] if old else {}
    skipped: dict[str, str] = {
        rel: why
        for rel, why in (old["skipped"] if old else {}).items()
        if rel.split("/", 1)[0] in listing
    }
    stored = {p.name for p in store.list_people()}
    for person in sorted(before.keys() - listing.keys()):
        if person in stored:
            store.remove_person(person)
            known.removed.append(person)
    for person, files in listing.items():
        was = before.get(person, {})
        if files == was:
            continue
        if any(files.get(rel) != stat for rel, stat in was.items()):
            # a photo removed or changed: the gallery cannot drop one face, so start the person anew
            if person in stored:
                store.remove_person(person)
            skipped = {r: w for r, w in skipped.items() if not r.startswith(f"{person}/")}
            todo = sorted(files)
        else:
            todo = sorted(set(files) - set(was))
        records, duplicates, why = collect_faces(rec, person, [root / rel for rel in todo], None)
        known.report.duplicates += duplicates
        known.report.skipped.update(why)
        skipped.update({Path(p).relative_to(root).as_posix(): w for p, w in why.items()})
        if records:
            known.report.merge(rec.add_records(person, records))
    known.skipped = skipped
    return known


def _read_manifest(path: Path, root: Path, key: str, detector: str) -> dict[str, Any] | None:
    """The manifest when it is readable and describes this folder, model and detector."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    same = (
        doc.get("version") == MANIFEST_VERSION
        and doc.get("folder") == str(root)
        and doc.get("model_key") == key
        and doc.get("detector") == detector
    )
    if not same or not isinstance(doc.get("people"), dict) or not isinstance(doc.get("faces"), int):
        return None
    if not isinstance(doc.get("skipped"), dict):
        return None
    return doc


def _write_manifest(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` while a gallery is synced: two ``identify --known`` runs
    on one folder at once must not both enrol the same new photos."""
    with open(path, "a") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
