"""One connection limit for HTTP requests and WebSocket streams together.

uvicorn's ``limit_concurrency`` is checked only for ordinary HTTP requests: a WebSocket upgrade
is handled before it, so 130 idle streams all got ``101`` and went on being served while every
HTTP client got ``503`` (their connections filled uvicorn's count). Here the app counts what it
serves, streams and requests alike, from the moment the app sees them to their end; the event
loop runs one check at a time, so the count cannot be overrun by a burst. Once
``max_connections`` are served, a new stream is accepted and closed at once with 1013 ("try
again later", with a reason the live page shows) and a new request gets 503; ``/api/health`` is
always answered, uncounted, so an operator can see the server and its counts under any load.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

BUSY_CLOSE_CODE = 1013  # RFC 6455 "Try Again Later": the server is overloaded
ALWAYS_ANSWERED = frozenset({"/api/health"})


@dataclass
class ConnectionCount:
    """What the server serves now, the most it served at once, and how many it refused."""

    limit: int
    streams: int = 0
    requests: int = 0
    peak: int = 0
    refused_streams: int = 0
    refused_requests: int = 0

    @property
    def open(self) -> int:
        return self.streams + self.requests

    def public(self) -> dict[str, int]:
        """The counts as ``/api/health`` shows them."""
        return {
            "max": self.limit,
            "open": self.open,
            "streams": self.streams,
            "requests": self.requests,
            "peak": self.peak,
            "refused_streams": self.refused_streams,
            "refused_requests": self.refused_requests,
        }

    def busy_reason(self) -> str:
        return f"server busy: {self.limit} connections served (max_connections); try again later"


class ConnectionLimit:
    """ASGI middleware: at most ``count.limit`` streams and requests served at once."""

    def __init__(self, app: ASGIApp, count: ConnectionCount) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (
            kind == "http" and scope.get("path") in ALWAYS_ANSWERED
        ):
            await self.app(scope, receive, send)
            return
        count = self.count
        if count.open >= count.limit:
            if kind == "websocket":
                count.refused_streams += 1
                await self._refuse_stream(receive, send)
            else:
                count.refused_requests += 1
                await self._refuse_request(scope, receive, send)
            return
        if kind == "websocket":
            count.streams += 1
        else:
            count.requests += 1
        count.peak = max(count.peak, count.open)
        try:
            await self.app(scope, receive, send)
        finally:
            if kind == "websocket":
                count.streams -= 1
            else:
                count.requests -= 1

    async def _refuse_stream(self, receive: Receive, send: Send) -> None:
        # Accepted, then closed: a browser sees the close code and reason, never a handshake's
        # HTTP status; no frame is read and nothing is sent but the close.
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        reason = self.count.busy_reason()
        await send({"type": "websocket.close", "code": BUSY_CLOSE_CODE, "reason": reason})

    async def _refuse_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": self.count.busy_reason()}, status_code=503, headers={"Retry-After": "1"}
        )
        await response(scope, receive, send)
