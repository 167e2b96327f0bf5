"""The FastAPI application factory: ``create_app(settings)``.

The lifespan opens the gallery and loads the recognizer; importing this module loads nothing.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from facemetric import __version__
from facemetric.data.image import ImageTooLargeError
from facemetric.errors import ConfigError, FacemetricError, FaceNotFoundError, ImageReadError
from facemetric.gallery.backend import FULL, StoreFullError, StoreUnavailableError
from facemetric.web import (
    cameras,
    corrections,
    enroll,
    events,
    faces,
    identify,
    people,
    status,
    stream,
    unknown,
)
from facemetric.web.limits import CloseUnfinished, ConnectionCount, ConnectionLimit
from facemetric.web.security import (
    ALL_INTERFACES,
    BodyLimits,
    SameOriginWrites,
    SecurityHeaders,
    TrustedHost,
    resolve_viewer_token,
    trusted_hosts,
    viewer_token_needed,
)
from facemetric.web.settings import WebSettings
from facemetric.web.state import (
    ServiceUnavailable,
    load_state,
    public_message,
    resolve_admin_token,
)

STATIC_DIR = files("facemetric.web") / "static"
log = logging.getLogger(__name__)


def _error_status(exc: FacemetricError) -> int:
    if isinstance(exc, StoreUnavailableError):
        return 503
    if isinstance(exc, FaceNotFoundError):
        return 422
    if isinstance(exc, ImageTooLargeError):
        return 413
    if isinstance(exc, ImageReadError):
        return 415
    if type(exc).__name__ == "GalleryError" and "unknown" in str(exc).lower():
        return 404
    return 400


def strict_form_text() -> None:
    """Form fields that are not valid UTF-8 keep U+FFFD where their bad bytes were, which the
    name check refuses ("bytes that were not valid UTF-8"). Starlette decodes such a field as
    Latin-1 instead: ``A\\xff\\xfeB`` was stored as the name "AÿþB"."""
    from starlette import formparsers

    def decode(src: bytes | bytearray, codec: str) -> str:
        try:
            return src.decode(codec, errors="replace")
        except LookupError:  # a charset Python does not know
            return src.decode("utf-8", errors="replace")

    if not hasattr(formparsers, "_user_safe_decode"):  # Starlette changed: say so, go on
        log.warning("starlette.formparsers has no _user_safe_decode; form text not checked")
        return
    formparsers._user_safe_decode = decode


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """Build the web app; the model and gallery are loaded when it starts, not here."""
    strict_form_text()
    settings = settings if settings is not None else WebSettings()
    admin_token, generated = resolve_admin_token(settings)
    viewer_token, viewer_generated = resolve_viewer_token(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = load_state(settings, admin_token, generated)
        if settings.keep_unknown and state.recognizer is not None:
            unknown.attach(state.recognizer, settings)
        app.state.web = state
        app.state.events = events.open_event_outputs(settings, state.store)
        state.start_following()
        app.state.cameras = cameras.start_cameras(settings, state, cameras.event_sinks(app))
        if generated:
            print(
                f"facemetric serve: admin token for this run (set FACEMETRIC_ADMIN_TOKEN to "
                f"choose one): {admin_token}",
                file=sys.stderr,
                flush=True,
            )
        if viewer_generated and app.state.viewer_required:
            print(
                f"facemetric serve: viewer token for this run (events, snapshots, camera "
                f"pictures; set FACEMETRIC_VIEWER_TOKEN to choose one): {viewer_token}",
                file=sys.stderr,
                flush=True,
            )
        if state.model_error_detail:
            print(f"facemetric serve: {state.model_error_detail}", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            app.state.cameras.stop()
            app.state.events.close()
            state.close()

    app = FastAPI(
        title="facemetric",
        version=__version__,
        description="Live face recognition against a reference gallery.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's own /docs and /redoc load Swagger UI from a CDN
        redoc_url=None,
    )
    app.state.admin_token = admin_token
    app.state.viewer_token = viewer_token
    app.state.viewer_required = viewer_token_needed(settings)
    app.state.connections = ConnectionCount(
        settings.max_connections, min_body_rate=settings.min_body_rate
    )
    # The last added runs first: security headers wrap the connection limit, which wraps the
    # host check, then the origin check of writes, the body limits and CORS (so whatever is
    # refused still gets the headers).
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimits, limit=settings.max_upload_bytes, timeout=settings.body_timeout)
    app.add_middleware(SameOriginWrites, allowed=settings.cors_origins)  # before any body
    app.add_middleware(
        TrustedHost,
        hosts=trusted_hosts(settings.host, settings.allowed_hosts),
        any_host="*" in settings.allowed_hosts,
    )
    app.add_middleware(ConnectionLimit, count=app.state.connections)  # streams included
    app.add_middleware(CloseUnfinished)  # an error answer before the whole body ends it
    app.add_middleware(SecurityHeaders, same_origin_resources=not settings.cors_origins)

    @app.exception_handler(FacemetricError)
    async def _user_error(request: Request, exc: FacemetricError) -> JSONResponse:
        if isinstance(exc, StoreFullError):  # 507 Insufficient Storage, with the reason
            log.error("%s %s: %s", request.method, request.url.path, exc)
            detail = f"the gallery's {FULL}: free space on the server, then try again"
            return JSONResponse({"detail": detail}, status_code=507)
        if isinstance(exc, StoreUnavailableError):  # the database's address stays in the log
            log.warning("%s %s: %s", request.method, request.url.path, exc)
            detail = "the gallery database does not answer now; try again later"
            return JSONResponse({"detail": detail}, status_code=503)
        detail = public_message(str(exc))  # no server folders in answers
        return JSONResponse({"detail": detail}, status_code=_error_status(exc))

    @app.exception_handler(OverflowError)
    async def _too_large_number(request: Request, exc: OverflowError) -> JSONResponse:
        # a number past SQLite's 64-bit integers that no check caught: not found, not a 500
        detail = "a number in the request is out of range (at most 9223372036854775807)"
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    for module in (status, identify, people, faces, enroll, stream):
        app.include_router(module.router)
    app.include_router(events.router)
    app.include_router(events.session_router)
    app.include_router(cameras.router)
    for router in unknown.ROUTERS:
        app.include_router(router)
    app.include_router(corrections.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    mount_api_docs(app)

    def _page() -> Any:
        return FileResponse(str(STATIC_DIR / "index.html"), media_type="text/html")

    app.add_api_route("/", _page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/gallery", _page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/events", _page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/cameras", _page, methods=["GET"], include_in_schema=False)
    return app


def mount_api_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI's files from the ``fastapi-offline`` package and our own
    initialiser, so the API docs work offline and under the pages' CSP; ``/favicon.ico``."""

    def _docs() -> Any:
        return FileResponse(str(STATIC_DIR / "docs.html"), media_type="text/html")

    def _favicon() -> Any:
        return FileResponse(str(STATIC_DIR / "favicon.svg"), media_type="image/svg+xml")

    app.add_api_route("/docs", _docs, methods=["GET"], include_in_schema=False)
    app.add_api_route("/favicon.ico", _favicon, methods=["GET"], include_in_schema=False)
    assets = StaticFiles(directory=str(files("fastapi_offline") / "static"))
    app.mount("/docs/assets", assets, name="docs-assets")


