"""Refuse what no endpoint can store or read: NUL and other control
characters in the path or the query string, and encoded request bodies.

PostgreSQL rejects NUL in text, so without this a ``?network=ca%00f`` would
reach the database and fail there (a 500). Checked once here for every
route rather than in each parameter's type.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from spp_shared.kit.errors import send_problem_response, status_problem

_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control_characters(raw_path: bytes, query: bytes) -> bool:
    return bool(
        _CONTROL.search(unquote_to_bytes(raw_path))
        or _CONTROL.search(unquote_to_bytes(query.replace(b"+", b" ")))
    )


_IDENTITY = (b"", b"identity")


def _encoded_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """A request body in a Content-Encoding we would not decode (gzip...)."""
    for name, value in headers:
        if name == b"content-encoding" and value.strip().lower() not in _IDENTITY:
            return True
    return False


class ControlCharacterGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw_path = scope.get("raw_path") or scope["path"].encode()
            if has_control_characters(raw_path, scope.get("query_string", b"")):
                await _refuse(
                    send, scope, 400, "The path or the query string contains control characters."
                )
                return
            if _encoded_body(scope["headers"]):
                # Reading gzip as if it were JSON would answer nonsense.
                await _refuse(send, scope, 415, "Send request bodies without Content-Encoding.")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, scope: Scope, status: int, detail: str) -> None:
    # The path may be the very thing refused: escaped, and cut short.
    instance = scope["path"].encode("unicode_escape").decode()[:200]
    state = scope.get("state") or {}
    body = status_problem(status, detail, instance=instance, request_id=state.get("request_id"))
    await send_problem_response(send, body)
