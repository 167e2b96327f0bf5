"""One connection limit for HTTP requests and WebSocket streams together.

uvicorn's ``limit_concurrency`` is checked only for ordinary HTTP requests: a WebSocket upgrade
is handled before it, so 130 idle streams all got ``101`` and went on being served while every
HTTP client got ``503`` (their connections filled uvicorn's count). Here the app counts what it
serves, streams and requests alike, from the moment the app sees them to their end; the event
loop runs one check at a time, so the count cannot be overrun by a burst. Once
``max_connections`` are served, a new stream is accepted and closed at once with 1013 ("try
again later", with a reason the live page shows) and a new request gets 503; ``/api/health`` is
always answered, uncounted, so an operator can see the server and its counts under any load.

A slot held by a client that sends nothing useful is reclaimed when another client needs it: a
request whose body arrives slower than ``min_body_rate`` (an upload trickled a byte every 2 s
held its slot until ``body_timeout``) gets 408, and a stream that has sent no binary frame for
``RECLAIM_STREAM_AFTER`` seconds (text messages do not count) is closed with 1013. The one that
has been useless longest goes first. ``CloseUnfinished`` ends the connection after an error
answer to a body not yet received, so an upload refused with 413 or 408 is not read on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUSY_CLOSE_CODE = 1013  # RFC 6455 "Try Again Later": the server is overloaded
ALWAYS_ANSWERED = frozenset({"/api/health"})
RECLAIM_STREAM_AFTER = 10.0  # seconds without a binary frame before a stream's slot may go
RECLAIM_GRACE = 2.0  # seconds a request's body is given before its rate is judged


@dataclass(eq=False)
class Holder:
    """One request or stream being served, and how useful it has been."""

    kind: str
    started: float
    last_useful: float
    body_done: bool = False
    received: int = 0
    reclaimed: asyncio.Event = field(default_factory=asyncio.Event)

    def useless_since(self, now: float, min_body_rate: float) -> float | None:
        """Since when this holder has been sending nothing useful (None: it is useful)."""
        if self.reclaimed.is_set():
            return None  # already on its way out
        if self.kind == "websocket":
            idle_since = self.last_useful
            return idle_since if now - idle_since >= RECLAIM_STREAM_AFTER else None
        if self.body_done or now - self.started < RECLAIM_GRACE:
            return None  # an answer being computed is useful work
        if self.received >= min_body_rate * (now - self.started - RECLAIM_GRACE):
            return None
        return self.started + self.received / max(min_body_rate, 1e-9)


@dataclass
class ConnectionCount:
    """What the server serves now, the most it served at once, and how many it refused."""

    limit: int
    streams: int = 0
    requests: int = 0
    peak: int = 0
    refused_streams: int = 0
    refused_requests: int = 0
    reclaimed: int = 0
    min_body_rate: float = 1024.0
    holders: set[Holder] = field(default_factory=set)

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
            "reclaimed": self.reclaimed,
        }

    def reclaim_one(self) -> bool:
        """Reclaim the slot of the holder useless longest; False when every holder is useful."""
        now = time.monotonic()
        best: tuple[float, Holder] | None = None
        for holder in self.holders:
            since = holder.useless_since(now, self.min_body_rate)
            if since is not None and (best is None or since < best[0]):
                best = (since, holder)
        if best is None:
            return False
        best[1].reclaimed.set()
        self.reclaimed += 1
        return True

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
        if count.open >= count.limit and not count.reclaim_one():
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
        now = time.monotonic()
        holder = Holder(kind, now, now, body_done=not _has_body(scope))
        count.holders.add(holder)
        try:
            await self.app(scope, self._watched(holder, receive, send), send)
        finally:
            count.holders.discard(holder)
            if kind == "websocket":
                count.streams -= 1
            else:
                count.requests -= 1

    def _watched(self, holder: Holder, receive: Receive, send: Send) -> Receive:
        """``receive`` that records useful input and ends when the holder's slot is reclaimed."""

        # The receive in flight is kept across calls: a caller that gives up waiting (a
        # stream's idle tick cancels its receive) must not leave a task that swallows the
        # next message.
        pending: asyncio.Future[Any] | None = None

        async def watched_receive() -> Message:
            nonlocal pending
            if holder.body_done and holder.kind == "http" and pending is None:
                return await receive()  # after the body: only a disconnect can come
            if pending is None:
                pending = asyncio.ensure_future(receive())
            if not holder.reclaimed.is_set():
                waiting: asyncio.Future[Any] = asyncio.ensure_future(holder.reclaimed.wait())
                try:
                    await asyncio.wait({pending, waiting}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiting.cancel()
            if not pending.done():  # reclaimed for another client
                pending.cancel()
                pending = None
                if holder.kind == "websocket":
                    reason = "slot reclaimed: no frame sent for a while; reconnect to go on"
                    close = {"type": "websocket.close", "code": BUSY_CLOSE_CODE, "reason": reason}
                    await send(close)
                    return {"type": "websocket.disconnect", "code": BUSY_CLOSE_CODE}
                raise HTTPException(
                    408,
                    f"request body slower than {self.count.min_body_rate:g} bytes/s "
                    "(min_body_rate) while the server was busy; its slot went to another client",
                )
            message: Message = pending.result()
            pending = None
            now = time.monotonic()
            if message["type"] == "http.request":
                holder.received += len(message.get("body", b""))
                holder.body_done = not message.get("more_body", False)
                holder.last_useful = now
            elif message["type"] == "websocket.receive" and message.get("bytes"):
                holder.last_useful = now  # only a frame is useful; text messages are not
            return message

        return watched_receive

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


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    length = headers.get(b"content-length", b"").strip()
    return b"transfer-encoding" in headers or (length.isdigit() and int(length) > 0)


class CloseUnfinished:
    """End the connection after an error answer to a request whose body has not all arrived:
    without ``Connection: close`` uvicorn reads on (and drops) whatever the client still sends,
    for as long as it sends (2 GiB after a 413; a trickle for minutes after a 400)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        done = False

        async def tracking_receive() -> Message:
            nonlocal done
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400 and not done:
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracking_receive, closing_send)
