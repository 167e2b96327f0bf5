"""``GET /api/faces/{id}/image``: a gallery face's aligned crop, by numeric id only.

Read like the people list (``VIEWER_ONLY``). Its URL names the picture's content (``?v=``), so
a browser may keep it for good; a bare URL is revalidated by its ETag.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path
from fastapi.responses import Response

from facemetric.errors import GalleryError
from facemetric.gallery.backend import StoreUnavailableError
from facemetric.gallery.records import chip_media_type
from facemetric.web.deps import MAX_FACE_ID, StateDep
from facemetric.web.security import VIEWER_ONLY

router = APIRouter(prefix="/api/faces", tags=["faces"], dependencies=VIEWER_ONLY)


def image_tag(face: Any) -> str:
    """What names a face's picture: its id and the hash of its photo (or chip), the ETag and
    the ``v`` of its URL; ids are never handed out twice, so neither is a tag."""
    return f"{int(face.id)}-{(face.digest or '')[:16]}"


@router.get(
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
