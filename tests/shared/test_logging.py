"""The access line's status: what was answered, 500 for a crash, 499 when
the client left before anything could be answered."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import structlog
from starlette.types import Message, Receive, Scope, Send

from spp_shared.kit.logging import CLIENT_CLOSED, RequestContextMiddleware

pytestmark = pytest.mark.anyio


def _scope() -> Scope:
    return {"type": "http", "method": "POST", "path": "/v1/sites/import", "headers": []}


async def _receive() -> Message:
    return {"type": "http.disconnect"}


async def _run(app: Any) -> list[dict[str, Any]]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with structlog.testing.capture_logs() as logs, contextlib.suppress(RuntimeError):
        await RequestContextMiddleware(app, service="test")(_scope(), _receive, send)
    return [e for e in logs if e.get("event") == "request"]


async def test_a_client_gone_before_any_answer_is_logged_499_not_500() -> None:
    async def client_left(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the disconnect: nobody to answer

    (line,) = await _run(client_left)
    assert line["status"] == CLIENT_CLOSED == 499


async def test_a_crash_is_still_a_500() -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("bug")

    (line,) = await _run(crash)
    assert line["status"] == 500


async def test_an_answer_is_logged_with_its_status() -> None:
    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    (line,) = await _run(ok)
    assert line["status"] == 201
