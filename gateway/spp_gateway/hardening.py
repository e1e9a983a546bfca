"""HTTP hardening around the whole gateway: pure ASGI, one pass per request.

* The kit's :class:`~spp_shared.kit.security_headers.SecurityHeaders`, outermost
  (app.py), puts the browser-facing security headers on every response (the
  proxied ones, the errors, even a crash's 500) and strips the headers that
  advertise the software behind.
* :class:`RequestBounds` refuses what no route needs before anything reads
  it: oversized header blocks (431), request targets (414) and bodies (413),
  the last by Content-Length up front or by counting a streamed body;
  bodies that stall or trickle (408); and control characters in the path or
  query string (400, as the services do: the gateway's own resources read
  its database, where NUL is a 500). Refused bodies are read (up to a bound)
  before the answer, so that a client still writing can read it.
* :func:`cors` lets the ministry front-ends, and only them, call from a browser.

Problem answers name what is wrong and the limit, never a header's value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spp_gateway.policy import RouteGroup, classify
from spp_gateway.routes import API_PREFIX
from spp_gateway.settings import GatewaySettings
from spp_shared.kit.errors import problem_body, send_problem_response
from spp_shared.kit.guards import has_control_characters

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_EXPECT = b"expect"
_CLOSE = ((b"connection", b"close"),)


async def _send_problem(
    send: Send,
    scope: Scope,
    status: int,
    type_: str,
    title: str,
    detail: str,
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    **extra: Any,
) -> None:
    state = scope.get("state")
    # The path may be the very thing refused (8 KB of it, or control bytes).
    instance = scope["path"].encode("unicode_escape").decode()[:200]
    body = problem_body(
        status=status,
        type_=type_,
        title=title,
        detail=detail,
        instance=instance,
        request_id=state.get("request_id") if state else None,
        **extra,
    )
    await send_problem_response(send, body, headers=headers)


class BodyRefused(Exception):
    """A request body the gateway stopped reading: too large, or too slow.

    Raised by the ``receive`` that :class:`RequestBounds` hands to the app;
    whoever reads the body through a client library (aiohttp wraps it) should
    let it, or the exception it finds in the chain, propagate: the middleware
    then answers with :attr:`status`.
    """

    status = 400
    type_ = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BodyTooLarge(BodyRefused):
    """The body went over its route's limit."""

    status = 413
    type_ = "payload-too-large"
    title = "Payload too large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than {limit} bytes, the limit for this route.",
            limit_bytes=limit,
        )
        self.limit = limit


class BodyTimedOut(BodyRefused):
    """The body stalled (nothing for too long) or trickled past its deadline."""

    status = 408
    type_ = "request-timeout"
    title = "Request timeout"

    def __init__(self, detail: str, seconds: float) -> None:
        super().__init__(detail, timeout_seconds=seconds)


# A client that writes its whole body before reading (urllib, requests) gets
# the 413 only if the server read what it sent: closing with unread bytes
# makes the kernel answer with a reset, and the client sees that instead.
# nginx keeps reading for a while after refusing (lingering close); an ASGI
# app cannot read after its answer, so the gateway reads first, this much at
# most, then answers.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0


class BodyPolicy:
    """How a route's request body is handled: its size limit, and whether the
    gateway reads it whole before calling the upstream or streams it."""

    __slots__ = ("default_limit", "limits", "max_buffered")

    def __init__(self, settings: GatewaySettings) -> None:
        self.default_limit = settings.body_limit_default
        self.limits: dict[RouteGroup, int] = {
            RouteGroup.read: settings.body_limit_read,
            RouteGroup.write: settings.body_limit_write,
            RouteGroup.submission: settings.body_limit_submission,
            RouteGroup.bulk: settings.body_limit_bulk,
            RouteGroup.admin: settings.body_limit_admin,
        }
        self.max_buffered = settings.max_buffered_body

    def limit(self, method: str, path: str) -> int:
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            return self.limits[classify(method, path)]
        return self.default_limit

    def streamed(self, method: str, path: str) -> bool:
        """True when the body may be too large to hold: it streams upstream."""
        return self.streams(self.limit(method, path))

    def streams(self, limit: int) -> bool:
        """Whether a body allowed ``limit`` bytes streams rather than being held."""
        return limit > self.max_buffered


