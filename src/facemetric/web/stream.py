"""WebSocket ``/ws/stream``: binary JPEG frames in, JSON results out, one frame in flight.

Protocol: on connect the server sends ``{"type": "hello", ...}`` (model status, threshold,
limits). The client then sends one binary image message and waits for its answer before sending
the next, so a slow server never builds a queue. Each answer is either
``{"type": "result", "frame", "faces", "width", "height", "threshold", "server_ms"}`` or
``{"type": "error", "frame", "code", "detail"}``; an error never closes the stream. Faces are
steadied across frames per connection (``facemetric.web.tracking``). Frames are never stored.

A browser may open the stream only from this server's own pages (or an origin in
``cors_origins``): another site's page is refused at the handshake (403), so it cannot read the
gallery's names through a visitor's browser. A stream without a frame for
``stream_idle_timeout`` seconds is closed (1001).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from facemetric.data.image import DecodedImage, ImageTooLargeError
from facemetric.errors import FacemetricError
from facemetric.tracking import Tracker
from facemetric.web.security import origin_allowed
from facemetric.web.state import ServiceUnavailable, WebState
from facemetric.web.uploads import ACCEPTED, sniff_image_type, to_original

log = logging.getLogger(__name__)
router = APIRouter()


class FrameError(Exception):
    """A frame the server cannot use; answered as ``{"type": "error"}``."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)


def recognize_frame(state: WebState, image: DecodedImage) -> list[dict[str, Any]]:
    """Recognise one decoded frame (runs on a worker thread); boxes in the frame's own pixels."""
    recognizer = state.recognizer
    if recognizer is None:
        raise FrameError("no_model", f"no model loaded: {state.model_error}")
    matches = recognizer.recognize(
        image.pixels,
        threshold=state.settings.threshold,
        detect_size=state.settings.stream_detect_size,
    )
    return to_original([m.to_dict() for m in matches], image.scale)


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


def make_tracker(state: WebState) -> Tracker:
    s = state.settings
    return Tracker(
        iou_threshold=s.track_iou,
        alpha=s.track_alpha,
        margin=s.track_hysteresis,
        max_missed=s.track_max_missed,
    )


async def answer(state: WebState, tracker: Tracker, frame: int, message: Any) -> dict[str, Any]:
    start = time.perf_counter()
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
        faces = await state.run(recognize_frame, state, image)
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
        "faces": tracker.update(faces, state.threshold),
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
    await websocket.accept()
    tracker = make_tracker(state)
    frame = 0
    idle = state.settings.stream_idle_timeout
    try:
        await websocket.send_json(hello(state))
        while True:
            try:
                message = await asyncio.wait_for(websocket.receive(), idle)
            except TimeoutError:
                await websocket.close(code=1001, reason=f"no frame for {idle:g} s")
                break
            if message["type"] == "websocket.disconnect":
                break
            frame += 1
            await websocket.send_json(await answer(state, tracker, frame, message))
    except WebSocketDisconnect:
        pass
