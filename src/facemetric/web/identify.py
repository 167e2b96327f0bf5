"""``POST /api/identify``: every face of one uploaded photo with its nearest gallery people.

Open like reading the gallery; decoding and recognition run on the worker threads, and a large
photo is searched reduced while the boxes answered are in its own pixels.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel

from facemetric.data.image import DecodedImage
from facemetric.web.deps import StateDep, decoded_photos
from facemetric.web.state import WebState
from facemetric.web.uploads import to_original

router = APIRouter(prefix="/api", tags=["identify"])


class IdentifyPublic(BaseModel):
    faces: list[dict[str, Any]]
    width: int
    height: int
    threshold: float
    server_ms: float


def identify_image(state: WebState, image: DecodedImage) -> list[dict[str, Any]]:
    recognizer = state.require_recognizer()
    matches = recognizer.recognize(image.pixels, threshold=state.settings.threshold)
    return to_original([m.to_dict() for m in matches], image.scale)


@router.post("/identify", response_model=IdentifyPublic)
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