class RequestBounds:
    """431, 414, 413 and 408 before the app reads anything it should not have to.

    A body is read under a deadline: :attr:`idle` seconds at most between two
    reads, and for a body the gateway holds whole (a small one), :attr:`total`
    seconds for all of it. A body that stalls is answered 408 and its
    connection closed, so it holds nothing upstream for long.
    """

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.max_header_bytes = settings.max_header_bytes
        self.max_url_bytes = settings.max_url_bytes
        self.bodies = BodyPolicy(settings)
        self.idle = settings.body_idle_timeout
        self.total = settings.body_receive_timeout
        self.upload_idle = settings.upload_idle_timeout
        self.upload_min_rate = settings.upload_min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        size = 0
        length: bytes | None = None
        chunked = False
        expect_continue = False
        for name, value in scope["headers"]:
            size += len(name) + len(value) + 4  # "name: value\r\n"
            if name == _CONTENT_LENGTH:
                length = value
            elif name == _TRANSFER_ENCODING:
                chunked = True
            elif name == _EXPECT:
                expect_continue = value.lower() == b"100-continue"
        if size > self.max_header_bytes:
            await _send_problem(
                send,
                scope,
                431,
                "request-header-fields-too-large",
                "Request header fields too large",
                f"The request headers total {size} bytes, more than the limit of "
                f"{self.max_header_bytes} bytes.",
                limit_bytes=self.max_header_bytes,
            )
            return

        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        target = len(raw_path) + (len(query) + 1 if query else 0)
        if target > self.max_url_bytes:
            await _send_problem(
                send,
                scope,
                414,
                "uri-too-long",
                "URI too long",
                f"The path and query string are {target} bytes long, more than the limit "
                f"of {self.max_url_bytes} bytes.",
                limit_bytes=self.max_url_bytes,
            )
            return
        if has_control_characters(raw_path, query):
            await _send_problem(
                send,
                scope,
                400,
                "bad-request",
                "Bad request",
                "The path or the query string contains control characters.",
            )
            return

        declared = int(length) if length is not None and length.isdigit() else None
        if declared == 0 or (
            declared is None
            and not chunked
            # HTTP/1.x: no Content-Length and no Transfer-Encoding means no body.
            and scope.get("http_version", "1.1") in ("1.0", "1.1")
        ):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        limit = self.bodies.limit(method, path)
        if declared is not None and declared > limit:
            # Unless the client waits for a 100 Continue (then it sends nothing),
            # read what it sends, so that it can read the answer.
            if not expect_continue and declared <= DRAIN_BYTES:
                await _drain(receive, DRAIN_BYTES)
            await _refuse(send, scope, BodyTooLarge(limit))
            return
        streamed = self.bodies.streams(limit)
        await self._guarded(
            scope,
            receive,
            send,
            limit,
            idle=self.upload_idle if streamed else self.idle,
            total=None if streamed else self.total,
        )

    async def _guarded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        limit: int,
        *,
        idle: float,
        total: float | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        begun = loop.time()
        deadline = None if total is None else begun + total
        # A streamed upload has no deadline (a large file on a slow line is
        # legitimate) but, after a grace period, a minimum average rate.
        min_rate = self.upload_min_rate if total is None else 0
        received = 0
        done = False  # the whole body is in: later receives only wait for a disconnect
        refused: BodyRefused | None = None
        started = False
        answered = False

        async def guarded_receive() -> Message:
            nonlocal received, done, refused
            if refused is not None:
                raise refused
            if done:
                return await receive()
            wait = idle if deadline is None else min(idle, deadline - loop.time())
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    message = await receive()
            except TimeoutError:
                stalled = deadline is None or loop.time() < deadline - 0.001
                refused = BodyTimedOut(
                    f"The request body stalled: nothing arrived for {idle:g} seconds."
                    if stalled
                    else f"The request body did not arrive whole within {total:g} seconds.",
                    idle if stalled else (total or idle),
                )
                raise refused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                # Before the limit check: a body whose last message crosses
                # the limit has nothing left to drain, and draining it would
                # wait for a disconnect the client never sends.
                done = not message.get("more_body", False)
                if received > limit:
                    refused = BodyTooLarge(limit)
                    raise refused
                elapsed = loop.time() - begun
                if not done and min_rate and elapsed > idle and received < min_rate * elapsed:
                    refused = BodyTimedOut(
                        f"The upload is too slow: {received} bytes in {elapsed:.0f} seconds, "
                        f"under the minimum of {min_rate} bytes a second.",
                        idle,
                    )
                    raise refused
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started, answered
            if answered:
                return  # the rest of the app's substitute answer
            if refused is not None and not started and message["type"] == "http.response.start":
                # The app turned the exception into an answer of its own (a
                # 500 or a 502): the truth is 408 or 413.
                answered = started = True
                await self._refuse(receive, send, scope, refused, drained=done)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, watched_send)
            if refused is not None and not started:  # the app swallowed it and said nothing
                await self._refuse(receive, send, scope, refused, drained=done)
        except Exception:
            # After a refusal, whatever escapes is a consequence of it (aiohttp
            # wraps the BodyRefused its body generator met, for one).
            if refused is None:
                raise
            if not started:
                await self._refuse(receive, send, scope, refused, drained=done)
            # Started already: all that can be done is to stop the response,
            # which the server signals by closing the connection.

    @staticmethod
    async def _refuse(
        receive: Receive, send: Send, scope: Scope, refused: BodyRefused, *, drained: bool
    ) -> None:
        if isinstance(refused, BodyTooLarge) and not drained:
            await _drain(receive, DRAIN_BYTES)
        await _refuse(send, scope, refused)


async def _drain(receive: Receive, max_bytes: int) -> None:
    """Read and drop the rest of a refused body: up to ``max_bytes``, for
    :data:`DRAIN_SECONDS` at most, until the client stops or leaves."""
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained <= max_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return


async def _refuse(send: Send, scope: Scope, refused: BodyRefused) -> None:
    # The connection closes after the answer: what is left of the body must
    # not be read as the next request.
    await _send_problem(
        send,
        scope,
        refused.status,
        refused.type_,
        refused.title,
        refused.detail,
        headers=_CLOSE,
        **refused.extra,
    )


CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CORS_REQUEST_HEADERS = (
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "Idempotency-Key",
    "X-Request-ID",
    "traceparent",
)
CORS_EXPOSED_HEADERS = (
    "ETag",
    "Location",
    "Retry-After",
    "X-Request-ID",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
)


def cors(app: ASGIApp, settings: GatewaySettings) -> ASGIApp:
    """Browser access for the configured front-ends; the app itself when there are none."""
    if not settings.cors_origins:
        return app
    # No credentials mode: callers send bearer tokens or API keys in headers,
    # never cookies, so a browser has no ambient authority to abuse.
    return CORSMiddleware(
        app,
        allow_origins=settings.cors_origins,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_REQUEST_HEADERS,
        allow_credentials=False,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )
