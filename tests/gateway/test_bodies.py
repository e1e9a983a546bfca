"""Request bodies at the gateway: stalls, trickles, uploads in flight, readable 413s.

Against real uvicorn servers over real sockets: a stalled body is only a
stalled body on a socket. The scenario of the security review (issue 7):
callers that send a header block announcing a body, one byte of it, then
nothing, on more connections than the upstream pool holds.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.types import Receive, Scope, Send

from spp_gateway.hardening import DRAIN_BYTES, RequestBounds
from spp_gateway.settings import GatewaySettings
from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE, TYPE_BASE
from spp_shared.kit.security_headers import SecurityHeaders
from tests.support import ServiceDB

from .conftest import BOOTSTRAP_TOKEN, ServedApp, gateway_settings, serve_gateway

ADMIN = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
IDLE = 0.6  # the test gateways' body idle timeout, seconds
HEAD_LIMIT = 32 * 1024  # bytes of a request head the test server buffers at most


# --- raw HTTP/1.1 over a socket ---------------------------------------------------------


def stall(
    port: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    length: int = 100_000,
    first: bytes = b"{",
) -> socket.socket:
    """Announce a ``length``-byte body, send its first bytes, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port))
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    return sock


def read_answer(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of one answer; fails if none comes in time."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-answer"
        body += chunk
    return int(status_line.split()[1]), headers, body


def trickle(sock: socket.socket, rounds: int = 40) -> tuple[bytes, float]:
    """Send one byte every half idle period until an answer comes (or
    ``rounds`` bytes): what was answered, and after how many seconds."""
    answered = b""
    started = time.monotonic()
    for _ in range(rounds):
        time.sleep(IDLE / 2)
        try:
            sock.sendall(b" ")
        except (BrokenPipeError, ConnectionResetError):
            break
        sock.setblocking(False)
        try:
            answered += sock.recv(65536)
        except BlockingIOError:
            pass
        finally:
            sock.setblocking(True)
        if answered:
            break
    return answered, time.monotonic() - started


def closed_by_peer(sock: socket.socket, timeout: float = 2.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def assert_problem(
    status: int, headers: dict[str, str], body: bytes, expected: int, type_: str
) -> Any:
    assert status == expected, body
    assert headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = orjson.loads(body)
    assert problem["status"] == expected
    assert problem["type"] == TYPE_BASE + type_
    return problem


# --- RequestBounds alone ------------------------------------------------------------------


async def _reads_then_answers(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, waits a while, then answers its size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    if scope["path"].endswith("/late"):
        await asyncio.sleep(IDLE * 2)  # longer than the idle timeout: not a stall
    payload = orjson.dumps({"size": size})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "body_idle_timeout": IDLE,
        "body_receive_timeout": IDLE * 3,
        "upload_idle_timeout": IDLE * 2,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@pytest.fixture(scope="module")
def bounds() -> Iterator[ServedApp]:
    app = SecurityHeaders(RequestBounds(_reads_then_answers, _settings()))
    served = ServedApp(app, lifespan="off", server_header=False, http="httptools").start()
    yield served
    served.stop()


def test_a_stalled_body_is_answered_408_and_its_connection_closed(bounds: ServedApp) -> None:
    with stall(bounds.port, "/v1/sites/lookup") as sock:
        started = time.monotonic()
        status, headers, body = read_answer(sock, timeout=IDLE * 10)
        waited = time.monotonic() - started
        assert closed_by_peer(sock)
    problem = assert_problem(status, headers, body, 408, "request-timeout")
    assert f"nothing arrived for {IDLE:g} seconds" in problem["detail"]
    assert problem["timeout_seconds"] == IDLE
    assert IDLE * 0.9 <= waited < IDLE * 8
    assert headers["connection"] == "close"


def test_a_trickling_small_body_is_cut_at_its_deadline(bounds: ServedApp) -> None:
    # One byte every half idle period: never silent long enough to be a stall.
    with stall(bounds.port, "/v1/sites/lookup", length=1000, first=b"[") as sock:
        answered, waited = trickle(sock)
    assert answered.startswith(b"HTTP/1.1 408"), answered[:80]
    assert b"did not arrive whole within" in answered
    assert IDLE * 2.5 <= waited < IDLE * 10


def test_a_streamed_upload_gets_the_longer_idle_timeout(bounds: ServedApp) -> None:
    with stall(bounds.port, "/v1/sites/import", length=10_000_000) as sock:
        started = time.monotonic()
        status, headers, body = read_answer(sock, timeout=IDLE * 12)
    problem = assert_problem(status, headers, body, 408, "request-timeout")
    assert problem["timeout_seconds"] == IDLE * 2
    assert time.monotonic() - started >= IDLE * 1.8


def test_a_trickled_upload_is_cut_once_under_the_minimum_rate(bounds: ServedApp) -> None:
    # A byte every half idle period: never a stall, but it would hold an upload
    # connection for ever (the review held the whole upload pool this way).
    with stall(bounds.port, "/v1/sites/import", length=10_000_000) as sock:
        answered, waited = trickle(sock)
    assert answered.startswith(b"HTTP/1.1 408"), answered[:80]
    assert b"too slow" in answered
    assert IDLE * 2 <= waited < IDLE * 10


def test_an_upload_at_a_decent_pace_is_untouched(bounds: ServedApp) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(6):
            time.sleep(IDLE / 2)  # 1.8 s in all: past the grace period
            yield b"y" * 10_000

    with httpx.Client(base_url=bounds.url, timeout=10) as client:
        resp = client.post("/v1/sites/import", content=chunks())
    assert resp.json() == {"size": 60_000}


def test_once_the_body_is_in_the_app_may_take_its_time(bounds: ServedApp) -> None:
    with httpx.Client(base_url=bounds.url, timeout=IDLE * 10) as client:
        resp = client.post("/v1/sites/late", content=b"x" * 1000)
    assert resp.status_code == 200
    assert resp.json() == {"size": 1000}


def test_a_body_sent_promptly_is_untouched(bounds: ServedApp) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            time.sleep(IDLE / 4)
            yield b"y" * 1000

    with httpx.Client(base_url=bounds.url, timeout=10) as client:
        resp = client.post("/v1/sites/lookup", content=chunks())
    assert resp.json() == {"size": 4000}


@pytest.mark.parametrize("path", ["/v1/networks", "/v1/sites/import"])
def test_a_client_that_writes_its_whole_body_first_reads_the_413(
    bounds: ServedApp, path: str
) -> None:
    # urllib sends "Connection: close" and the whole body before it reads:
    # closing on unread bytes would make its kernel see a reset, not the 413.
    size = 20 * 1024 * 1024 if path == "/v1/networks" else 8 * 1024 * 1024
    limit = 1024 * 1024 if path == "/v1/networks" else 4 * 1024 * 1024
    served = bounds
    if path == "/v1/sites/import":
        app = SecurityHeaders(RequestBounds(_reads_then_answers, _settings(body_limit_bulk=limit)))
        served = ServedApp(app, lifespan="off", server_header=False, http="httptools").start()
    try:
        request = urllib.request.Request(
            served.url + path,
            data=b"x" * size,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        error = caught.value
        assert error.code == 413
        assert error.headers["content-type"] == PROBLEM_MEDIA_TYPE
        problem = orjson.loads(error.read())
        assert problem["type"] == TYPE_BASE + "payload-too-large"
        assert problem["limit_bytes"] == limit
    finally:
        if served is not bounds:
            served.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/v1/sites/import"), ("PATCH", "/v1/networks/import"), ("GET", "/v1/x/import")],
)
def test_only_a_post_to_a_collections_import_is_a_bulk_upload(
    bounds: ServedApp, method: str, path: str
) -> None:
    # A site whose reference is "import" is an ordinary JSON resource: 1 MiB.
    with httpx.Client(base_url=bounds.url, timeout=10) as client:
        resp = client.request(method, path, content=b"x" * (2 * 1024 * 1024))
    assert resp.status_code == 413, resp.text
    assert resp.json()["limit_bytes"] == 1024 * 1024


def test_a_chunked_body_over_the_limit_is_read_then_refused(bounds: ServedApp) -> None:
    with socket.create_connection(("127.0.0.1", bounds.port)) as sock:
        sock.sendall(
            b"POST /v1/networks HTTP/1.1\r\nHost: g\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"z" * 65536
        for _ in range(48):  # 3 MiB, over the 1 MiB limit, all written before reading
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        status, headers, body = read_answer(sock, timeout=10)
    assert_problem(status, headers, body, 413, "payload-too-large")


def test_a_client_expecting_100_continue_is_refused_before_it_sends(bounds: ServedApp) -> None:
    with socket.create_connection(("127.0.0.1", bounds.port)) as sock:
        sock.sendall(
            b"POST /v1/networks HTTP/1.1\r\nHost: g\r\nContent-Length: 20000000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        status, headers, body = read_answer(sock, timeout=5)
        assert closed_by_peer(sock)
    assert_problem(status, headers, body, 413, "payload-too-large")


def test_draining_is_bounded(bounds: ServedApp) -> None:
    # Announced far beyond what is worth reading: answered at once, then closed.
    with stall(bounds.port, "/v1/networks", length=DRAIN_BYTES + 1) as sock:
        status, headers, body = read_answer(sock, timeout=5)
        assert closed_by_peer(sock)
    assert_problem(status, headers, body, 413, "payload-too-large")


# --- through the gateway: stalls cannot take the upstream pool ----------------------------


POOL = 3  # upstream connections per service in these gateways


@pytest.fixture
def small_pool_gateway(
    upstreams: dict[str, ServedApp], gateway_db: ServiceDB
) -> Iterator[ServedApp]:
    settings = gateway_settings(
        {n: u.url for n, u in upstreams.items()},
        database_url=gateway_db.url,
        pool_size_per_host=POOL,
        upload_pool_size=POOL,
        pool_timeout=1.0,
        body_idle_timeout=IDLE * 3,
        body_receive_timeout=IDLE * 6,
        upload_idle_timeout=IDLE * 3,
        uploads_per_caller=2,
        # Small routes held whole, imports streamed, as in production.
        body_limit_write=1024 * 1024,
        body_limit_read=1024 * 1024,
        body_limit_bulk=512 * 1024 * 1024,
    )
    served = serve_gateway(settings)
    yield served
    served.stop()


def _close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def test_stalled_small_bodies_take_no_upstream_connection(small_pool_gateway: ServedApp) -> None:
    stalled_at = time.monotonic()
    socks = [
        stall(small_pool_gateway.port, "/v1/sites/lookup", headers=ADMIN) for _ in range(POOL * 4)
    ]
    try:
        time.sleep(0.3)  # let the gateway take them all in
        with httpx.Client(base_url=small_pool_gateway.url, timeout=10) as client:
            for path in ("/v1/sites/x", "/v1/networks", "/v1/sites/y"):
                resp = client.get(path)
                assert resp.status_code == 200, resp.text
            write = client.post("/v1/sites/lookup", headers=ADMIN, json={"ids": []})
            assert write.status_code == 200
            assert write.json()["body_size"] == len(b'{"ids":[]}')
        # ...while the stalls still held their connections (not after their 408s).
        assert time.monotonic() - stalled_at < IDLE * 3
        for sock in socks:  # each stall is cut, and said so
            status, headers, body = read_answer(sock, timeout=IDLE * 10)
            assert_problem(status, headers, body, 408, "request-timeout")
    finally:
        _close_all(socks)


def test_one_caller_holds_at_most_its_share_of_uploads(small_pool_gateway: ServedApp) -> None:
    held = [
        stall(small_pool_gateway.port, "/v1/sites/import", headers=ADMIN, length=10_000_000)
        for _ in range(2)
    ]
    try:
        time.sleep(0.3)
        with httpx.Client(base_url=small_pool_gateway.url, timeout=10) as client:
            third = client.post("/v1/sites/import", headers=ADMIN, content=b"a,b\n")
            assert third.status_code == 429
            assert third.headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert third.json()["type"] == TYPE_BASE + "too-many-uploads"
            assert third.headers["retry-after"] == "5"
            # Another caller (here: anonymous, by address) still uploads...
            other = client.post("/v1/labels/import", content=b"a,b\n")
            assert other.status_code == 200
            # ...and reads are not queued behind the uploads.
            assert client.get("/v1/sites/x").status_code == 200
        for sock in held:
            status, headers, body = read_answer(sock, timeout=IDLE * 12)
            assert_problem(status, headers, body, 408, "request-timeout")
        # Slots come back when the uploads end.
        with httpx.Client(base_url=small_pool_gateway.url, timeout=10) as client:
            again = client.post("/v1/sites/import", headers=ADMIN, content=b"a,b\n")
        assert again.status_code == 200
    finally:
        _close_all(held)


def test_uploads_never_take_the_ordinary_pool(small_pool_gateway: ServedApp) -> None:
    # More stalled uploads to one service than its ordinary pool holds (two
    # callers, each at its share): reads and small writes still get through.
    socks: list[socket.socket] = []
    results: list[int] = []
    stalled_at = time.monotonic()
    try:
        for _ in range(2):
            socks.append(
                stall(small_pool_gateway.port, "/v1/sites/import", headers=ADMIN, length=10**7)
            )
            socks.append(stall(small_pool_gateway.port, "/v1/sites/import", length=10**7))
        time.sleep(0.3)

        def call() -> None:
            with httpx.Client(base_url=small_pool_gateway.url, timeout=10) as client:
                results.append(client.get("/v1/sites/x").status_code)
                results.append(client.post("/v1/sites", headers=ADMIN, json={}).status_code)

        callers = [threading.Thread(target=call) for _ in range(POOL * 2)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        assert results == [200] * (POOL * 4)
        assert time.monotonic() - stalled_at < IDLE * 3  # the uploads were still stalled
    finally:
        _close_all(socks)


# --- request heads: a connection that never completes one is closed ----------------------


@pytest.fixture(scope="module")
def head_deadline() -> Iterator[ServedApp]:
    from spp_gateway.server import head_timeout_protocol

    app = SecurityHeaders(RequestBounds(_reads_then_answers, _settings()))
    served = ServedApp(
        app, lifespan="off", server_header=False, http=head_timeout_protocol(IDLE, HEAD_LIMIT)
    ).start()
    yield served
    served.stop()


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /v1/sites HTTP/1.1\r\nHo", b"POST /v1/sites HTTP/1.1\r\nHost: g\r\n"],
    ids=["silent", "half a header", "no blank line"],
)
def test_a_connection_without_a_whole_request_head_is_closed(
    head_deadline: ServedApp, sent: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", head_deadline.port)) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        assert closed_by_peer(sock, timeout=IDLE * 8)
        assert IDLE * 0.9 <= time.monotonic() - started < IDLE * 8


def test_a_keep_alive_connection_sending_whole_heads_is_kept(head_deadline: ServedApp) -> None:
    with httpx.Client(base_url=head_deadline.url, timeout=10) as client:
        first = client.post("/v1/sites/lookup", content=b"[]")
        time.sleep(IDLE * 0.6)
        second = client.post("/v1/sites/lookup", content=b"[1]")
        time.sleep(IDLE * 0.6)  # over the deadline since the connection opened
        third = client.post("/v1/sites/lookup", content=b"[12]")
    assert [r.json()["size"] for r in (first, second, third)] == [2, 3, 4]
    assert [r.status_code for r in (first, second, third)] == [200] * 3


def test_a_request_head_growing_past_its_limit_is_refused_at_once(
    head_deadline: ServedApp,
) -> None:
    with socket.create_connection(("127.0.0.1", head_deadline.port)) as sock:
        sock.sendall(b"GET /v1/sites HTTP/1.1\r\nHost: g\r\nX-Pad: ")
        started = time.monotonic()
        try:
            for _ in range(64):  # 4 MiB of one header that never ends
                sock.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, body = read_answer(sock, timeout=IDLE * 5)
        assert time.monotonic() - started < IDLE  # not the head deadline: the size
    assert_problem(status, headers, body, 431, "request-header-fields-too-large")
    assert headers["connection"] == "close"


def test_a_pipelined_request_waits_for_the_answer_before_it(head_deadline: ServedApp) -> None:
    with socket.create_connection(("127.0.0.1", head_deadline.port)) as sock:
        # The first request takes longer than the head deadline to answer; the
        # second one's head is still coming: the first answer must get out.
        sock.sendall(
            b"POST /v1/sites/late HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n\r\n[]"
            b"GET /v1/sites HTTP/1.1\r\nHost: g\r\n"
        )
        status, headers, body = read_answer(sock, timeout=IDLE * 10)
        while b"0\r\n\r\n" not in body:  # chunked: read to the last chunk
            chunk = sock.recv(65536)
            assert chunk, body
            body += chunk
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert b'{"size":2}' in body


# --- the contract says so ----------------------------------------------------------------


def test_the_merged_openapi_declares_what_the_gateway_answers_itself() -> None:
    from spp_gateway.openapi import merge_openapi
    from spp_gateway.routes import RouteTable

    ok = {"200": {"description": "OK"}}
    sites = {
        "paths": {
            "/v1/sites": {
                "get": {"operationId": "list_sites", "responses": dict(ok)},
                "post": {
                    "operationId": "create_site",
                    "requestBody": {"content": {"application/json": {"schema": {}}}},
                    "responses": dict(ok),
                },
            }
        },
        "components": {"schemas": {"Problem": {"type": "object"}}},
    }
    routes = RouteTable({n: "http://x" for n in ("sites", "feedback", "indicators", "labelling")})
    paths = merge_openapi({"sites": sites}, routes)["paths"]
    get, post = paths["/v1/sites"]["get"]["responses"], paths["/v1/sites"]["post"]["responses"]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for status in ("414", "431", "502", "503", "504"):
        assert get[status]["content"] == problem
        assert post[status]["content"] == problem
    assert post["408"]["content"] == problem
    assert post["413"]["content"] == problem
    assert "408" not in get  # no body, nothing to time out