def return_freed_memory() -> None:
    """Have glibc serve blocks of 1 MiB and more (decoded photos) straight from the system, so
    freed ones go back at once instead of staying in the heap: after a burst of large uploads
    the server had kept gigabytes. Linux with glibc only; elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD, fixed (it no longer grows with use)
    except (OSError, AttributeError):
        pass


def serve(settings: WebSettings) -> None:
    """Run the app with uvicorn until interrupted (``facemetric serve``; the CLI has checked
    the gallery exists, unless ``--create``)."""
    import uvicorn

    from facemetric.data.detect import available_detectors

    if settings.detector not in available_detectors():  # fail before the server starts
        raise ConfigError(
            f"detector: unknown name {settings.detector!r}; "
            f"choose one of {', '.join(available_detectors())}"
        )
    from facemetric.web.protocol import protocol_class

    cameras.check_cameras_at_start(settings)  # a bad camera (a missing file too): one line, exit 2

    sock = listening_socket(settings.host, settings.port)  # a busy port: one line, exit 2
    return_freed_memory()
    app = create_app(settings)
    print(
        f"facemetric serve: http://{settings.host}:{settings.port}/ "
        f"(API docs at /docs, gallery at /gallery)",
        file=sys.stderr,
        flush=True,
    )
    if settings.host.strip() in ALL_INTERFACES and not settings.allowed_hosts:
        print(
            "facemetric serve: listening on every interface, but only requests naming "
            "localhost or 127.0.0.1 are answered: list the names clients use with "
            "--allowed-hosts",
            file=sys.stderr,
            flush=True,
        )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # h11, not httptools: the subclass bounds the request head's time and whole size.
        http=protocol_class(
            settings.header_timeout, settings.max_header_bytes, settings.max_idle_connections
        ),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_timeout,
        # The app counts the streams and requests it serves (web.limits), the protocol the
        # connections waiting for a head; uvicorn's limit_concurrency counted those too, so
        # slow heads made every route 503, /api/health included.
        limit_concurrency=None,
        # Moderately oversized frames get an error answer; far larger ones close the socket (1009).
        ws_max_size=4 * settings.max_frame_bytes,
    )
    uvicorn.Server(config).run(sockets=[sock])


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``, made before anything loads, so a port in use (or a
    host that is not this machine's) is one clear ``ConfigError`` rather than uvicorn's log and
    exit code 3. uvicorn serves on it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"--port {port}: {host}:{port} is already in use (another facemetric serve?); "
                "stop it or choose another --port"
            ) from None
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror})"
        ) from None
    sock.set_inheritable(True)
    return sock
