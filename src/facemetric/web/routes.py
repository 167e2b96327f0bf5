"""REST API, one router per resource: status, identify, people and faces, enrolment preview.

Reading and recognising are open; changing the gallery needs the admin token as a bearer header.
Blocking work runs off the event loop: decoding, inference and writes on the worker threads,
quick gallery reads (health, people, face images) on threads of their own. Uploaded photos are
decoded one at a time within the pixel budget, and only what is answered is kept.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Header,
    HTTPException,
    Path,
    Request,
    UploadFile,
)
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from facemetric.data.image import DecodedImage, ImageTooLargeError
from facemetric.data.quality import QualityFloors, problems
from facemetric.enrol.screen import QualityPolicy, enrol_checked, screen_for
from facemetric.errors import FaceNotFoundError, GalleryError, ImageReadError
from facemetric.gallery.backend import FULL, StoreUnavailableError
from facemetric.gallery.names import check_person_name
from facemetric.gallery.records import FaceRecord, chip_media_type
from facemetric.web.security import VIEWER_ONLY
from facemetric.web.state import WebState, public_message
from facemetric.web.uploads import png_data_url, to_original

UNAVAILABLE = "the gallery database does not answer"  # its address is the operator's business
FULL_REASON = f"the gallery's {FULL}"
MAX_FACE_ID = 2**63 - 1  # SQLite's largest integer: no face id can be larger
PREVIEW_FACES = 10  # crops shown per photo in a preview (enrolment keeps the largest face)


# ---- dependencies -------------------------------------------------------------------------------
def get_state(request: Request) -> WebState:
    return request.app.state.web


StateDep = Annotated[WebState, Depends(get_state)]
_bearer = HTTPBearer(auto_error=False, description="The admin token (FACEMETRIC_ADMIN_TOKEN)")


def require_admin(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Allow the request only with ``Authorization: Bearer <admin token>``."""
    if credentials is None:
        raise HTTPException(
            401,
            "admin token required: send the header 'Authorization: Bearer TOKEN'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(
        credentials.credentials.encode("utf-8"), state.admin_token.encode("utf-8")
    ):
        raise HTTPException(403, "wrong admin token")


AdminDep = Annotated[None, Depends(require_admin)]
Uploads = Annotated[list[UploadFile], File(description="Photos (JPEG, PNG, ...)")]


async def uploaded_files(
    state: WebState, uploads: list[UploadFile]
) -> AsyncIterator[tuple[str, bytes]]:
    """Each uploaded photo's name and bytes, one at a time, after checking how many came."""
    if not uploads:
        raise HTTPException(422, "files: at least one photo is required")
    if len(uploads) > state.settings.max_photos:
        raise HTTPException(
            413, f"files: {len(uploads)} photos, over the limit of {state.settings.max_photos}"
        )
    for i, upload in enumerate(uploads):
        name = upload.filename or f"file #{i + 1}"
        data = await upload.read()
        await upload.close()
        yield name, data


async def decoded_photos(
    state: WebState, uploads: list[UploadFile]
) -> AsyncIterator[tuple[str, DecodedImage]]:
    """Read, check and decode uploaded photos one at a time (each is released before the next
    is decoded); errors name the offending file."""
    async for name, data in uploaded_files(state, uploads):
        yield name, await state.decode(data, name, state.settings.max_upload_bytes)


def check_name(name: str) -> str:
    """The person name in normal form, or 422 saying why it cannot be used."""
    try:
        return check_person_name(name)
    except GalleryError as exc:
        raise HTTPException(422, str(exc)) from None


# ---- schemas ------------------------------------------------------------------------------------
class GalleryHealth(BaseModel):
    """The gallery this server holds: where it lives and how up to date its copy is."""

    backend: str  # sqlite | postgresql
    database: str  # ok | unavailable
    generation: int | None = None  # the store generation this server's copy is up to date with
    following: bool = False  # a follower thread keeps the copy up to date
    index: str | None = None  # the search index in use: exact | faiss | hnsw | ivf
    index_entries: int | None = None  # faces it holds
    error: str | None = None  # why the database cannot be reached now


class HealthPublic(BaseModel):
    status: str  # ok | no_model | empty_gallery | database_unavailable
    message: str
    model_loaded: bool
    gallery_people: int
    gallery_faces: int
    gallery: GalleryHealth | None = None
    # the event history and each notifier (MQTT, webhooks): state ok | retrying | connecting
    events: dict[str, Any] | None = None
    notifications: list[dict[str, Any]] = []
    connections: dict[str, int] | None = None  # served now, peak, refused (web.limits)


class CalibrationPublic(BaseModel):
    """How a model's threshold was calibrated (no paths: where it was measured is left out)."""

    method: str | None = None  # "far": the lowest threshold with FAR <= target_far
    target_far: float | None = None
    threshold: float | None = None
    tar: float | None = None  # genuine pairs accepted at that threshold
    far: float | None = None  # impostor pairs accepted at that threshold
    genuine_pairs: int | None = None
    impostor_pairs: int | None = None


class ModelPublic(BaseModel):
    loaded: bool
    error: str | None = None
    file: str | None = None  # the checkpoint's file name, never its folder
    backbone: str | None = None
    embedding_dim: int | None = None
    input_size: int | None = None
    threshold: float
    # True only when the threshold deciding matches is the model's calibrated one
    threshold_calibrated: bool = False
    threshold_source: str | None = None  # calibrated | uncalibrated | given (server setting)
    calibration: CalibrationPublic | None = None  # the model's, when it was calibrated
    warning: str | None = None  # what the live page shows when threshold_calibrated is false
    engine: str
    detector: str


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


class IdentifyPublic(BaseModel):
    faces: list[dict[str, Any]]
    width: int
    height: int
    threshold: float
    server_ms: float


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


# ---- helpers over the gallery store -------------------------------------------------------------
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


def _find_person(store: Any, name: str) -> Any:
    """The person called ``name`` (as stored, else in normal form), or 404."""
    people = {p.name: p for p in store.list_people()}
    for candidate in (name, unicodedata.normalize("NFC", name).strip()):
        if candidate in people:
            return people[candidate]
    raise HTTPException(404, f"person {name!r} is not in the gallery")


# ---- routers ------------------------------------------------------------------------------------
status_router = APIRouter(prefix="/api", tags=["status"])
identify_router = APIRouter(prefix="/api", tags=["identify"])
people_router = APIRouter(prefix="/api/people", tags=["people"], dependencies=VIEWER_ONLY)
faces_router = APIRouter(prefix="/api/faces", tags=["faces"], dependencies=VIEWER_ONLY)
enroll_router = APIRouter(prefix="/api/enroll", tags=["people"])


def gallery_health(state: WebState) -> tuple[int, int, GalleryHealth]:
    """People and faces (from this server's copy when it has one, else the store) and the
    gallery's state; asks the database whether it answers."""
    error = state.store.backend.ping()
    info = GalleryHealth(
        backend=state.store.kind,
        database="ok" if error is None else "unavailable",
        error=None
        if error is None
        else (f"the gallery's {FULL}" if error == FULL else UNAVAILABLE),
    )
    live = state.recognizer.loaded_gallery if state.recognizer is not None else None
    if live is not None:
        status = live.status()
        info.generation, info.following = status.generation, status.following
        info.index, info.index_entries = status.index.get("kind"), status.index.get("entries")
        return status.people, status.faces, info
    if error is not None:
        return 0, 0, info
    people = state.store.list_people()
    return len(people), sum(int(p.face_count) for p in people), info


@status_router.get("/health", response_model=HealthPublic)
async def health(state: StateDep, request: Request) -> HealthPublic:
    """Is the server usable for recognition, and if not, why not."""
    from facemetric.web.events import events_health

    people, faces, gallery = await state.run_quick(gallery_health, state)
    if gallery.database != "ok":
        status = "database_unavailable"
        message = (
            f"{gallery.error}: recognising with the {faces} faces loaded, changes are refused "
            "until it is back"
        )
    elif state.recognizer is None:
        status, message = "no_model", f"no model loaded: {state.model_error}"
    elif faces == 0:
        status = "empty_gallery"
        message = (
            "the gallery is empty: enrol people on the gallery page (or facemetric gallery add)"
        )
    else:
        status, message = "ok", f"ready: {people} people, {faces} reference faces"
    return HealthPublic(
        status=status,
        message=message,
        model_loaded=state.recognizer is not None,
        gallery_people=people,
        gallery_faces=faces,
        gallery=gallery,
        events=events_health(request.app)[0],
        notifications=events_health(request.app)[1],
        connections=_connections(request),
    )


def _connections(request: Request) -> dict[str, int] | None:
    count = getattr(request.app.state, "connections", None)
    return count.public() if count is not None else None


@status_router.get("/model", response_model=ModelPublic)
async def model_info(state: StateDep) -> ModelPublic:
    """The loaded model (backbone, sizes, threshold) or why none is loaded."""
    settings = state.settings
    if state.recognizer is None:
        return ModelPublic(
            loaded=False,
            error=state.model_error,
            threshold=state.threshold,
            engine=settings.engine,
            detector=settings.detector,
        )
    recognizer = state.recognizer
    embedder = recognizer.embedder
    checkpoint = getattr(embedder, "checkpoint_path", None)
    file = FilePath(str(checkpoint)).name if checkpoint else None
    source = recognizer.threshold_source
    calibration = recognizer.calibration
    return ModelPublic(
        loaded=True,
        file=file,
        backbone=embedder.spec.backbone,
        embedding_dim=embedder.spec.embedding_dim,
        input_size=embedder.spec.input_size,
        threshold=state.threshold,
        threshold_calibrated=source == "calibrated",
        threshold_source=source,
        calibration=None
        if calibration is None
        else CalibrationPublic(**{k: calibration.get(k) for k in CalibrationPublic.model_fields}),
        warning=_threshold_warning(recognizer, file or "MODEL", calibration),
        engine=type(embedder).__name__,
        detector=settings.detector,
    )


