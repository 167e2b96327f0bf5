"""Request guards: trusted hosts, body size and time limits, security headers, origins.

Plain ASGI middlewares (no dependency beyond Starlette) so they see every request, WebSocket
handshakes included, before any route does. Hosts are checked against an allow-list (the bound
host, localhost and ``allowed_hosts``), which stops DNS rebinding; WebSocket handshakes and
requests other than GET/HEAD/OPTIONS from a browser must come from the server's own origin or one
in ``cors_origins``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
ALL_INTERFACES = ("0.0.0.0", "::", "")
# Pages and the API: scripts, styles and connections only from this server, nothing framed.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


def split_host(value: str) -> tuple[str, str] | None:
    """``host[:port]`` (``[v6]:port`` too) -> (lower-case host, port or ""); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        host, _, port = value.partition(":")
    if not host or (port and not port.isdigit()) or any(c in host for c in " /\\@;,\"'"):
        return None
    return host, port


def trusted_hosts(bound: str, extra: Iterable[str]) -> frozenset[str]:
    """Host names the server answers to: the bound host, localhost names and ``extra``."""
    names = {h.strip().lower().strip("[]") for h in (*LOCAL_HOSTS, *extra) if h.strip()}
    if bound.strip() not in ALL_INTERFACES:
        names.add(bound.strip().lower().strip("[]"))
    return frozenset(names)


class TrustedHost:
    """Refuse requests (and WebSocket handshakes) whose ``Host`` is not an allowed name.

    A page on another site can make a browser talk to 127.0.0.1 through a DNS name it controls
    (DNS rebinding); such requests carry that name in ``Host`` and are refused here.
    """

    def __init__(self, app: ASGIApp, hosts: frozenset[str], any_host: bool = False) -> None:
        self.app = app
        self.hosts = hosts
        self.any_host = any_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any_host:
            await self.app(scope, receive, send)
            return
        raw = _header(scope, b"host")
        parsed = split_host(raw) if raw is not None else None
        if parsed is not None and parsed[0] in self.hosts:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "host not allowed"})
            return
        shown = "no Host header" if raw is None else f"host {raw[:100]!r}"
        detail = (
            f"{shown} is not served here; start the server with --allowed-hosts NAME "
            "to answer to another name"
        )
        await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)


def origin_allowed(scope: Scope, allowed: Iterable[str]) -> bool:
    """May a WebSocket handshake or a POST with this ``Origin`` go on? No ``Origin`` (not a
    browser), the server's own origin (same host and port as ``Host``), or one in ``allowed``."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    if origin.rstrip("/") in {o.rstrip("/") for o in allowed}:
        return True
    parts = urlsplit(origin)
    host = _header(scope, b"host")
    return (
        parts.scheme in ("http", "https")
        and host is not None
        and parts.netloc.lower() == host.strip().lower()
    )


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SameOriginWrites:
    """Refuse (403) requests that change or compute something (POST, DELETE, ...) sent by a
    browser from another site's page: its ``Origin`` is neither this server's nor one in
    ``allowed``. Such a page cannot read the answer, but without this it could make visitors'
    browsers spend the server's CPU on ``/api/identify`` and ``/api/enroll/preview``, which
    need no token. Clients that are not browsers send no ``Origin`` and are not affected."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = tuple(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method", "GET") in SAFE_METHODS
            or origin_allowed(scope, self.allowed)
        ):
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin") or ""
        detail = (
            f"origin {origin[:100]!r} may not {scope.get('method')} {scope.get('path')}: only "
            "this server's own pages and the origins in cors_origins may"
        )
        await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)


