"""REST for corrections: mark an answer wrong ("this is not Ada") or confirmed, list, undo.

``POST /api/corrections`` takes the photo or frame the answer was for (multipart ``file``), the
``person`` it named (or should have), ``kind`` (``wrong``: the face becomes a negative face of
the person; ``confirmed``: a reference) and the face's ``box`` in that image's pixels
(``x1,y1,x2,y2``, as the answer gave it; default: the largest face). ``GET /api/corrections``
lists them (``?person=`` for one person), ``DELETE /api/corrections/{id}`` undoes one. Changes
need the admin token, like every change of the gallery.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Path, UploadFile
from pydantic import BaseModel

from facemetric.errors import ConfigError, FaceNotFoundError, GalleryError
from facemetric.gallery.backend import StoreUnavailableError
from facemetric.gallery.corrections import KINDS, CorrectionNotFoundError, CorrectionStore
from facemetric.web.deps import MAX_FACE_ID, AdminDep, StateDep, check_name, decoded_photos
from facemetric.web.people import find_person
from facemetric.web.security import VIEWER_ONLY

router = APIRouter(prefix="/api/corrections", tags=["corrections"], dependencies=VIEWER_ONLY)


class CorrectionPublic(BaseModel):
    id: int
    kind: str  # wrong | confirmed
    person: str | None
    face_id: int | None
    image_url: str | None = None
    created: str
    source: str | None = None
    similarity: float | None = None  # the person's score for this face when it was corrected
    note: str | None = None


def _public(c: object) -> CorrectionPublic:
    data = c.to_dict()  # type: ignore[attr-defined]
    face_id = data.get("face_id")
    return CorrectionPublic(
        **data, image_url=None if face_id is None else f"/api/faces/{face_id}/image"
    )


@router.post("", response_model=CorrectionPublic, status_code=201)
async def add_correction(
    state: StateDep,
    _admin: AdminDep,
    person: Annotated[str, Form(description="The person the answer named (or should have)")],
    file: Annotated[UploadFile, File(description="The photo or frame the answer was for")],
    kind: Annotated[str, Form(description="wrong | confirmed")] = "wrong",
    box: Annotated[str | None, Form(description="The face's box: x1,y1,x2,y2")] = None,
    note: Annotated[str | None, Form(max_length=500)] = None,
) -> CorrectionPublic:
    """Mark the answer for one face of the photo wrong or confirmed."""
    from facemetric.enrol.correct import correct_photo, parse_box

    if kind not in KINDS:
        raise HTTPException(422, f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    name = check_name(person)
    try:
        face_box = parse_box(box)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    recognizer = state.require_recognizer()
    async for label, image in decoded_photos(state, [file]):  # noqa: B007 - one photo
        sx, sy = image.scale  # the answer's boxes are in the photo's own pixels
        scaled = None
        if face_box is not None:
            x1, y1, x2, y2 = face_box
            scaled = (x1 / sx, y1 / sy, x2 / sx, y2 / sy)
        pixels = image.pixels

    def work() -> CorrectionPublic:
        stored = find_person(state.store, name).name
        try:
            done = correct_photo(
                recognizer, pixels, kind, stored, scaled, None, f"api:{label}", note
            )
        except FaceNotFoundError as exc:
            raise HTTPException(422, f"no face to correct: {exc}") from None
        return _public(done)

    async with state.write_lock:
        return await state.run(work)


@router.get("", response_model=list[CorrectionPublic])
async def list_corrections(state: StateDep, person: str | None = None) -> list[CorrectionPublic]:
    """Every correction, newest first (``person``: only theirs)."""

    def work() -> list[CorrectionPublic]:
        return [_public(c) for c in CorrectionStore(state.store).list(person)]

    return await state.run_quick(work)


@router.delete("/{correction_id}", response_model=CorrectionPublic)
async def undo_correction(
    state: StateDep, _admin: AdminDep, correction_id: Annotated[int, Path(ge=1, le=MAX_FACE_ID)]
) -> CorrectionPublic:
    """Undo a correction: it goes, with the face it added."""
    from facemetric.enrol.correct import undo_correction as undo

    recognizer = state.require_recognizer()

    def work() -> CorrectionPublic:
        try:
            return _public(undo(recognizer, correction_id))
        except CorrectionNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except StoreUnavailableError:
            raise
        except GalleryError as exc:
            raise HTTPException(422, str(exc)) from None

    async with state.write_lock:
        return await state.run(work)