def _threshold_warning(
    recognizer: Any, file: str, calibration: dict[str, Any] | None
) -> str | None:
    """Why the threshold deciding matches may be wrong, for the page; None when calibrated."""
    if recognizer.threshold_source == "calibrated":
        return None
    if recognizer.threshold_source == "uncalibrated":
        return public_message(str(recognizer.threshold_warning(file)))
    own = (
        f"its calibrated threshold is {calibration['threshold']:.4f}"
        if calibration and isinstance(calibration.get("threshold"), (int, float))
        else "its own threshold was never calibrated"
    )
    return (
        f"match threshold {recognizer.threshold:.4f} set in the server's settings "
        f"(--threshold), not calibrated for {file} ({own})"
    )


def identify_image(state: WebState, image: DecodedImage) -> list[dict[str, Any]]:
    recognizer = state.require_recognizer()
    matches = recognizer.recognize(image.pixels, threshold=state.settings.threshold)
    return to_original([m.to_dict() for m in matches], image.scale)


@identify_router.post("/identify", response_model=IdentifyPublic)
async def identify(state: StateDep, file: Annotated[UploadFile, File()]) -> IdentifyPublic:
    """Every face in one photo with its nearest gallery identities (multipart field ``file``).

    Large photos are searched reduced; boxes are in the photo's own pixels."""
    state.require_recognizer()
    start = time.perf_counter()
    async for _, image in decoded_photos(state, [file]):
        faces = await state.run(identify_image, state, image)
        width, height = image.width, image.height
    return IdentifyPublic(
        faces=faces,
        width=width,
        height=height,
        threshold=state.threshold,
        server_ms=round((time.perf_counter() - start) * 1000, 2),
    )


@people_router.get("", response_model=list[PersonPublic])
async def list_people(state: StateDep) -> list[PersonPublic]:
    """Everyone in the gallery with their reference faces."""

    def work() -> list[PersonPublic]:
        return [_person_public(state.store, p) for p in state.store.list_people()]

    return await state.run_quick(work)


@people_router.post("", response_model=EnrolledPublic, status_code=201)
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
        person = _person_public(state.store, _find_person(state.store, name))
        return EnrolledPublic(
            **person.model_dump(),
            added=len(result.added),
            duplicates=result.duplicates,
            skipped=result.skipped,
            flagged=flagged,
        )

    async with state.write_lock:
        return await state.run(work)


@people_router.delete("/{name}", response_model=PersonDeleted)
async def remove_person(
    state: StateDep, _admin: AdminDep, name: str, keep_events: bool = False
) -> PersonDeleted:
    """Remove a person and all their reference faces (and their past events and snapshots,
    unless ``keep_events``)."""

    def work() -> PersonDeleted:
        stored = _find_person(state.store, name).name
        removed = int(state.store.remove_person(stored, keep_events=keep_events))
        if state.recognizer is not None:
            state.recognizer.reload()
        return PersonDeleted(name=stored, faces_removed=removed)

    async with state.write_lock:
        return await state.run(work)


@people_router.get("/{name}/faces", response_model=list[FacePublic])
async def person_faces(state: StateDep, name: str) -> list[FacePublic]:
    """The reference faces of one person."""

    def work() -> list[FacePublic]:
        stored = _find_person(state.store, name).name
        return [_face_public(f) for f in state.store.faces_of(stored)]

    return await state.run_quick(work)


@faces_router.get(
    "/{face_id}/image",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
        404: {"description": "no such face"},
    },
)
async def face_image(
    state: StateDep,
    face_id: Annotated[int, Path(ge=1)],
    v: str | None = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The aligned crop of one gallery face, by numeric id only (no paths, no traversal)."""
    if face_id > MAX_FACE_ID:
        raise HTTPException(404, f"face {face_id} is not in the gallery")

    def work() -> tuple[bytes, Any] | None:
        try:
            return state.store.face_picture(face_id)
        except GalleryError as exc:
            if isinstance(exc, StoreUnavailableError):
                raise
            return None

    found = await state.run_quick(work)
    if not found:
        raise HTTPException(404, f"face {face_id} is not in the gallery")
    data, face = found
    tag = image_tag(face)
    # A URL that names the image's content (?v=, as the API hands out) may be kept for good;
    # a bare one is revalidated every time, so a browser never shows another face's picture.
    cache = "private, max-age=31536000, immutable" if v == tag else "private, no-cache"
    headers = {"Cache-Control": cache, "ETag": f'"{tag}"'}
    if if_none_match is not None and f'"{tag}"' in if_none_match:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=chip_media_type(data), headers=headers)


def image_tag(face: Any) -> str:
    """What names a face's picture: its id and the hash of its photo (or chip), the ETag and
    the ``v`` of its URL; ids are never handed out twice, so neither is a tag."""
    return f"{int(face.id)}-{(face.digest or '')[:16]}"


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


@enroll_router.post("/preview", response_model=PreviewPublic)
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


ROUTERS = (status_router, identify_router, people_router, faces_router, enroll_router)