class SecurityHeaders:
    """Add ``nosniff``, no framing and a CSP without inline script to every HTTP answer."""

    def __init__(self, app: ASGIApp, same_origin_resources: bool = True) -> None:
        self.app = app
        self.same_origin_resources = same_origin_resources

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host") or ""  # checked by TrustedHost before this point
        sockets = f" ws://{host} wss://{host}" if split_host(host) else ""
        csp = f"{PAGE_CSP}; connect-src 'self'{sockets}"  # /docs too: its assets are ours
        extra = [
            (b"content-security-policy", csp.encode("latin-1")),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if self.same_origin_resources:  # other sites cannot embed gallery faces
            extra.append((b"cross-origin-resource-policy", b"same-origin"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimits:
    """Refuse HTTP bodies over ``limit`` bytes with 413, whether announced or streamed
    (chunked), and bodies not received within ``timeout`` seconds with 408."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            await JSONResponse({"detail": self.too_large()}, status_code=413)(scope, receive, send)
            return
        seen = 0
        done = False
        deadline: float | None = None

        async def limited_receive() -> Message:
            nonlocal seen, done, deadline
            if done:  # after the body: waiting for a disconnect is not limited
                return await receive()
            if deadline is None:
                deadline = time.monotonic() + self.timeout
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise HTTPException(
                    408, f"request body not received within {self.timeout:g} s (body_timeout)"
                ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, self.too_large())
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:  # raised by limited_receive outside a route's own handling
            if started:
                raise
            body = {"detail": exc.detail}
            await JSONResponse(body, status_code=exc.status_code)(scope, receive, send)

    def too_large(self) -> str:
        return f"request body over the {self.limit:,} byte limit (max_upload_bytes)"


# ---- read access to events and camera pictures: the viewer token ---------------------------------
VIEWER_COOKIE = "facemetric_viewer"
VIEWER_COOKIE_DAYS = 30


def viewer_token_needed(settings: Any) -> bool:
    """Do events, snapshots and camera pictures need a token? Whenever the server listens
    beyond the loopback interface (or ``viewer_token_required`` is ``always``)."""
    if getattr(settings, "viewer_token_required", "auto") == "always":
        return True
    return settings.host.strip().lower().strip("[]") not in LOCAL_HOSTS


def resolve_viewer_token(settings: Any) -> tuple[str, bool]:
    """The configured viewer token, or a fresh random one (``generated`` = True)."""
    token = getattr(settings, "viewer_token", None)
    if token is not None and token.get_secret_value():
        return token.get_secret_value(), False
    return secrets.token_urlsafe(24), True


def viewer_cookie_value(viewer_token: str) -> str:
    """What the page's cookie holds: derived from the viewer token (not the token itself), so
    a new token ends every session."""
    return hmac.new(viewer_token.encode("utf-8"), b"facemetric-viewer", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def viewer_allowed(connection: HTTPConnection) -> bool | None:
    """True: may read; None: no credentials given; False: wrong ones."""
    state = connection.app.state
    if not getattr(state, "viewer_required", False):
        return True
    header = connection.headers.get("authorization") or ""
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        tokens = (getattr(state, "viewer_token", ""), getattr(state, "admin_token", ""))
        return any(t and _same(given.strip(), t) for t in tokens)
    cookie = connection.cookies.get(VIEWER_COOKIE)
    if cookie:
        return _same(cookie, viewer_cookie_value(state.viewer_token))
    return None


def require_viewer(connection: HTTPConnection) -> None:
    """A dependency for who-was-seen-where reads (events, snapshots, live camera pictures, HTTP
    or WebSocket): open on a server bound to 127.0.0.1, else the viewer (or admin) token as
    ``Authorization: Bearer TOKEN`` or the page's cookie (``POST /api/session``)."""
    allowed = viewer_allowed(connection)
    if allowed:
        return
    if allowed is None:
        raise HTTPException(
            401,
            "viewer token required: send 'Authorization: Bearer TOKEN' (the viewer or admin "
            "token printed by facemetric serve) or sign in on the page",
        )
    raise HTTPException(403, "wrong viewer token")


# Every router that shows people, faces, events, corrections or camera pictures takes this one
# dependency (``APIRouter(dependencies=VIEWER_ONLY)``), so no route of theirs can be left open;
# tests/test_web_access.py walks the app's routes and fails on a personal one without it.
VIEWER_ONLY = [Depends(require_viewer)]
