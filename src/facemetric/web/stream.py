"""WebSocket ``/ws/stream``: binary JPEG frames in, JSON results out, one frame in flight.

Protocol: on connect the server sends ``{"type": "hello", ...}`` (model status, threshold,
limits). The client then sends one binary image message and waits for its answer before sending
the next, so a slow server never builds a queue. Each answer is either
``{"type": "result", "frame", "faces", "width", "height", "threshold", "server_ms"}`` or
``{"type": "error", "frame", "code", "detail"}``; an error never closes the stream. Faces are
followed across frames per connection (``facemetric.recognize.tracking``): each face's label is its
track's open-set decision over the track's own evidence, with the decision's reason. Frames
are never stored.

The stream is a camera like a server-side one: its steadied tracks go through an
``EventBuilder`` (``facemetric.events.builder``) into the app's event outputs
(``app.state.events``: history, notifiers), so the webcam's sightings become events in
``/api/events`` and on the timeline, with chip and snapshot. The camera is named ``webcam``
unless the page asks for another name with ``?camera=NAME`` (a camera name as in
``facemetric.video.sources``; a server-side camera's name is refused in any case or
punctuation: ``Door``, ``door.``), and its events say ``"source": "browser"``. Its events
close after ``event_gap`` seconds without the face, and all of them when the stream closes.

A browser may open the stream only from this server's own pages (or an origin in
``cors_origins``): another site's page is refused at the handshake (403), so it cannot read the
gallery's names through a visitor's browser. A stream without a frame for
``stream_idle_timeout`` seconds is closed (1001).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from facemetric.data.image import DecodedImage, ImageTooLargeError
from facemetric.errors import FacemetricError
from facemetric.events.builder import EventBuilder
from facemetric.events.model import EventSink
from facemetric.recognize.tracking import Tracker, TrackSettings
from facemetric.video.sources import NAME
from facemetric.web.security import origin_allowed
from facemetric.web.state import ServiceUnavailable, WebState
from facemetric.web.uploads import ACCEPTED, sniff_image_type, to_original

log = logging.getLogger(__name__)
router = APIRouter()
WEBCAM = "webcam"  # the browser webcam's camera name in events, unless the page gives one
BROWSER = "browser"  # the source of the webcam's events (a server camera's is "camera")


class FrameError(Exception):
    """A frame the server cannot use; answered as ``{"type": "error"}``."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)


class Session:
    """One stream's state: its tracker and its camera's event builder."""

    def __init__(self, state: WebState, camera: str, sinks: list[EventSink]) -> None:
        s = state.settings
        self.state = state
        self.camera = camera
        self.tracker = Tracker(
            TrackSettings(
                iou_threshold=s.track_iou,
                min_frames=s.track_min_frames,
                max_missed=s.track_max_missed,
                lost_s=s.event_gap,
                reembed_s=s.track_reembed_s,
            )
        )
        self.builder = EventBuilder(camera, sinks, gap=s.event_gap, source=BROWSER)
        self._lock = threading.Lock()  # a frame still on its thread when the stream is cancelled

    def step(self, image: DecodedImage, t: float) -> list[dict[str, Any]]:
        """Detect, follow and decide the tracks, feed the events (one worker thread; one frame
        in flight per stream, so the tracker and builder are never used by two threads at
        once). Boxes come back in the frame as it was sent."""
        recognizer = self.state.recognizer
        if recognizer is None:
            raise FrameError("no_model", f"no model loaded: {self.state.model_error}")
        faces, embeddings = self.tracker.step(
            recognizer,
            image.pixels,
            t,
            threshold=self.state.settings.threshold,
            detect_size=self.state.settings.stream_detect_size,
            source=f"camera:{self.camera}",
        )
        if self.builder.sinks:
            with self._lock:
                self.builder.update(faces, t, image.pixels, embeddings)
        return to_original(faces, image.scale)

    def expire(self, t: float) -> None:
        with self._lock:
            self.builder.expire(t)

    def close(self) -> None:
        """The camera went away: its events end here."""
        with self._lock:
            self.builder.close_all()


