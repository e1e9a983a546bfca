"""Request bounds and CORS, around tiny ASGI apps (the security headers:
tests/shared/test_security_headers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spp_gateway.hardening import BodyTooLarge, RequestBounds, cors
from spp_gateway.settings import GatewaySettings
from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE, TYPE_BASE
from spp_shared.kit.security_headers import SecurityHeaders

from .conftest import ServedApp

pytestmark = pytest.mark.anyio

SUBMISSION_LIMIT = 64 * 1024


def settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(**overrides)


async def read_body(receive: Receive) -> int:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return size
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return size


async def inner_app(scope: Scope, receive: Receive, send: Send) -> None:
    """200; reads and reports the body size."""
    assert scope["type"] == "http"
    size = await read_body(receive)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps({"size": size})})


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
    )


# --- RequestBounds -----------------------------------------------------------------


def bounded(app: ASGIApp = inner_app, **overrides: Any) -> ASGIApp:
    return RequestBounds(app, settings(**overrides))


def assert_problem(resp: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert resp.status_code == status
    assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["type"] == TYPE_BASE + type_
    return body


async def test_431_when_the_headers_are_too_large() -> None:
    secret = "s3cr3t-" + "x" * 6000
    async with client(bounded(max_header_bytes=4096)) as c:
        resp = await c.get("/v1/sites", headers={"X-Big": secret})
        small = await c.get("/v1/sites", headers={"X-Small": "x" * 1000})
    body = assert_problem(resp, 431, "request-header-fields-too-large")
    assert "4096 bytes" in body["detail"]
    assert body["limit_bytes"] == 4096
    assert "s3cr3t" not in resp.text
    assert small.status_code == 200


async def test_414_when_the_url_is_too_long() -> None:
    async with client(bounded(max_url_bytes=1024)) as c:
        by_path = await c.get("/v1/sites/" + "a" * 1100)
        by_query = await c.get("/v1/sites", params={"q": "b" * 1100})
        fine = await c.get("/v1/sites", params={"q": "b" * 900})
    body = assert_problem(by_path, 414, "uri-too-long")
    assert "1024 bytes" in body["detail"]
    assert len(body["instance"]) <= 200
    assert_problem(by_query, 414, "uri-too-long")
    assert fine.status_code == 200


async def test_413_by_content_length_before_reading_anything() -> None:
    read: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        read.append(scope["path"])
        await inner_app(scope, receive, send)

    async with client(bounded(app)) as c:
        resp = await c.post("/v1/experiences", content=b"x" * (SUBMISSION_LIMIT + 1))
        ok = await c.post("/v1/experiences", content=b"x" * SUBMISSION_LIMIT)
        write = await c.post("/v1/sites", content=b"x" * (SUBMISSION_LIMIT + 1))
    body = assert_problem(resp, 413, "payload-too-large")
    assert body["detail"] == (
        "The request body is larger than 65536 bytes, the limit for this route."
    )
    assert body["instance"] == "/v1/experiences"
    assert read == ["/v1/experiences", "/v1/sites"]  # the refused one never reached the app
    assert ok.json() == {"size": SUBMISSION_LIMIT}
    assert write.status_code == 200  # 1 MiB for ordinary writes


async def test_gateway_endpoints_use_the_default_body_limit() -> None:
    async with client(bounded(body_limit_default=10)) as c:
        resp = await c.post("/healthz", content=b"x" * 11)
    assert_problem(resp, 413, "payload-too-large")


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"y" * size


async def test_413_for_a_streamed_body_over_the_limit() -> None:
    async with client(bounded()) as c:
        resp = await c.post("/v1/ratings", content=chunks(10, 16 * 1024))
        ok = await c.post("/v1/ratings", content=chunks(4, 16 * 1024))
    body = assert_problem(resp, 413, "payload-too-large")
    assert "65536 bytes" in body["detail"]
    assert ok.json() == {"size": 4 * 16 * 1024}


async def test_413_at_once_when_the_last_body_message_crosses_the_limit() -> None:
    # uvicorn may hand a whole chunked body over in one message: nothing is
    # left to drain, and waiting for more would hold the answer for the drain's
    # 10 s while the client waits for it (CI saw httpx time out at 5 s).
    delivered: list[Message] = [
        {"type": "http.request", "body": b"y" * (SUBMISSION_LIMIT + 1), "more_body": False}
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        if delivered:
            return delivered.pop()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/v1/ratings",
        "raw_path": b"/v1/ratings",
        "query_string": b"",
        "headers": [(b"transfer-encoding", b"chunked"), (b"host", b"testserver")],
    }
    with anyio.fail_after(2):
        await bounded()(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_413_when_the_app_turns_body_too_large_into_its_own_answer() -> None:
    async def proxy_like(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await read_body(receive)
        except BodyTooLarge as exc:
            # what an HTTP client library does with an error of the body it streams
            try:
                raise OSError("upstream write failed") from exc
            except OSError:
                await send({"type": "http.response.start", "status": 502, "headers": []})
                await send({"type": "http.response.body", "body": b"bad gateway"})
                raise

    async with client(bounded(proxy_like)) as c:
        resp = await c.post("/v1/ratings", content=chunks(10, 16 * 1024))
    assert_problem(resp, 413, "payload-too-large")


async def test_413_when_the_app_swallows_body_too_large() -> None:
    async def quiet(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await read_body(receive)
        except BodyTooLarge:
            return

    async with client(bounded(quiet)) as c:
        resp = await c.post("/v1/ratings", content=chunks(10, 16 * 1024))
    assert_problem(resp, 413, "payload-too-large")


async def test_other_errors_are_not_hidden() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise KeyError("bug")

    transport = httpx.ASGITransport(app=bounded(broken))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(KeyError):
            await c.post("/v1/ratings", content=chunks(1, 10))


async def test_after_the_response_started_the_body_limit_only_stops_it() -> None:
    sent: list[Message] = []

    async def eager(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await read_body(receive)

    async def record(message: Message) -> None:
        sent.append(message)

    body = [b"z" * 40_000, b"z" * 40_000]

    async def receive() -> Message:
        return {"type": "http.request", "body": body.pop(0), "more_body": bool(body)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/ratings",
        "raw_path": b"/v1/ratings",
        "query_string": b"",
        "headers": [(b"transfer-encoding", b"chunked")],
        "http_version": "1.1",
    }
    await bounded(eager)(scope, receive, record)
    assert [m.get("status") for m in sent] == [200, None]
    assert sent[-1]["more_body"] is True  # cut short: the server closes the connection


async def test_real_chunked_upload_over_the_limit() -> None:
    served = ServedApp(SecurityHeaders(bounded()), lifespan="off", server_header=False).start()
    try:
        async with httpx.AsyncClient(base_url=served.url) as c:
            resp = await c.post(
                "/v1/document-reports",
                content=chunks(5, 32 * 1024),
                headers={"Content-Type": "application/octet-stream"},
            )
            assert resp.request.headers["transfer-encoding"] == "chunked"
            body = assert_problem(resp, 413, "payload-too-large")
            assert "65536 bytes" in body["detail"]
            assert resp.headers["x-content-type-options"] == "nosniff"
            assert "server" not in resp.headers
        async with httpx.AsyncClient(base_url=served.url) as c:
            ok = await c.post("/v1/document-reports", content=chunks(2, 32 * 1024))
            assert ok.json() == {"size": 64 * 1024}
            big_write = await c.post("/v1/sites", content=chunks(8, 32 * 1024))
            assert big_write.json() == {"size": 256 * 1024}
    finally:
        served.stop()


# --- CORS --------------------------------------------------------------------------

FRONT = "https://usagers.services-publics.gouv.fr"


def with_cors() -> ASGIApp:
    return SecurityHeaders(cors(bounded(), settings(cors_origins=FRONT)))


async def test_cors_preflight_from_an_allowed_origin() -> None:
    async with client(with_cors()) as c:
        resp = await c.options(
            "/v1/experiences",
            headers={
                "Origin": FRONT,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == FRONT
    assert "access-control-allow-credentials" not in resp.headers
    assert resp.headers["access-control-max-age"] == "600"
    methods = {m.strip() for m in resp.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    allowed = resp.headers["access-control-allow-headers"].lower()
    for name in ("authorization", "x-api-key", "idempotency-key", "if-match", "traceparent"):
        assert name in allowed
    assert resp.headers["x-content-type-options"] == "nosniff"


async def test_cors_preflight_from_another_origin_is_refused() -> None:
    async with client(with_cors()) as c:
        resp = await c.options(
            "/v1/experiences",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert resp.status_code == 400
    assert "access-control-allow-origin" not in resp.headers


async def test_cors_simple_request_exposes_the_useful_headers() -> None:
    async with client(with_cors()) as c:
        allowed = await c.get("/v1/sites", headers={"Origin": FRONT})
        other = await c.get("/v1/sites", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == FRONT
    exposed = allowed.headers["access-control-expose-headers"].lower()
    for name in ("etag", "location", "retry-after", "x-request-id", "ratelimit-policy"):
        assert name in exposed
    assert "access-control-allow-origin" not in other.headers


async def test_cors_reaches_error_answers_too() -> None:
    async with client(with_cors()) as c:
        resp = await c.post(
            "/v1/ratings", content=b"x" * (SUBMISSION_LIMIT + 1), headers={"Origin": FRONT}
        )
    assert resp.status_code == 413
    assert resp.headers["access-control-allow-origin"] == FRONT


def test_no_origins_no_cors_middleware() -> None:
    app = bounded()
    assert cors(app, settings()) is app
