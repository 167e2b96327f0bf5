"""REST API, one router per resource: status, identify, people and faces, enrolment preview.

Reading and recognising are open; changing the gallery needs the admin token as a bearer header.
Blocking work (decoding, inference, SQLite) runs on the app's worker threads.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Request, UploadFile
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from facemetric.web.state import WebState
from facemetric.web.uploads import decode_checked, png_data_url

NAME_PATTERN = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,100}$")


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


async def read_images(state: WebState, uploads: list[UploadFile]) -> list[np.ndarray]:
    """Read, check and decode uploaded photos; errors name the offending file."""
    if not uploads:
        raise HTTPException(422, "files: at least one photo is required")
    if len(uploads) > state.settings.max_photos:
        raise HTTPException(
            413, f"files: {len(uploads)} photos, over the limit of {state.settings.max_photos}"
        )
    images = []
    for i, upload in enumerate(uploads):
        data = await upload.read()
        name = upload.filename or f"file #{i + 1}"
        images.append(await state.run(decode_checked, data, name, state.settings.max_upload_bytes))
    return images


def check_name(name: str) -> str:
    name = name.strip()
    if not NAME_PATTERN.match(name):
        raise HTTPException(
            422, f"name: {name!r} must be 1 to 100 characters without slashes or control characters"
        )
    return name


# ---- schemas ------------------------------------------------------------------------------------
class HealthPublic(BaseModel):
    status: str  # ok | no_model | empty_gallery
    message: str
    model_loaded: bool
    gallery_people: int
    gallery_faces: int


class ModelPublic(BaseModel):
    loaded: bool
    error: str | None = None
    path: str | None = None
    backbone: str | None = None
    embedding_dim: int | None = None
    input_size: int | None = None
    threshold: float
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
    faces: list[PreviewFace]


class PreviewPublic(BaseModel):
    photos: list[PreviewPhoto]


# ---- helpers over the gallery store -------------------------------------------------------------
def _face_public(face: Any) -> FacePublic:
    face_id = int(face.id)
    return FacePublic(id=face_id, image_url=f"/api/faces/{face_id}/image")


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
    for person in store.list_people():
        if person.name == name:
            return person
    raise HTTPException(404, f"person {name!r} is not in the gallery")


# ---- routers ------------------------------------------------------------------------------------
status_router = APIRouter(prefix="/api", tags=["status"])
identify_router = APIRouter(prefix="/api", tags=["identify"])
people_router = APIRouter(prefix="/api/people", tags=["people"])
faces_router = APIRouter(prefix="/api/faces", tags=["faces"])
enroll_router = APIRouter(prefix="/api/enroll", tags=["people"])


def gallery_counts(state: WebState) -> tuple[int, int]:
    people = state.store.list_people()
    return len(people), sum(int(p.face_count) for p in people)


@status_router.get("/health", response_model=HealthPublic)
async def health(state: StateDep) -> HealthPublic:
    """Is the server usable for recognition, and if not, why not."""
    people, faces = await state.run(gallery_counts, state)
    if state.recognizer is None:
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
    )


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
    embedder = state.recognizer.embedder
    return ModelPublic(
        loaded=True,
        path=str(embedder.checkpoint_path),
        backbone=embedder.spec.backbone,
        embedding_dim=embedder.spec.embedding_dim,
        input_size=embedder.spec.input_size,
        threshold=state.threshold,
        engine=type(embedder).__name__,
        detector=settings.detector,
    )


def identify_image(state: WebState, image: np.ndarray) -> list[dict[str, Any]]:
    recognizer = state.require_recognizer()
    return [m.to_dict() for m in recognizer.recognize(image, threshold=state.settings.threshold)]


@identify_router.post("/identify", response_model=IdentifyPublic)
async def identify(state: StateDep, file: Annotated[UploadFile, File()]) -> IdentifyPublic:
    """Every face in one photo with its nearest gallery identities (multipart field ``file``)."""
    state.require_recognizer()
    start = time.perf_counter()
    (image,) = await read_images(state, [file])
    faces = await state.run(identify_image, state, image)
    return IdentifyPublic(
        faces=faces,
        width=image.shape[1],
        height=image.shape[0],
        threshold=state.threshold,
        server_ms=round((time.perf_counter() - start) * 1000, 2),
    )


@people_router.get("", response_model=list[PersonPublic])
async def list_people(state: StateDep) -> list[PersonPublic]:
    """Everyone in the gallery with their reference faces."""

    def work() -> list[PersonPublic]:
        return [_person_public(state.store, p) for p in state.store.list_people()]

    return await state.run(work)


@people_router.post("", response_model=PersonPublic, status_code=201)
async def enroll_person(
    state: StateDep,
    _admin: AdminDep,
    name: Annotated[str, Form(description="The person's name")],
    files: Uploads,
) -> PersonPublic:
    """Add a person (or more faces of one): the largest face of each photo is saved."""
    name = check_name(name)
    recognizer = state.require_recognizer()
    images = await read_images(state, files)

    def work() -> PersonPublic:
        recognizer.enroll(name, images)
        recognizer.reload()
        return _person_public(state.store, _find_person(state.store, name))

    async with state.write_lock:
        return await state.run(work)


@people_router.delete("/{name}", response_model=PersonDeleted)
async def remove_person(state: StateDep, _admin: AdminDep, name: str) -> PersonDeleted:
    """Remove a person and all their reference faces."""

    def work() -> PersonDeleted:
        _find_person(state.store, name)
        removed = int(state.store.remove_person(name))
        if state.recognizer is not None:
            state.recognizer.reload()
        return PersonDeleted(name=name, faces_removed=removed)

    async with state.write_lock:
        return await state.run(work)


@people_router.get("/{name}/faces", response_model=list[FacePublic])
async def person_faces(state: StateDep, name: str) -> list[FacePublic]:
    """The reference faces of one person."""

    def work() -> list[FacePublic]:
        _find_person(state.store, name)
        return [_face_public(f) for f in state.store.faces_of(name)]

    return await state.run(work)


@faces_router.get(
    "/{face_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "no such face"}},
)
async def face_image(state: StateDep, face_id: Annotated[int, Path(ge=1)]) -> Response:
    """The aligned crop of one gallery face, by numeric id only (no paths, no traversal)."""

    def work() -> bytes | None:
        try:
            return bytes(state.store.face_thumbnail(face_id))
        except (KeyError, LookupError):
            return None
        except Exception as exc:
            if type(exc).__name__ == "GalleryError":
                return None
            raise

    data = await state.run(work)
    if not data:
        raise HTTPException(404, f"face {face_id} is not in the gallery")
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def preview_photo(state: WebState, filename: str, image: np.ndarray) -> PreviewPhoto:
    from facemetric.data.align import detect_and_align

    size = state.recognizer.embedder.spec.input_size if state.recognizer else 112
    aligned = detect_and_align(image, state.detector, size=size)
    faces = [
        PreviewFace(
            box=[round(float(v), 1) for v in a.detection.box],
            score=round(float(a.detection.score), 4),
            crop=png_data_url(a.crop),
            selected=i == 0,
        )
        for i, a in enumerate(aligned)
    ]
    return PreviewPhoto(filename=filename, width=image.shape[1], height=image.shape[0], faces=faces)


@enroll_router.post("/preview", response_model=PreviewPublic)
async def enroll_preview(state: StateDep, files: Uploads) -> PreviewPublic:
    """Detect and align the faces of photos or snapshots, to check them before enrolling."""
    images = await read_images(state, files)
    photos = []
    for i, (upload, image) in enumerate(zip(files, images, strict=True)):
        name = upload.filename or f"photo {i + 1}"
        photos.append(await state.run(preview_photo, state, name, image))
    return PreviewPublic(photos=photos)


ROUTERS = (status_router, identify_router, people_router, faces_router, enroll_router)
