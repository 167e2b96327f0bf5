"""Unknown faces in the web app: the keeper the recognizer hands unmatched faces to
(``serve --keep-unknown``), the REST routes under ``/api/unknown`` and the page ``/unknown``.

Reading is open like the gallery's; naming, merging, splitting and dismissing need the admin
token. Naming enrols through the recognizer (``add_records``: the enrolment every photo goes
through), then the server's gallery copy is brought up to date.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from facemetric.enrol.screen import enrol_checked
from facemetric.errors import GalleryError
from facemetric.gallery.backend import StoreUnavailableError
from facemetric.gallery.records import chip_media_type
from facemetric.unknown.store import UnknownGroupNotFound, UnknownStore
from facemetric.web.deps import MAX_FACE_ID, AdminDep, StateDep, check_name
from facemetric.web.events import trusted_cameras
from facemetric.web.security import VIEWER_ONLY
from facemetric.web.state import WebState

if TYPE_CHECKING:
    from facemetric.recognize.recognizer import Recognizer
    from facemetric.web.settings import WebSettings

STATIC_DIR = files("facemetric.web") / "static"
router = APIRouter(prefix="/api/unknown", tags=["unknown"], dependencies=VIEWER_ONLY)
page_router = APIRouter(include_in_schema=False)
GroupId = Annotated[int, Path(ge=1, le=MAX_FACE_ID, description="an unknown group's id")]


def attach(recognizer: Recognizer, settings: WebSettings) -> None:
    """Have the server's recognizer keep the faces it matches to nobody (``keep_unknown``);
    the server-side cameras' faces are pruned last."""
    from facemetric.unknown.keeper import attach_keeper

    attach_keeper(
        recognizer,
        threshold=settings.unknown_threshold,
        max_days=settings.unknown_days,
        max_faces=settings.unknown_max_faces,
        interval=settings.unknown_interval,
        source="web",
        trusted_sources=[f"camera:{name}" for name in trusted_cameras(settings)],
    )


# ---- schemas ----------------------------------------------------------------------------------
class UnknownFacePublic(BaseModel):
    id: int
    seen_at: float  # seconds since the epoch
    source: str | None = None
    camera: str | None = None
    pinned: bool = False  # placed by the user (merge, split): grouping never moves it
    image_url: str


class UnknownGroupPublic(BaseModel):
    id: int
    size: int  # faces in the group (``faces`` lists the newest of them)
    status: str  # open | dismissed
    note: str | None = None
    created: float
    updated: float
    faces: list[UnknownFacePublic] = []


class UnknownListPublic(BaseModel):
    keeping: bool  # does this server keep unknown faces (serve --keep-unknown)
    total_faces: int
    groups: list[UnknownGroupPublic]


class NameBody(BaseModel):
    name: str = Field(description="The person's name (new, or one already in the gallery)")


class MergeBody(BaseModel):
    others: list[Annotated[int, Field(ge=1, le=MAX_FACE_ID)]] = Field(
        min_length=1, max_length=100, description="Groups whose faces move into this one"
    )


class SplitBody(BaseModel):
    face_id: int = Field(
        ge=1, le=MAX_FACE_ID, description="The face to take out into a group of its own"
    )


class NamedPublic(BaseModel):
    name: str
    group: int
    added: int  # faces enrolled
    duplicates: int  # faces the person had already
    removed: int  # unknown faces removed from the pool
    face_count: int  # the person's reference faces now


# ---- helpers ----------------------------------------------------------------------------------
def _pool(state: WebState) -> UnknownStore:
    return UnknownStore(state.store)


def _public(group: Any) -> UnknownGroupPublic:
    data = group.to_dict(lambda i: f"/api/unknown/faces/{i}/image")
    return UnknownGroupPublic(**data)


def _checked(fn: Any, *args: Any) -> Any:
    """Run a pool action; its errors as 404 (no such group or face) or 422."""
    try:
        return fn(*args)
    except StoreUnavailableError:
        raise
    except UnknownGroupNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except GalleryError as exc:
        raise HTTPException(422, str(exc)) from None


def enrolment(recognizer: Recognizer) -> Any:
    """How a named group's faces are enrolled: through the enrolment checks every photo goes
    through (``facemetric.enrol.screen.enrol_checked``)."""
    return lambda name, records: enrol_checked(recognizer, name, records)[0].added


