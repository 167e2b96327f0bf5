"""Server-side cameras in the web app: started with the app, listed, their live pictures served.

``GET /api/cameras``: each camera's state (live / reconnecting / failed, with the reason), frames
a second read and recognised, its source without credentials. ``GET /api/cameras/{name}/frame.jpg``:
the newest recognised frame with boxes and names drawn. Both are personal data (who is where
now), so they pass ``require_viewer``. Events of every camera go to ``CameraHub.sinks`` (the
history store and notifiers add theirs there).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from facemetric.web.security import VIEWER_ONLY

if TYPE_CHECKING:
    from facemetric.events.model import EventSink
    from facemetric.video.pipeline import CameraHub
    from facemetric.video.sources import Camera
    from facemetric.web.settings import WebSettings
    from facemetric.web.state import WebState

log = logging.getLogger(__name__)
router = APIRouter(tags=["cameras"], dependencies=VIEWER_ONLY)


def configured_cameras(settings: WebSettings) -> list[Camera]:
    """The cameras of ``settings`` (``cameras`` flags, then ``cameras_file``); a bad entry is a
    ``ConfigError`` naming it (checked before the server starts)."""
    from facemetric.video.sources import check_unique, load_cameras, parse_camera

    cameras = [parse_camera(text, settings.camera_fps) for text in settings.cameras]
    if settings.cameras_file:
        cameras += load_cameras(settings.cameras_file)
    check_unique(cameras)
    return cameras


def check_cameras_at_start(settings: WebSettings) -> list[Camera]:
    """``serve``'s one rule for every camera before it starts (``startable_cameras``)."""
    from facemetric.video.sources import startable_cameras

    return startable_cameras(settings.cameras, settings.cameras_file, settings.camera_fps)


class Cameras:
    """The app's cameras: a hub of workers, or the reason none could run (no model)."""

    def __init__(self, hub: CameraHub | None, cameras: list[Camera], why: str | None) -> None:
        self.hub = hub
        self.cameras = cameras
        self.why = why
        self.sinks: list[EventSink] = hub.sinks if hub is not None else []

    def status(self) -> list[dict[str, Any]]:
        if self.hub is not None:
            return self.hub.status()
        return [
            {
                "name": c.name,
                "source": c.public_source,
                "kind": c.kind,
                "state": "failed",
                "error": self.why,
            }
            for c in self.cameras
        ]

    def stop(self) -> None:
        if self.hub is not None:
            self.hub.stop()


def event_sinks(app: Any) -> list[EventSink]:
    """Where the cameras' events go: the app's event outputs (history, MQTT, webhooks) once
    they are open on ``app.state.events``; none otherwise."""
    outputs = getattr(app.state, "events", None)
    return [outputs] if outputs is not None else []


def start_cameras(
    settings: WebSettings, state: WebState, sinks: list[EventSink] | None = None
) -> Cameras:
    """Start a reader and a recognising thread per configured camera; their events go to
    ``sinks`` (and to any sink added to ``Cameras.sinks`` later)."""
    from facemetric.video.motion import MotionSettings
    from facemetric.video.pipeline import CameraHub, CameraWorker, PipelineOptions

    cameras = configured_cameras(settings)
    if not cameras:
        return Cameras(None, [], None)
    if state.recognizer is None:
        why = f"no model loaded: {state.model_error}"
        print(f"facemetric serve: cameras not started, {why}", file=sys.stderr, flush=True)
        return Cameras(None, cameras, why)
    options = PipelineOptions(
        threshold=settings.threshold,
        detect_size=settings.camera_detect_size,
        track_iou=settings.track_iou,
        track_min_frames=settings.track_min_frames,
        track_reembed_s=settings.track_reembed_s,
        track_max_missed=settings.track_max_missed,
        event_gap=settings.event_gap,
    )
    hub = CameraHub([])
    hub.sinks.extend(sinks or [])
    motion = MotionSettings(enabled=settings.camera_motion, refresh=settings.camera_motion_refresh)
    workers = [
        CameraWorker(
            c,
            state.recognizer,
            hub.sinks,
            options,
            motion=motion,
            max_pixels=settings.max_decode_pixels,
        )
        for c in cameras
    ]
    hub.add(workers)
    hub.start()
    names = ", ".join(f"{c.name} ({c.public_source})" for c in cameras)
    print(f"facemetric serve: cameras: {names}", file=sys.stderr, flush=True)
    return Cameras(hub, cameras, None)


def _cameras(request: Request) -> Cameras:
    found = getattr(request.app.state, "cameras", None)
    return found if found is not None else Cameras(None, [], None)


CamerasDep = Annotated[Cameras, Depends(_cameras)]


@router.get("/api/cameras")
async def list_cameras(cameras: CamerasDep) -> dict[str, Any]:
    """Every server-side camera with its state, the reason when it is not live, frames a second
    and its source without credentials."""
    return {"cameras": cameras.status()}


@router.get(
    "/api/cameras/{name}/frame.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def camera_frame(name: str, cameras: CamerasDep) -> Response:
    """The camera's newest recognised frame with boxes and names drawn (JPEG)."""
    worker = cameras.hub.get(name) if cameras.hub is not None else None
    if worker is None:
        if any(c.name == name for c in cameras.cameras):
            raise HTTPException(503, f"camera {name!r} is not running: {cameras.why}")
        raise HTTPException(404, f"no camera named {name!r}")
    latest = worker.pipeline.latest
    if latest is None:
        state = worker.reader.state
        why = f": {worker.reader.error}" if worker.reader.error else ""
        raise HTTPException(503, f"camera {name!r} has no frame yet ({state}{why})")
    return Response(
        await run_in_threadpool(latest.jpeg),  # encoding takes milliseconds: off the loop
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store", "X-Frame-Time": f"{latest.frame.time:.3f}"},
    )


__all__ = ["Cameras", "check_cameras_at_start", "configured_cameras", "router", "start_cameras"]
