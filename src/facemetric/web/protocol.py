"""uvicorn's h11 HTTP protocol with a deadline and a size limit for each request head.

uvicorn bounds idle keep-alive connections, but a client that opens a connection and sends its
request line and headers slowly (or never) holds it for ever. Here each request head must arrive
within ``header_timeout`` seconds of the connection opening (or of the previous answer), else the
connection is closed.

h11 bounds a head's size (``h11_max_incomplete_event_size``) only while the head is incomplete:
a 70 KB head sent in one write arrives in one read, is parsed whole and was answered 200. So the
whole head is measured here before h11 parses it, however many reads brought it (pipelined
heads too), and one over ``max_header_bytes`` gets 400 and the connection is closed.

Connections waiting for a request head (new ones, and idle keep-alive ones) are not counted by
the app; at most ``max_idle`` are kept, and one more closes the one waiting longest: 230 slow
heads had filled uvicorn's socket count and made every route, ``/api/health`` included, 503 (so
uvicorn's ``limit_concurrency`` is not used; the app counts what it serves, ``web.limits``).

An answer sent before the request body has all arrived ends the connection: the client's
further bytes are dropped for a moment (so it can read the answer, not a reset) and the
connection is closed; uvicorn would otherwise read the rest of the body for as long as it came.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# The end of a request head, as h11 finds it (a blank line, with or without its CR).
_HEAD_END = re.compile(b"\n\r?\n")
LINGER_SECONDS = 2.0  # a refused connection drains this long before it is closed
LINGER_BYTES = 1 << 20  # ... or until this much more arrived


class _LingeringTransport:
    """The connection's transport as uvicorn's request cycle sees it: ``close()`` while the
    request body is still coming lingers (see ``GuardedH11Protocol.end_connection``)."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.end_connection()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedH11Protocol(H11Protocol):
    """``H11Protocol`` that closes connections whose request head is late or too large."""

    header_timeout: float = 10.0  # set per server by ``protocol_class``
    max_header_bytes: int = 64 * 1024
    max_idle: int = 100
    waiting: dict[GuardedH11Protocol, None]  # per server: connections without a request head

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._dropped = 0
        self._raw: asyncio.Transport | None = None

    def _wait_for_head(self) -> None:
        """Count this connection as waiting for a head; past ``max_idle``, close the oldest."""
        waiting = self.waiting
        waiting.pop(self, None)
        waiting[self] = None
        while len(waiting) > self.max_idle:
            oldest = next(iter(waiting))
            del waiting[oldest]
            if oldest._raw is not None and not oldest._raw.is_closing():
                oldest.logger.info("closing the connection waiting longest for a request head")
                oldest._raw.close()

    def end_connection(self) -> None:
        """Close the connection, lingering when the client is still sending a request body."""
        raw = self._raw
        if raw is None or raw.is_closing() or self._refused:  # closed, or already lingering
            return
        self.waiting.pop(self, None)
        if self.conn.their_state is h11.SEND_BODY and raw.can_write_eof():
            self._refused = True  # what still comes is dropped (data_received)
            self.flow.resume_reading()
            raw.write_eof()
            self.loop.call_later(LINGER_SECONDS, raw.close)
        else:
            raw.close()

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self.transport.get_protocol() is not self:  # upgraded to a WebSocket
            return
        # IDLE: no complete request head since the timer was armed.
        if self.conn.their_state is h11.IDLE:
            self.logger.info("closing a connection whose request head did not arrive in time")
            self.transport.close()

    def handle_events(self) -> None:
        if self.conn.their_state is h11.IDLE and not self._refused:
            # Copying the buffer for every read of a slowly sent head would cost O(n^2): only
            # a buffer longer than the limit can hold a head over it.
            buffered = _buffered(self.conn)
            if (buffered is None or buffered > self.max_header_bytes) and self._head_too_large():
                return
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self.waiting.pop(self, None)

    def _head_too_large(self) -> bool:
        """Answer 400 and close when the request head waiting in h11's buffer (or the part of
        it received so far) is over ``max_header_bytes``."""
        data, _ = self.conn.trailing_data  # received, not yet parsed: the head comes first
        end = _HEAD_END.search(data)
        size = end.end() if end is not None else len(data)
        if size <= self.max_header_bytes:
            return False
        self.logger.warning("refused a request head of %d bytes (max_header_bytes)", size)
        detail = (
            f"request head of {size:,} bytes, over the {self.max_header_bytes:,} byte limit "
            "(max_header_bytes)"
        )
        body = json.dumps({"detail": detail}).encode()
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self._refused = True
        self.flow.resume_reading()  # drained and dropped, see data_received
        raw = self._raw
        assert raw is not None
        self.waiting.pop(self, None)
        if raw.can_write_eof():
            # Closing with unread bytes would reset the connection and the client might lose
            # the answer: end our side, drop what still comes, close after a moment.
            raw.write_eof()
            self.loop.call_later(LINGER_SECONDS, raw.close)
        else:
            raw.close()
        return True

    def data_received(self, data: bytes) -> None:
        if self._refused:  # the rest of a refused head or an answered body: dropped
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES and self._raw is not None:
                self._raw.close()
            return
        super().data_received(data)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._arm_head_timer()
        self._wait_for_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.SEND_BODY:  # answered before the body came: end it
            self.end_connection()
            return
        self._arm_head_timer()
        self._wait_for_head()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self.waiting.pop(self, None)
        wrapper = self.transport
        self.transport = self._raw or wrapper  # the stream gets the socket's own transport
        try:
            super().handle_websocket_upgrade(event)
        finally:
            self.transport = wrapper

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


def _buffered(conn: h11.Connection) -> int | None:
    """Bytes h11 holds unparsed, without copying them (None if h11 no longer says)."""
    try:
        return len(conn._receive_buffer)  # h11's ReceiveBuffer: len() is O(1)
    except (AttributeError, TypeError):
        return None


def protocol_class(
    header_timeout: float, max_header_bytes: int = 64 * 1024, max_idle: int = 100
) -> type[GuardedH11Protocol]:
    """A ``GuardedH11Protocol`` subclass with this server's head deadline and size limits and
    its own set of connections waiting for a head."""
    attributes: dict[str, Any] = {
        "header_timeout": header_timeout,
        "max_header_bytes": max_header_bytes,
        "max_idle": max_idle,
        "waiting": {},
    }
    return type("FacemetricH11Protocol", (GuardedH11Protocol,), attributes)
