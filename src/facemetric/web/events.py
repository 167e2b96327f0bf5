"""The event history over HTTP: ``/api/events`` (JSON, paged), ``/api/events.csv``, event
images by id, the viewer session the timeline page signs in with, and the events' part of
``/api/health``.

Every read here needs the viewer token when the server listens beyond 127.0.0.1
(``facemetric.web.security.require_viewer``); deleting and pruning need the admin token.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from facemetric.csvcells import DECISION_COLUMNS, SafeDictWriter, decision_columns
from facemetric.errors import GalleryError
from facemetric.events.history import MAX_LIMIT
from facemetric.events.outputs import EventOutputs
from facemetric.events.times import parse_time
from facemetric.gallery.backend import StoreUnavailableError
from facemetric.web.deps import AdminDep, StateDep
from facemetric.web.security import (
    VIEWER_COOKIE,
    VIEWER_COOKIE_DAYS,
    VIEWER_ONLY,
    viewer_allowed,
    viewer_cookie_value,
)
from facemetric.web.settings import WebSettings

MAX_EVENT_ID = 2**63 - 1
CSV_FIELDS = (
    "id", "camera", "source", "person", "known", "nearest", "similarity", "first_seen", "last_seen",
    "duration_s", "frames", "track_id", "closed", "snapshot_url",
    *DECISION_COLUMNS,
)  # fmt: skip

router = APIRouter(tags=["events"], dependencies=VIEWER_ONLY)
session_router = APIRouter(tags=["events"])  # the sign-in itself is open


def open_event_outputs(settings: WebSettings, store: Any) -> EventOutputs:
    """The server's event outputs from its settings (history always; MQTT, webhooks if set)."""

    def people() -> list[str]:
        return [p.name for p in store.list_people()]

    outputs = EventOutputs(
        store,
        keep_days=settings.events_keep_days,
        max_mb=settings.events_max_mb,
        mqtt=None if settings.mqtt is None else settings.mqtt.get_secret_value() or None,
        mqtt_prefix=settings.mqtt_prefix,
        discovery_prefix=settings.mqtt_discovery_prefix or None,
        webhooks=[w.get_secret_value() for w in settings.webhook],
        webhook_secret=None
        if settings.webhook_secret is None
        else settings.webhook_secret.get_secret_value(),
        people=people,
    )
    outputs.trusted_cameras = trusted_cameras(settings)
    return outputs


def trusted_cameras(settings: WebSettings) -> tuple[str, ...]:
    """The server-side cameras' names: an operator configured them, anyone may open a stream."""
    from facemetric.web.cameras import configured_cameras

    try:
        return tuple(c.name for c in configured_cameras(settings))
    except Exception:  # a bad cameras file is reported where the cameras start
        return ()


def outputs_of(request: Request) -> EventOutputs:
    outputs = getattr(request.app.state, "events", None)
    if outputs is None:
        raise HTTPException(503, "the event history is not open (the server is starting)")
    return outputs


OutputsDep = Annotated[EventOutputs, Depends(outputs_of)]