# ---- routes -----------------------------------------------------------------------------------
@page_router.get("/unknown")
async def unknown_page() -> FileResponse:
    return FileResponse(str(STATIC_DIR / "unknown.html"), media_type="text/html")


@router.get("", response_model=UnknownListPublic)
async def list_groups(
    state: StateDep,
    min_faces: Annotated[int, Query(ge=1, le=MAX_FACE_ID, description="smallest group listed")] = 1,
    faces: Annotated[int, Query(ge=0, le=200, description="newest faces per group")] = 12,
    dismissed: Annotated[bool, Query(description="list dismissed groups too")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="most groups listed")] = 200,
) -> UnknownListPublic:
    """The suggested people, largest group first, each with its newest faces."""

    def work() -> UnknownListPublic:
        pool = _pool(state)
        statuses = ("open", "dismissed") if dismissed else ("open",)
        groups = pool.groups(statuses, min_faces, faces, limit)
        keeping = state.recognizer is not None and state.recognizer.unknown_keeper is not None
        return UnknownListPublic(
            keeping=keeping, total_faces=pool.count(), groups=[_public(g) for g in groups]
        )

    return await state.run_quick(work)


@router.get(
    "/faces/{face_id}/image",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}},
        404: {"description": "no such face"},
    },
)
async def face_image(
    state: StateDep, face_id: Annotated[int, Path(ge=1, le=MAX_FACE_ID)]
) -> Response:
    """The chip of one kept unknown face, by id (ids are never reused, a chip never changes)."""
    data = await state.run_quick(_checked, _pool(state).face_image, face_id)
    cache = {"Cache-Control": "private, max-age=31536000, immutable"}
    return Response(data, media_type=chip_media_type(data), headers=cache)


@router.get("/{group_id}", response_model=UnknownGroupPublic)
async def get_group(state: StateDep, group_id: GroupId) -> UnknownGroupPublic:
    """One group with all its faces."""
    group = await state.run_quick(_checked, _pool(state).group, group_id)
    return _public(group)


@router.post("/{group_id}/name", response_model=NamedPublic)
async def name_group(
    state: StateDep, _admin: AdminDep, group_id: GroupId, body: NameBody
) -> NamedPublic:
    """Enrol every face of the group as ``name`` (through the enrolment every photo goes
    through), then remove them from the unknown pool."""
    name = check_name(body.name)
    recognizer = state.recognizer

    def work() -> NamedPublic:
        enrol = None if recognizer is None else enrolment(recognizer)
        named = _checked(_pool(state).name, group_id, name, enrol)
        if recognizer is not None:
            recognizer.reload()
        person = state.store.get_person(named.name)
        return NamedPublic(
            name=named.name,
            group=named.group_id,
            added=len(named.added),
            duplicates=named.duplicates,
            removed=named.removed,
            face_count=int(person.face_count),
        )

    async with state.write_lock:
        return await state.run(work)


@router.post("/{group_id}/merge", response_model=UnknownGroupPublic)
async def merge_groups(
    state: StateDep, _admin: AdminDep, group_id: GroupId, body: MergeBody
) -> UnknownGroupPublic:
    """Move the faces of ``others`` into this group."""
    async with state.write_lock:
        group = await state.run(_checked, _pool(state).merge, group_id, body.others)
    return _public(group)


@router.post("/{group_id}/split", response_model=UnknownGroupPublic, status_code=201)
async def split_face(
    state: StateDep, _admin: AdminDep, group_id: GroupId, body: SplitBody
) -> UnknownGroupPublic:
    """Take one face out of the group into a new group of its own (the new group answers)."""
    async with state.write_lock:
        group = await state.run(_checked, _pool(state).split, group_id, body.face_id)
    return _public(group)


@router.post("/{group_id}/dismiss", response_model=UnknownGroupPublic)
async def dismiss_group(state: StateDep, _admin: AdminDep, group_id: GroupId) -> UnknownGroupPublic:
    """Hide the group; new faces of the same stranger join it unseen, retention removes them."""
    async with state.write_lock:
        group = await state.run(_checked, _pool(state).dismiss, group_id)
    return _public(group)


ROUTERS = (router, page_router)
