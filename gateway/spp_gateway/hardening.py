"""HTTP hardening around the whole gateway: pure ASGI, one pass per request.

* :class:`SecurityHeaders` puts the browser-facing security headers on every
  response (the proxied ones, the errors, even a crash's 500) and strips the
  headers that advertise the software behind.
* :class:`RequestBounds` refuses what no route needs before anything reads
  it: oversized header blocks (431), request targets (414) and bodies (413),
  the last by Content-Length up front or by counting a streamed body, and
  control characters in the path or query string (400, as the services do:
  the gateway's own resources read its database, where NUL is a 500).
* :func:`cors` lets the ministry front-ends, and only them, call from a browser.

Problem answers name what is wrong and the limit, never a header's value.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spp_gateway.policy import RouteGroup, classify
from spp_gateway.routes import API_PREFIX
from spp_gateway.settings import GatewaySettings
from spp_shared.kit.errors import problem_body, send_problem_response
from spp_shared.kit.guards import has_control_characters

DOCS_PATH = "/docs"

_CSP = b"content-security-policy"
_CACHE_CONTROL = b"cache-control"
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key"})
# Software banners: they only help whoever looks for a known vulnerability.
_BANNERS = frozenset({b"server", b"x-powered-by"})

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
)
# The API answers JSON and nothing else: a browser tricked into rendering a
# response as a page gets no script, style, frame or fetch.
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI: its script and stylesheet come from jsdelivr, its icons are data:
# URIs, and it fetches /openapi.json and the "try it out" calls from here. The
# one inline script (FastAPI's bootstrap) is allowed by its hash, taken from
# the page itself, so no other inline script could run. Inline styles stay
# allowed: Swagger UI sets some, and a style cannot run code.
_DOCS_CSP = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net{hashes}; "
    "style-src https://cdn.jsdelivr.net 'unsafe-inline'; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def docs_csp(html: bytes) -> bytes:
    """The docs page's CSP, allowing exactly the inline scripts of ``html``."""
    hashes = "".join(
        " 'sha256-" + base64.b64encode(hashlib.sha256(code).digest()).decode() + "'"
        for attrs, code in _INLINE_SCRIPT.findall(html)
        if b"src=" not in attrs.lower()
    )
    return _DOCS_CSP.format(hashes=hashes).encode()


def _secure(
    headers: Iterable[tuple[bytes, bytes]], csp: bytes, credentials: bool
) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    present: set[bytes] = set()
    for name, value in headers:
        lname = name.lower()
        if lname in _BANNERS:
            continue
        present.add(lname)
        out.append((name, value))
    for name, value in SECURITY_HEADERS:
        if name not in present:
            out.append((name, value))
    if _CSP not in present:
        out.append((_CSP, csp))
    # A response to an authenticated request may hold what only this caller
    # may see: no shared or browser cache keeps it unless the app says so.
    if credentials and _CACHE_CONTROL not in present:
        out.append((_CACHE_CONTROL, b"no-store"))
    return out


async def _send_problem(
    send: Send,
    scope: Scope,
    status: int,
    type_: str,
    title: str,
    detail: str,
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
    await send_problem_response(send, body)


class SecurityHeaders:
    """Security headers on every HTTP response; banners removed.

    Put it outermost: it also answers a 500 (with the headers) when an
    exception escapes before any response started, then re-raises so the
    server still logs it.
    """

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentials = False
        for name, _ in scope["headers"]:
            if name in _CREDENTIAL_HEADERS:
                credentials = True
                break
        started = False
        inner = (
            self._docs_send(send, credentials)
            if scope["path"] == DOCS_PATH
            else self._api_send(send, credentials)
        )

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await inner(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if not started:
                await _send_problem(
                    inner,
                    scope,
                    500,
                    "internal-error",
                    "Internal error",
                    "An unexpected error occurred; quote the request id.",
                )
            raise

    @staticmethod
    def _api_send(send: Send, credentials: bool) -> Send:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _secure(message.get("headers", ()), API_CSP, credentials)
                message = {**message, "headers": headers}
            await send(message)

        return secured

    @staticmethod
    def _docs_send(send: Send, credentials: bool) -> Send:
        # The CSP needs the hashes of the page's inline scripts, so the (small)
        # page is held until its last byte, then sent with its headers.
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = _secure(start.get("headers", ()), docs_csp(body), credentials)
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return buffered


class BodyTooLarge(Exception):
    """A streamed request body went over its route's limit while being read.

    Raised by the ``receive`` that :class:`RequestBounds` hands to the app;
    whoever reads the body through a client library (aiohttp wraps it) should
    let it, or the exception it finds in the chain, propagate: the middleware
    then answers 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes")
        self.limit = limit


def _too_large_detail(limit: int) -> str:
    return f"The request body is larger than {limit} bytes, the limit for this route."


class RequestBounds:
    """431, 414 and 413 before the app reads anything it should not have to."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.max_header_bytes = settings.max_header_bytes
        self.max_url_bytes = settings.max_url_bytes
        self.default_body_limit = settings.body_limit_default
        self.body_limits: dict[RouteGroup, int] = {
            RouteGroup.read: settings.body_limit_read,
            RouteGroup.write: settings.body_limit_write,
            RouteGroup.submission: settings.body_limit_submission,
            RouteGroup.bulk: settings.body_limit_bulk,
            RouteGroup.admin: settings.body_limit_admin,
        }

    def body_limit(self, method: str, path: str) -> int:
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            return self.body_limits[classify(method, path)]
        return self.default_body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        size = 0
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            size += len(name) + len(value) + 4  # "name: value\r\n"
            if name == _CONTENT_LENGTH:
                length = value
            elif name == _TRANSFER_ENCODING:
                chunked = True
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

        limit = self.body_limit(scope["method"], scope["path"])
        if length is not None and length.isdigit():
            if int(length) > limit:
                await self._too_large(send, scope, limit)
                return
            # The server reads exactly Content-Length bytes: nothing to count.
            await self.app(scope, receive, send)
            return
        # HTTP/1.x: no Content-Length and no Transfer-Encoding means no body.
        if not chunked and scope.get("http_version", "1.1") in ("1.0", "1.1"):
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        exceeded = False
        started = False
        answered = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started, answered
            if answered:
                return  # the rest of the app's substitute answer
            if exceeded and not started and message["type"] == "http.response.start":
                # The app turned the exception into an answer of its own (a
                # 500 or a 502): the truth is 413.
                answered = started = True
                await self._too_large(send, scope, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
            if exceeded and not started:  # the app swallowed it and said nothing
                await self._too_large(send, scope, limit)
        except Exception:
            # After the limit, whatever escapes is a consequence of it (aiohttp
            # wraps the BodyTooLarge its body generator met, for one).
            if not exceeded:
                raise
            if not started:
                await self._too_large(send, scope, limit)
            # Started already: all that can be done is to stop the response,
            # which the server signals by closing the connection.

    @staticmethod
    async def _too_large(send: Send, scope: Scope, limit: int) -> None:
        await _send_problem(
            send,
            scope,
            413,
            "payload-too-large",
            "Payload too large",
            _too_large_detail(limit),
            limit_bytes=limit,
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
