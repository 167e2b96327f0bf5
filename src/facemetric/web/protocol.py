"""uvicorn's h11 HTTP protocol with a deadline and a size limit for each request head.

uvicorn bounds idle keep-alive connections, but a client that opens a connection and sends its
request line and headers slowly (or never) holds it for ever. Here each request head must arrive
within ``header_timeout`` seconds of the connection opening (or of the previous answer), else the
connection is closed.

h11 bounds a head's size (``h11_max_incomplete_event_size``) only while the head is incomplete:
a 70 KB head sent in one write arrives in one read, is parsed whole and was answered 200. So the
whole head is measured here before h11 parses it, however many reads brought it (pipelined
heads too), and one over ``max_header_bytes`` gets 400 and the connection is closed.
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


class GuardedH11Protocol(H11Protocol):
    """``H11Protocol`` that closes connections whose request head is late or too large."""

    header_timeout: float = 10.0  # set per server by ``protocol_class``
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

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
        if self.conn.their_state is h11.IDLE:
            # Copying the buffer for every read of a slowly sent head would cost O(n^2): only
            # a buffer longer than the limit can hold a head over it.
            buffered = _buffered(self.conn)
            if (buffered is None or buffered > self.max_header_bytes) and self._head_too_large():
                return
        super().handle_events()

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
        if self.transport.can_write_eof():
            # Closing with unread bytes would reset the connection and the client might lose
            # the answer: end our side, drop what still comes, close after a moment.
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
        return True

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused head: dropped
        super().data_received(data)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
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
    header_timeout: float, max_header_bytes: int = 64 * 1024
) -> type[GuardedH11Protocol]:
    """A ``GuardedH11Protocol`` subclass with this server's head deadline and size limit."""
    attributes = {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes}
    return type("FacemetricH11Protocol", (GuardedH11Protocol,), attributes)
