"""The gateway's HTTP/1.1 server protocol: uvicorn's httptools one, with a
deadline on the request head.

uvicorn times out an idle connection only between two requests (its
keep-alive timeout). A connection that never sends a byte, or sends a
request line and then a header now and then, is kept for ever: a few
thousand of them (slowloris) take every file descriptor of the process, and
the gateway stops accepting anyone. nginx closes such a connection after
``client_header_timeout``; so does this protocol, after
``SPP_GATEWAY_HEADER_TIMEOUT`` seconds from the connection's first moment,
or from the first byte of each later request, until its head is complete.
The body has its own deadlines (:class:`~spp_gateway.hardening.RequestBounds`).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadTimeoutProtocol(HttpToolsProtocol):
    """httptools, closing connections whose request head is not complete in time."""

    head_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        # Nothing was asked yet that could be answered: close, as nginx does.
        if not self.transport.is_closing():
            self.transport.close()


def head_timeout_protocol(seconds: float) -> type[HeadTimeoutProtocol]:
    """The protocol class with its deadline, for ``uvicorn.run(http=...)``."""
    return type("GatewayHttpProtocol", (HeadTimeoutProtocol,), {"head_timeout": seconds})
