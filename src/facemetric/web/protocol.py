"""uvicorn's h11 HTTP protocol with a deadline for each request head.

uvicorn bounds idle keep-alive connections, but a client that opens a connection and sends its
request line and headers slowly (or never) holds it for ever. Here each request head must arrive
within ``header_timeout`` seconds of the connection opening (or of the previous answer), else the
connection is closed. The h11 protocol also bounds the head's size
(``h11_max_incomplete_event_size``), which uvicorn's default httptools protocol does not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """``H11Protocol`` that closes connections whose request head is late."""

    header_timeout: float = 10.0  # set per server by ``protocol_class``

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

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


def protocol_class(header_timeout: float) -> type[GuardedH11Protocol]:
    """A ``GuardedH11Protocol`` subclass with this server's head deadline."""
    return type("FacemetricH11Protocol", (GuardedH11Protocol,), {"header_timeout": header_timeout})