def events_health(app: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The history's and each notifier's status for ``/api/health``."""
    outputs = getattr(app.state, "events", None)
    if outputs is None:
        return None, []
    status = outputs.status()
    return status["history"], status["notifications"]


# ---- schemas ------------------------------------------------------------------------------------
class EventPublic(BaseModel):
    id: int
    camera: str
    source: str = "camera"  # camera (server-side) or browser (a page's webcam stream)
    person: str | None
    known: bool
    nearest: str | None
    similarity: float | None
    first_seen: str
    last_seen: str
    duration_s: float
    frames: int
    track_id: int
    box: list[float] | None
    decision: dict[str, Any]
    closed: bool
    chip_url: str | None
    snapshot_url: str | None


class EventsPage(BaseModel):
    events: list[EventPublic]
    next_before: str | None  # the cursor of the next (older) page; None on the last page
    next_url: str | None


class EventFacets(BaseModel):
    cameras: list[str]
    people: list[str]


class SessionIn(BaseModel):
    token: str


class SessionPublic(BaseModel):
    required: bool  # does reading events need a token on this server?
    authorized: bool  # is this client allowed to read them now?


class PrunedPublic(BaseModel):
    events: int
    bytes: int


# ---- routes -------------------------------------------------------------------------------------
Person = Annotated[str | None, Query(description="only this person's events")]
Camera = Annotated[str | None, Query(description="only this camera's events")]
Since = Annotated[
    str | None, Query(description="seen at or after: ISO 8601, Unix seconds, or 30m/2h/7d ago")
]
Until = Annotated[str | None, Query(description="seen at or before (as since)")]
Known = Annotated[bool | None, Query(description="true: known people only; false: unknown")]
EventId = Annotated[int, Path(ge=1, le=MAX_EVENT_ID)]


def _filters(person: str | None, camera: str | None, since: str | None, until: str | None,
             known: bool | None) -> dict[str, Any]:  # fmt: skip
    return {
        "person": person or None,
        "camera": camera or None,
        "since": parse_time(since, "since"),
        "until": parse_time(until, "until"),
        "known": known,
    }


@router.get("/api/events", response_model=EventsPage)
async def list_events(
    request: Request,
    state: StateDep,
    outputs: OutputsDep,
    person: Person = None,
    camera: Camera = None,
    since: Since = None,
    until: Until = None,
    known: Known = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    before: Annotated[str | None, Query(description="a page's next_before")] = None,
) -> EventsPage:
    """Who was seen where and when, newest first, a page at a time (follow ``next_url``)."""
    filters = _filters(person, camera, since, until, known)
    page = await state.run_quick(
        lambda: outputs.history.query(limit=limit, before=before or None, **filters)
    )
    next_url = None
    if page.next_before is not None:
        next_url = str(request.url.include_query_params(before=page.next_before))
        next_url = next_url.split(str(request.base_url).rstrip("/"), 1)[-1]
    return EventsPage(
        events=[EventPublic(**e.to_dict()) for e in page.events],
        next_before=page.next_before,
        next_url=next_url,
    )


@router.get("/api/events.csv", response_class=StreamingResponse)
async def events_csv(
    state: StateDep,
    outputs: OutputsDep,
    person: Person = None,
    camera: Camera = None,
    since: Since = None,
    until: Until = None,
    known: Known = None,
) -> StreamingResponse:
    """Every matching event as CSV (newest first), for spreadsheets."""
    filters = _filters(person, camera, since, until, known)
    outputs.history.count(**filters)  # a database that is away: 503 now, not mid-stream

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        writer = SafeDictWriter(buf, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for stored in outputs.history.iterate(**filters):
            writer.writerow(decision_columns(stored.to_dict()))
            if buf.tell() > 64 * 1024:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    headers = {"Content-Disposition": 'attachment; filename="events.csv"'}
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/api/events/facets", response_model=EventFacets)
async def event_facets(state: StateDep, outputs: OutputsDep) -> EventFacets:
    """The cameras and people that have events (for the timeline's filters)."""
    cameras, people = await state.run_quick(outputs.history.facets)
    return EventFacets(cameras=cameras, people=people)


@router.get("/api/events/{event_id}", response_model=EventPublic)
async def get_event(state: StateDep, outputs: OutputsDep, event_id: EventId) -> EventPublic:
    stored = await state.run_quick(outputs.history.get, event_id)
    return EventPublic(**stored.to_dict())


async def _image(
    state: Any, outputs: EventOutputs, event_id: int, kind: str, media: str
) -> Response:
    def work() -> bytes | None:
        try:
            return outputs.history.image(event_id, kind)
        except StoreUnavailableError:
            raise
        except GalleryError:
            return None

    data = await state.run_quick(work)
    if data is None:
        raise HTTPException(404, f"event {event_id}: unknown, or no {kind} stored")
    # private: personal data is never kept by shared caches; revalidated (it improves while open)
    return Response(data, media_type=media, headers={"Cache-Control": "private, no-cache"})


@router.get(
    "/api/events/{event_id}/chip.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "no such image"}},
)
async def event_chip(state: StateDep, outputs: OutputsDep, event_id: EventId) -> Response:
    """The best frame's face crop of an event (PNG)."""
    return await _image(state, outputs, event_id, "chip", "image/png")


@router.get(
    "/api/events/{event_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such image"}},
)
async def event_snapshot(state: StateDep, outputs: OutputsDep, event_id: EventId) -> Response:
    """A small snapshot of the best frame of an event (JPEG)."""
    return await _image(state, outputs, event_id, "snapshot", "image/jpeg")


@router.delete("/api/events/{event_id}", response_model=PrunedPublic)
async def delete_event(
    state: StateDep,
    outputs: OutputsDep,
    _admin: AdminDep,
    event_id: EventId,
) -> PrunedPublic:
    """Delete one event and its images (admin)."""
    gone = await state.run(outputs.history.delete, [event_id])
    if not gone:
        raise HTTPException(404, f"event {event_id} is unknown")
    return PrunedPublic(events=gone, bytes=0)


@router.post("/api/events/prune", response_model=PrunedPublic)
async def prune_events(state: StateDep, outputs: OutputsDep, _admin: AdminDep) -> PrunedPublic:
    """Apply the retention settings now (admin; also done every 10 minutes)."""
    done = await state.run(outputs.prune_now)
    return PrunedPublic(events=done.events, bytes=done.bytes)


# ---- the page's sign-in ---------------------------------------------------------------------
@session_router.get("/api/session", response_model=SessionPublic)
async def session(request: Request) -> SessionPublic:
    """Whether this server needs the viewer token and whether this client has given it."""
    required = bool(getattr(request.app.state, "viewer_required", False))
    return SessionPublic(required=required, authorized=bool(viewer_allowed(request)))


@session_router.post("/api/session", response_model=SessionPublic)
async def sign_in(request: Request, body: SessionIn, response: Response) -> SessionPublic:
    """Give the viewer (or admin) token once; the answer sets an HttpOnly, SameSite=Strict
    cookie for events, snapshots and camera pictures (not for changes: those need the admin
    token in a header)."""
    st = request.app.state
    given = body.token.strip().encode("utf-8")
    if not any(
        t and secrets.compare_digest(given, t.encode("utf-8"))
        for t in (st.viewer_token, st.admin_token)
    ):
        raise HTTPException(403, "wrong token")
    response.set_cookie(
        VIEWER_COOKIE,
        viewer_cookie_value(st.viewer_token),
        max_age=VIEWER_COOKIE_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return SessionPublic(required=bool(getattr(st, "viewer_required", False)), authorized=True)


@session_router.delete("/api/session", response_model=SessionPublic)
async def sign_out(request: Request, response: Response) -> SessionPublic:
    response.delete_cookie(VIEWER_COOKIE, path="/")
    required = bool(getattr(request.app.state, "viewer_required", False))
    return SessionPublic(required=required, authorized=not required)
