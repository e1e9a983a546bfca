"""The gateway's HTTP/1.1 server protocol: uvicorn's httptools one, with a
deadline on the request head.

uvicorn times out an idle connection only between two requests (its
keep-alive timeout). A connection that never sends a byte, or sends a
request line and then a header now and then, is kept for ever: a few
thousand of them (slowloris) take every file descriptor of the process, and
the gateway stops accepting anyone. nginx closes such a connection after
``client_header_timeout``; so does this protocol, after
``SPP_GATEWAY_HEADER_TIMEOUT`` seconds from the connection's first moment,
or from the first byte of each later request (once the answer before it is
complete), until its head is complete; and closes, with a 431, a head that
grows past its size limit before it is complete (the server would otherwise
buffer it whole before the app could refuse it).
The body has its own deadlines (:class:`~spp_gateway.hardening.RequestBounds`).
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from spp_shared.kit.errors import problem_body


class HeadTimeoutProtocol(HttpToolsProtocol):
    """httptools, closing connections whose request head is not complete in
    time, or grows past :attr:`head_limit` bytes before it is."""

    head_timeout: float = 10.0
    # The request line and headers together; the exact limits (414, 431 with
    # a problem body) are RequestBounds'. This one only stops the server from
    # buffering a head that never ends, before the app could see it.
    head_limit: int = 32 * 1024
    _head_timer: asyncio.TimerHandle | None = None
    _in_head = False
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.head_limit:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        # A request pipelined behind one still being answered waits its turn:
        # its deadline starts when that answer is complete, not before.
        if not self._answering():
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._in_head and not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

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
        if not self.transport.is_closing() and not self._answering():
            self.transport.close()

    def _refuse_head(self) -> None:
        self._cancel_head_timer()
        if not self._answering():  # never write into another request's answer
            self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()


_HEAD_PROBLEM = orjson.dumps(
    problem_body(
        status=431,
        type_="request-header-fields-too-large",
        title="Request header fields too large",
        detail="The request line and headers are too large.",
    )
)
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/problem+json\r\n"
    b"content-length: " + str(len(_HEAD_PROBLEM)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _HEAD_PROBLEM
)


def head_timeout_protocol(seconds: float, limit: int) -> type[HeadTimeoutProtocol]:
    """The protocol class with its deadline and head size, for ``uvicorn.run(http=...)``."""
    return type(
        "GatewayHttpProtocol",
        (HeadTimeoutProtocol,),
        {"head_timeout": seconds, "head_limit": limit},
    )
