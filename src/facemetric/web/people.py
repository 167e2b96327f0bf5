"""``/api/people``: everyone in the gallery with their reference faces; enrol, remove.

Reading needs what every personal read needs (``VIEWER_ONLY``); enrolling and removing need the
admin token. Photos are decoded one at a time within the pixel budget, only the largest face's
chip of each is kept, and writes hold the server's write lock.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException
from pydantic import BaseModel

from facemetric.data.image import ImageTooLargeError
from facemetric.enrol.screen import enrol_checked
from facemetric.errors import FaceNotFoundError, GalleryError, ImageReadError
from facemetric.gallery.backend import StoreUnavailableError
from facemetric.gallery.records import FaceRecord
from facemetric.web.deps import AdminDep, StateDep, Uploads, check_name, uploaded_files
from facemetric.web.enroll import quality_policy
from facemetric.web.faces import image_tag
from facemetric.web.security import VIEWER_ONLY

router = APIRouter(prefix="/api/people", tags=["people"], dependencies=VIEWER_ONLY)


class FacePublic(BaseModel):
    id: int
    image_url: str


class PersonPublic(BaseModel):
    name: str
    face_count: int
    created: str | None = None
    faces: list[FacePublic] = []


class EnrolledPublic(PersonPublic):
    """A person after an enrolment, with what the enrolment did."""

    added: int = 0  # faces added by this request
    duplicates: int = 0  # photos the person already had (not added again)
    skipped: dict[str, str] = {}  # photos left out (unreadable, no face, low quality), with why
    flagged: dict[str, str] = {}  # photos saved below a quality floor (enrol_quality=flag)


class PersonDeleted(BaseModel):
    name: str
    faces_removed: int


def _face_public(face: Any) -> FacePublic:
    face_id = int(face.id)
    return FacePublic(id=face_id, image_url=f"/api/faces/{face_id}/image?v={image_tag(face)}")


def _person_public(store: Any, person: Any) -> PersonPublic:
    faces = [_face_public(f) for f in store.faces_of(person.name)]
    created = getattr(person, "created", None)
    return PersonPublic(
        name=person.name,
        face_count=int(person.face_count),
        created=None if created is None else str(created),
        faces=faces,
    )


def find_person(store: Any, name: str) -> Any:
    """The person called ``name`` (as stored, else in normal form), or 404."""
    people = {p.name: p for p in store.list_people()}
    for candidate in (name, unicodedata.normalize("NFC", name).strip()):
        if candidate in people:
            return people[candidate]
    raise HTTPException(404, f"person {name!r} is not in the gallery")


@router.get("", response_model=list[PersonPublic])
async def list_people(state: StateDep) -> list[PersonPublic]:
    """Everyone in the gallery with their reference faces."""

    def work() -> list[PersonPublic]:
        return [_person_public(state.store, p) for p in state.store.list_people()]

    return await state.run_quick(work)


@router.post("", response_model=EnrolledPublic, status_code=201)
async def enroll_person(
    state: StateDep,
    _admin: AdminDep,
    name: Annotated[str, Form(description="The person's name")],
    files: Uploads,
) -> EnrolledPublic:
    """Add a person (or more faces of one): the largest face of each photo is saved.

    A photo that cannot be read or shows no face is skipped and reported in ``skipped``; a
    photo the person already has is not added again (``duplicates``). 422 only when no photo
    is usable."""
    name = check_name(name)
    recognizer = state.require_recognizer()
    records: list[FaceRecord] = []
    labels: list[str] = []
    skipped: dict[str, str] = {}
    failures: list[Exception] = []
    async for label, data in uploaded_files(state, files):
        digest = hashlib.sha256(data).hexdigest()
        try:
            image = await state.decode(data, label, state.settings.max_upload_bytes)
            del data
            record = await state.run(recognizer.face_record, image.pixels, None, digest)
        except ImageTooLargeError:
            raise  # over the pixel budget: the request is refused (413), as everywhere
        except (ImageReadError, FaceNotFoundError) as exc:
            skipped[label] = exc.reason if isinstance(exc, ImageReadError) else "no face found"
            failures.append(exc)
            continue
        records.append(record)  # the largest face's chip; the photo itself is not kept
        labels.append(label)
        del image  # released before the next photo is decoded

    if not records and len(failures) == 1:
        raise failures[0]  # one photo, unusable: its own error (415 not an image, 422 no face)

    def work() -> EnrolledPublic:
        try:
            result, flagged = enrol_checked(
                recognizer, name, records, skipped, quality_policy(state), labels
            )
        except StoreUnavailableError:
            raise  # 503: the database is away, try again later
        except GalleryError as exc:
            raise HTTPException(422, str(exc)) from None
        recognizer.reload()
        person = _person_public(state.store, find_person(state.store, name))
        return EnrolledPublic(
            **person.model_dump(),
            added=len(result.added),
            duplicates=result.duplicates,
            skipped=result.skipped,
            flagged=flagged,
        )

    async with state.write_lock:
        return await state.run(work)


@router.delete("/{name}", response_model=PersonDeleted)
async def remove_person(
    state: StateDep, _admin: AdminDep, name: str, keep_events: bool = False
) -> PersonDeleted:
    """Remove a person and all their reference faces (and their past events and snapshots,
    unless ``keep_events``)."""

    def work() -> PersonDeleted:
        stored = find_person(state.store, name).name
        removed = int(state.store.remove_person(stored, keep_events=keep_events))
        if state.recognizer is not None:
            state.recognizer.reload()
        return PersonDeleted(name=stored, faces_removed=removed)

    async with state.write_lock:
        return await state.run(work)


@router.get("/{name}/faces", response_model=list[FacePublic])
async def person_faces(state: StateDep, name: str) -> list[FacePublic]:
    """The reference faces of one person."""

    def work() -> list[FacePublic]:
        stored = find_person(state.store, name).name
        return [_face_public(f) for f in state.store.faces_of(stored)]

    return await state.run_quick(work)
