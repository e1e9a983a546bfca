"""The request context (kit/logging.py): the access line's status (what was
answered, 500 for a crash, 499 when the client left before anything could be
answered), the request id (a caller's plain one kept, any other replaced,
echoed on the answer), and what the access line leaves out."""

from __future__ import annotations

import contextlib
import re
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


async def _answered(headers: list[tuple[bytes, bytes]]) -> tuple[Scope, Message]:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["scope"] = scope
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {**_scope(), "headers": headers}
    await RequestContextMiddleware(app, service="test", access_log=False)(scope, _receive, send)
    return seen["scope"], sent[0]


@pytest.mark.parametrize("given", [b"abc-123", b"A_b-9", b"x" * 64])
async def test_a_plain_request_id_is_kept_and_echoed(given: bytes) -> None:
    scope, start = await _answered([(b"x-request-id", given)])
    assert scope["state"]["request_id"] == given.decode()
    assert (b"x-request-id", given) in start["headers"]


@pytest.mark.parametrize(
    "given", [None, b"", b"x" * 65, b"<script>", b'a"b', b"a b", "caf\u00e9".encode()]
)
async def test_any_other_request_id_is_replaced(given: bytes | None) -> None:
    headers = [] if given is None else [(b"x-request-id", given)]
    scope, start = await _answered(headers)
    made = scope["state"]["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert (b"x-request-id", made.encode()) in start["headers"]


async def test_the_access_line_carries_no_query_string_and_the_request_id() -> None:
    with structlog.testing.capture_logs() as logs:

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def send(message: Message) -> None:
            pass

        scope = {
            **_scope(),
            "headers": [(b"x-request-id", b"rid-5")],
            "query_string": b"token=secret&email=a%40b.fr",
        }
        await RequestContextMiddleware(app, service="test")(scope, _receive, send)
    (line,) = [e for e in logs if e.get("event") == "request"]
    assert line["request_id"] == "rid-5"
    assert line["path"] == "/v1/sites/import"
    assert "secret" not in repr(line)
    assert "a%40b" not in repr(line)
