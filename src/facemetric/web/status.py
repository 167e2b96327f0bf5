"""``/api/health`` and ``/api/model``: is the server usable for recognition, and with what model.

Both are open (the page shows them before any sign-in); the gallery is asked on a quick thread,
never behind recognition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from facemetric.gallery.backend import FULL
from facemetric.web.deps import StateDep
from facemetric.web.events import events_health
from facemetric.web.state import WebState, public_message

UNAVAILABLE = "the gallery database does not answer"  # its address is the operator's business
FULL_REASON = f"the gallery's {FULL}"

router = APIRouter(prefix="/api", tags=["status"])


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


def gallery_health(state: WebState) -> tuple[int, int, GalleryHealth]:
    """People and faces (from this server's copy when it has one, else the store) and the
    gallery's state; asks the database whether it answers."""
    error = state.store.backend.ping()
    info = GalleryHealth(
        backend=state.store.kind,
        database="ok" if error is None else "unavailable",
        error=None if error is None else (FULL_REASON if error == FULL else UNAVAILABLE),
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


@router.get("/health", response_model=HealthPublic)
async def health(state: StateDep, request: Request) -> HealthPublic:
    """Is the server usable for recognition, and if not, why not."""
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


@router.get("/model", response_model=ModelPublic)
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
    file = Path(str(checkpoint)).name if checkpoint else None
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
