"""The FastAPI application factory: ``create_app(settings)``.

The lifespan opens the gallery and loads the recognizer; importing this module loads nothing.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facemetric import __version__
from facemetric.errors import ConfigError, FacemetricError, FaceNotFoundError, ImageReadError
from facemetric.web import routes, stream
from facemetric.web.settings import WebSettings
from facemetric.web.state import ServiceUnavailable, load_state, resolve_admin_token

STATIC_DIR = files("facemetric.web") / "static"


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse HTTP bodies over ``limit`` bytes with 413, whether announced or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body over the {self.limit:,} byte limit (max_upload_bytes)"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def _error_status(exc: FacemetricError) -> int:
    if isinstance(exc, FaceNotFoundError):
        return 422
    if isinstance(exc, ImageReadError):
        return 415
    if type(exc).__name__ == "GalleryError" and "unknown" in str(exc).lower():
        return 404
    return 400


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """Build the web app; the model and gallery are loaded when it starts, not here."""
    settings = settings if settings is not None else WebSettings()
    admin_token, generated = resolve_admin_token(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = load_state(settings, admin_token, generated)
        app.state.web = state
        if generated:
            print(
                f"facemetric serve: admin token for this run (set FACEMETRIC_ADMIN_TOKEN to "
                f"choose one): {admin_token}",
                file=sys.stderr,
                flush=True,
            )
        if state.model_error:
            print(f"facemetric serve: {state.model_error}", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="facemetric",
        version=__version__,
        description="Live face recognition against a reference gallery.",
        lifespan=lifespan,
    )
    app.state.admin_token = admin_token
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.exception_handler(FacemetricError)
    async def _user_error(request: Request, exc: FacemetricError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_error_status(exc))

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    for router in routes.ROUTERS:
        app.include_router(router)
    app.include_router(stream.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    def _page() -> Any:
        return FileResponse(str(STATIC_DIR / "index.html"), media_type="text/html")

    app.add_api_route("/", _page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/gallery", _page, methods=["GET"], include_in_schema=False)
    return app


def serve(settings: WebSettings) -> None:
    """Run the app with uvicorn until interrupted (``facemetric serve``)."""
    import uvicorn

    from facemetric.data.detect import available_detectors

    if settings.detector not in available_detectors():  # fail before the server starts
        raise ConfigError(
            f"detector: unknown name {settings.detector!r}; "
            f"choose one of {', '.join(available_detectors())}"
        )
    app = create_app(settings)
    print(
        f"facemetric serve: http://{settings.host}:{settings.port}/ "
        f"(API docs at /docs, gallery at /gallery)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # Moderately oversized frames get an error answer; far larger ones close the socket (1009).
        ws_max_size=4 * settings.max_frame_bytes,
    )
