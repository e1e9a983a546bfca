"""Browser-facing security headers on every answer of every app.

The gateway puts them on everything it answers, the services' answers
included; each service puts them on its own too, so an answer is just as
safe when a service is reached without the gateway (its /docs page on the
internal network, an ingress sending traffic where it should not). The
gateway keeps a header a service already set, so nothing is doubled.

Banners (``Server``, ``X-Powered-By``) are removed: they only help whoever
looks for a known vulnerability.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spp_shared.kit.errors import internal_error_problem, send_problem_response

DOCS_PATH = "/docs"

_CSP = b"content-security-policy"
_CACHE_CONTROL = b"cache-control"
_CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key"})
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


class SecurityHeaders:
    """Security headers on every HTTP response; banners removed.

    ``answer_crashes``: when an exception escapes before any response
    started, answer the 500 here (with the headers), then re-raise so the
    server still logs it. For the gateway, where this is outermost; a
    FastAPI app answers its own 500 outside every middleware (the kit's
    handler, which logs it).
    """

    __slots__ = ("answer_crashes", "app")

    def __init__(self, app: ASGIApp, *, answer_crashes: bool = True) -> None:
        self.app = app
        self.answer_crashes = answer_crashes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentials = False
        for name, _ in scope["headers"]:
            if name in _CREDENTIAL_HEADERS:
                credentials = True
                break
        inner = (
            self._docs_send(send, credentials)
            if scope["path"] == DOCS_PATH
            else self._api_send(send, credentials)
        )
        if not self.answer_crashes:
            await self.app(scope, receive, inner)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await inner(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if not started:
                state = scope.get("state") or {}
                await send_problem_response(inner, internal_error_problem(state.get("request_id")))
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
