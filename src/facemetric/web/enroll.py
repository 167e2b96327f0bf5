"""``POST /api/enroll/preview``: the faces of photos or snapshots before they are enrolled, and
what the enrolment's quality checks would say of each; also the settings' quality policy that
enrolment (``POST /api/people``) applies.

Open like reading the gallery: a preview changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Form
from pydantic import BaseModel

from facemetric.data.image import DecodedImage
from facemetric.data.quality import QualityFloors, problems
from facemetric.enrol.screen import QualityPolicy, screen_for
from facemetric.gallery.records import FaceRecord
from facemetric.web.deps import StateDep, Uploads, check_name, decoded_photos
from facemetric.web.state import WebState
from facemetric.web.uploads import png_data_url

PREVIEW_FACES = 10  # crops shown per photo in a preview (enrolment keeps the largest face)

router = APIRouter(prefix="/api/enroll", tags=["people"])


class PreviewFace(BaseModel):
    box: list[float]
    score: float
    crop: str  # data:image/png;base64,...
    selected: bool  # the face enrolment keeps (the largest)


class PreviewPhoto(BaseModel):
    filename: str
    width: int
    height: int
    faces: list[PreviewFace]  # the largest PREVIEW_FACES faces
    faces_found: int
    quality: dict[str, Any] | None = None  # the quality figures of the face enrolment keeps
    problems: list[str] = []  # the quality floors it misses (docs/quality.md)
    refused: bool = False  # enrolment would refuse it (enrol_quality=refuse)


class PreviewPublic(BaseModel):
    photos: list[PreviewPhoto]


def quality_policy(state: WebState) -> QualityPolicy:
    """The enrolment quality policy of the settings (``enrol_quality``, ``quality_floors``)."""
    floors = replace(QualityFloors(), **state.settings.quality_floors)
    return QualityPolicy(floors, state.settings.enrol_quality)


def preview_photo(
    state: WebState, filename: str, image: DecodedImage
) -> tuple[PreviewPhoto, FaceRecord | None]:
    """The photo's faces for the preview, and the record enrolment would make of it."""
    aligned = state.detect(image.pixels)
    sx, sy = image.scale
    scale = (sx, sy, sx, sy)
    faces = [
        PreviewFace(
            box=[round(float(v) * f, 1) for v, f in zip(a.detection.box, scale, strict=True)],
            score=round(float(a.detection.score), 4),
            crop=png_data_url(a.crop),
            selected=i == 0,
        )
        for i, a in enumerate(aligned[:PREVIEW_FACES])
    ]
    record = None
    if aligned:
        crop_for = state.recognizer.crop_for if state.recognizer is not None else None
        record = FaceRecord.from_photo(image.pixels, aligned[0], filename, crop_for)
    photo = PreviewPhoto(
        filename=filename,
        width=image.width,
        height=image.height,
        faces=faces,
        faces_found=len(aligned),
        quality=None if record is None else record.quality,
    )
    return photo, record


def preview_quality(
    state: WebState, name: str | None, photos: list[PreviewPhoto], records: list[Any]
) -> None:
    """Fill in each photo's quality problems as enrolling them (as ``name``) would find them:
    the floors, and with a model the consistency with each other and ``name``'s references."""
    policy = quality_policy(state)
    if policy.mode == "off":
        return
    found = [(p, r) for p, r in zip(photos, records, strict=True) if r is not None]
    if state.recognizer is not None and found:
        screening = screen_for(state.recognizer, name or "", [r for _, r in found], policy)
        for (photo, _), record, why, ok in zip(
            found, screening.records, screening.reasons, screening.accepted, strict=True
        ):
            photo.quality, photo.problems, photo.refused = record.quality, why, not ok
        return
    for photo, record in found:
        photo.problems = problems(record.quality or {}, policy.floors)
        photo.refused = bool(photo.problems) and policy.mode == "refuse"


@router.post("/preview", response_model=PreviewPublic)
async def enroll_preview(
    state: StateDep,
    files: Uploads,
    name: Annotated[
        str | None, Form(description="Person the photos are for: checked against their faces")
    ] = None,
) -> PreviewPublic:
    """Detect and align the faces of photos or snapshots, to check them before enrolling:
    the faces found and, for the one enrolment keeps, its quality figures and problems."""
    photos, records = [], []
    async for label, image in decoded_photos(state, files):
        photo, record = await state.run(preview_photo, state, label, image)
        photos.append(photo)
        records.append(record)
        del image  # released before the next photo is decoded
    person = None if not name or not name.strip() else check_name(name)
    await state.run(preview_quality, state, person, photos, records)
    return PreviewPublic(photos=photos)