def camera_key(name: str) -> str:
    """A camera name as compared for clashes: case and everything but letters and digits
    dropped (``Door``, ``door `` and ``door.`` are all ``door``)."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def camera_name(websocket: WebSocket) -> str:
    """The stream's camera name (``?camera=NAME``, else ``webcam``); ``ValueError`` says why a
    name cannot be used: a browser never speaks for a server-side camera, whatever the case
    or punctuation of the name."""
    name = websocket.query_params.get("camera") or WEBCAM
    cameras = getattr(websocket.app.state, "cameras", None)
    key = camera_key(name)
    for camera in getattr(cameras, "cameras", None) or []:
        if key and camera_key(camera.name) == key:
            raise ValueError(
                f"camera name {name[:64]!r} is the server camera {camera.name!r}'s; "
                "a browser stream cannot use it"
            )
    if not NAME.match(name):
        raise ValueError(f"camera name {name[:64]!r}: use letters, digits, '_', '-' or '.'")
    return name


def event_sinks(websocket: WebSocket) -> list[EventSink]:
    outputs = getattr(websocket.app.state, "events", None)
    return [outputs] if outputs is not None else []


def check_frame(state: WebState, message: dict[str, Any]) -> bytes:
    """The frame's bytes, or ``FrameError`` saying why the message is unusable."""
    data = message.get("bytes")
    if data is None:
        raise FrameError(
            "text_message", "expected a binary JPEG frame, got a text message; send bytes"
        )
    limit = state.settings.max_frame_bytes
    if len(data) > limit:
        raise FrameError(
            "frame_too_large", f"frame of {len(data):,} bytes, over the {limit:,} byte limit"
        )
    if sniff_image_type(data) is None:
        raise FrameError("not_an_image", f"frame is not an image (accepted: {ACCEPTED})")
    return bytes(data)


def hello(state: WebState) -> dict[str, Any]:
    return {
        "type": "hello",
        "model_loaded": state.recognizer is not None,
        "model_error": state.model_error,
        "threshold": state.threshold,
        "max_frame_bytes": state.settings.max_frame_bytes,
    }


async def answer(session: Session, frame: int, message: Any) -> dict[str, Any]:
    state = session.state
    start = time.perf_counter()
    received = time.time()
    try:
        data = check_frame(state, message)
        if state.recognizer is None:
            raise FrameError("no_model", f"no model loaded: {state.model_error}")
        try:
            image = await state.decode(data, "frame", state.settings.max_frame_bytes)
        except ImageTooLargeError as exc:
            raise FrameError("frame_too_large", str(exc)) from exc
        except FacemetricError as exc:
            raise FrameError("bad_image", str(exc)) from exc
        faces = await state.run(session.step, image, received)
    except FrameError as exc:
        return {"type": "error", "frame": frame, "code": exc.code, "detail": exc.detail}
    except ServiceUnavailable as exc:
        return {"type": "error", "frame": frame, "code": "no_model", "detail": str(exc)}
    except FacemetricError as exc:
        return {"type": "error", "frame": frame, "code": "bad_frame", "detail": str(exc)}
    except Exception:  # one bad frame must not end the stream
        log.exception("frame %d failed", frame)
        return {"type": "error", "frame": frame, "code": "internal", "detail": "frame failed"}
    return {
        "type": "result",
        "frame": frame,
        "faces": faces,
        "width": image.width,
        "height": image.height,
        "threshold": state.threshold,
        "server_ms": round((time.perf_counter() - start) * 1000, 2),
    }


@router.websocket("/ws/stream")
async def stream(websocket: WebSocket) -> None:
    """Live recognition: one answer per binary frame, in order."""
    state: WebState = websocket.app.state.web
    if not origin_allowed(websocket.scope, state.settings.cors_origins):
        log.warning("stream refused: origin %r", websocket.headers.get("origin"))
        await websocket.close(code=1008, reason="origin not allowed")  # before accept: 403
        return
    try:
        camera = camera_name(websocket)
    except ValueError as exc:
        await websocket.close(code=1008, reason=str(exc)[:120])
        return
    await websocket.accept()
    session = Session(state, camera, event_sinks(websocket))
    frame = 0
    idle = state.settings.stream_idle_timeout
    tick = min(idle, session.builder.gap)  # a quiet stream's events still close on time
    last = time.monotonic()
    try:
        await websocket.send_json(hello(state))
        while True:
            left = idle - (time.monotonic() - last)
            try:
                if left <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(websocket.receive(), min(tick, left))
            except TimeoutError:
                session.expire(time.time())
                if time.monotonic() - last >= idle:
                    await websocket.close(code=1001, reason=f"no frame for {idle:g} s")
                    break
                continue
            if message["type"] == "websocket.disconnect":
                break
            frame += 1
            if message.get("bytes"):  # a text message (an error answer) keeps no stream alive
                last = time.monotonic()
            await websocket.send_json(await answer(session, frame, message))
    except WebSocketDisconnect:
        pass
    finally:
        session.close()
