"""What the REST routers share: the app's state and the admin check as ``Annotated``
dependencies, uploaded photos read one at a time, and the person-name check.

Apart from the routers so that each router (people, events, unknown faces, corrections) uses
them without importing another router.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, File, HTTPException, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from facemetric.data.image import DecodedImage
from facemetric.errors import GalleryError
from facemetric.gallery.names import check_person_name
from facemetric.web.state import WebState

MAX_FACE_ID = 2**63 - 1  # SQLite's largest integer: no face id can be larger


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
