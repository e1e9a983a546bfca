"""The proxy hot path, against real upstream servers."""

from __future__ import annotations

import asyncio
import hashlib
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from spp_gateway.routes import ROUTES
from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import Principal
from tests.support import TEST_VERIFIER

from .conftest import (
    BOOTSTRAP_TOKEN,
    CHUNK,
    OPS,
    ServedApp,
    dead_url,
    gateway_settings,
    pattern_chunk,
    pattern_sha256,
    serve_gateway,
)

pytestmark = pytest.mark.anyio


def received_headers(body: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        out.setdefault(name, []).append(value)
    return out


def forwarded_principal(body: dict[str, Any]) -> Principal:
    """The assertion the upstream received, verified as the service would:
    for the method, path and request id it saw."""
    seen = received_headers(body)
    [token] = seen["x-spp-assertion"]
    [request_id] = seen["x-request-id"]
    return TEST_VERIFIER.verify(
        token, method=body["method"], path=body["path"], request_id=request_id
    )


@pytest.mark.parametrize(
    ("path", "service"),
    [(p + "/abc/echo", service) for service, prefixes in ROUTES.items() for p in prefixes],
)
async def test_routes_each_prefix_to_its_service(
    gateway: ServedApp, path: str, service: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get(path, params={"q": "é x", "n": "1"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["service"] == service
    assert body["path"] == path
    assert body["query"] == "q=%C3%A9+x&n=1"
    assert forwarded_principal(body).is_anonymous


@pytest.mark.parametrize(
    ("method", "raw", "decoded"),
    [
        ("GET", "/v1/sites/%C3%A9t%C3%A9/echo", "/v1/sites/été/echo"),
        ("DELETE", "/v1/sites/a%2Fb/echo", "/v1/sites/a/b/echo"),
        ("PATCH", "/v1/sites/a%20b%3A1/echo", "/v1/sites/a b:1/echo"),
        ("POST", "/v1/sites//x/echo", "/v1/sites//x/echo"),
    ],
)
async def test_the_assertion_names_the_path_the_service_sees(
    gateway: ServedApp, method: str, raw: str, decoded: str
) -> None:
    # The gateway forwards the client's raw path untouched; the service
    # decodes it as the gateway did, so the bound path matches.
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.request(method, httpx.URL(gateway.url + raw))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["method"], body["path"]) == (method, decoded)
    assert forwarded_principal(body).is_anonymous


async def test_prefix_without_subpath_is_routed(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/v1/labels")
    assert resp.json()["service"] == "labelling"


@pytest.mark.parametrize("path", ["/v1/unknown/1", "/v1", "/v1/sitesx", "/v1/"])
async def test_unknown_api_path_is_a_404_problem(gateway: ServedApp, path: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get(path)
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["status"] == 404
    assert path in problem["detail"]
    assert problem["request_id"] == resp.headers["x-request-id"]


async def test_unknown_non_api_path_is_a_404_problem(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"


async def test_post_body_and_headers_reach_the_upstream(gateway: ServedApp) -> None:
    payload = b'{"rating": 5}'
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.post(
            "/v1/ratings",
            content=payload,
            headers={
                "content-type": "application/json",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "x-custom": "kept",
            },
        )
    body = resp.json()
    seen = received_headers(body)
    assert body["method"] == "POST"
    assert body["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert seen["content-type"] == ["application/json"]
    assert seen["traceparent"] == ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]
    assert seen["x-custom"] == ["kept"]
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == [f"127.0.0.1:{gateway.port}"]
    # aiohttp adds nothing of its own the client did not send.
    assert "accept-encoding" in seen  # httpx sends one; it is forwarded as is
    assert seen["user-agent"][0].startswith("python-httpx")


async def test_request_id_is_propagated(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/v1/sites/1/x", headers={"x-request-id": "abc-123"})
    assert resp.headers.get_list("x-request-id") == ["abc-123"]
    assert received_headers(resp.json())["x-request-id"] == ["abc-123"]


async def test_request_id_is_generated(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/v1/sites/1/x", headers={"x-request-id": "bad id with spaces"})
    rid = resp.headers["x-request-id"]
    assert len(rid) == 32
    assert rid != "bad id with spaces"
    assert received_headers(resp.json())["x-request-id"] == [rid]


async def test_hop_by_hop_headers_are_stripped_both_ways(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        echoed = await client.get(
            "/v1/indicators/echo",
            headers={
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "private",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                "TE": "trailers",
                "Upgrade": "websocket",
                "X-End": "kept",
            },
        )
        hop = await client.get("/v1/indicators/test/hop")
    seen = received_headers(echoed.json())
    for name in ("x-hop", "keep-alive", "proxy-authorization", "te", "upgrade"):
        assert name not in seen, name
    assert seen.get("connection") != ["keep-alive, X-Hop"]  # the gateway's own, if any
    assert seen["x-end"] == ["kept"]
    assert seen["host"] != [f"127.0.0.1:{gateway.port}"]

    assert hop.status_code == 200
    assert hop.content == b"hop"
    for name in ("x-private", "keep-alive", "proxy-authenticate", "server"):
        assert name not in hop.headers, name
    assert hop.headers["x-kept"] == "yes"
    assert len(hop.headers.get_list("date")) == 1


async def test_client_supplied_assertion_is_replaced(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/v1/sites/1/x", headers={"X-SPP-Assertion": "forged.jwt.value"})
    # Anonymous callers get the gateway's own assertion, never the client's.
    [forwarded] = received_headers(resp.json())["x-spp-assertion"]
    assert forwarded != "forged.jwt.value"
    assert forwarded_principal(resp.json()).is_anonymous


async def test_bootstrap_token_sends_a_verifiable_admin_assertion(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get(
            "/v1/referentiels/x",
            headers={
                "Authorization": f"Bearer {BOOTSTRAP_TOKEN}",
                "X-SPP-Assertion": "forged",
            },
        )
    assert resp.status_code == 200
    seen = received_headers(resp.json())
    assert "authorization" not in seen  # the credential stops at the gateway
    principal = forwarded_principal(resp.json())
    assert principal.subject == "bootstrap-admin"
    assert principal.kind.value == "bootstrap"
    assert principal.has_role(Role.programme_admin)


async def test_the_assertion_carries_the_request_id(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get(
            "/v1/labels/1",
            headers={"Authorization": f"Bearer {BOOTSTRAP_TOKEN}", "X-Request-ID": "r-1"},
        )
    assert forwarded_principal(resp.json()).request_id == "r-1"


@pytest.mark.parametrize(
    "authorization", [f"Bearer {BOOTSTRAP_TOKEN}x", "Bearer nope", "Basic Zm9vOmJhcg==", "Bearer"]
)
async def test_wrong_credentials_are_a_401_problem(gateway: ServedApp, authorization: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/v1/sites/1", headers={"Authorization": authorization})
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    problem = resp.json()
    assert problem["type"].endswith("/invalid-credentials")
    assert "nope" not in resp.text
    assert BOOTSTRAP_TOKEN not in resp.text


async def test_anonymous_call_sends_no_assertion(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/v1/sites/1")
    assert resp.status_code == 200
    assert resp.json() == {"id": "1", "name": "CAF Lyon"}


async def _upload_chunks(count: int) -> AsyncIterator[bytes]:
    for i in range(count):
        yield pattern_chunk(i)


async def test_large_upload_streams_with_bounded_memory(gateway: ServedApp) -> None:
    size = 50 * 1024 * 1024
    tracemalloc.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
            resp = await client.post("/v1/ingestion-batches", content=_upload_chunks(size // CHUNK))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status_code == 200
    body = resp.json()
    assert body["body_size"] == size
    assert body["body_sha256"] == pattern_sha256(size)
    # Client, gateway and upstream share this process: all of them together
    # stayed far below the 50 MB that went through.
    assert peak < 12 * 1024 * 1024, peak


async def test_large_upload_with_content_length(gateway: ServedApp) -> None:
    size = 8 * 1024 * 1024
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        resp = await client.put(
            "/v1/exports/x",
            content=_upload_chunks(size // CHUNK),
            headers={"content-length": str(size)},
        )
    body = resp.json()
    assert body["body_size"] == size
    assert "transfer-encoding" not in received_headers(body)


async def test_large_download_streams_with_bounded_memory(gateway: ServedApp) -> None:
    size = 50 * 1024 * 1024
    digest = hashlib.sha256()
    received = 0
    tracemalloc.start()
    try:
        async with (
            httpx.AsyncClient(base_url=gateway.url, timeout=60) as client,
            client.stream("GET", "/v1/indicators/test/download", params={"size": size}) as resp,
        ):
            assert resp.status_code == 200
            async for chunk in resp.aiter_raw():
                digest.update(chunk)
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert digest.hexdigest() == pattern_sha256(size)
    assert peak < 12 * 1024 * 1024, peak


async def test_upstream_down_is_a_quick_503_problem(upstreams: dict[str, ServedApp]) -> None:
    urls = {n: u.url for n, u in upstreams.items()}
    urls["sites"] = dead_url()
    served = serve_gateway(gateway_settings(urls))
    try:
        async with httpx.AsyncClient(base_url=served.url) as client:
            started = time.monotonic()
            resp = await client.get("/v1/sites/1")
            elapsed = time.monotonic() - started
            other = await client.get("/v1/ratings")
    finally:
        served.stop()
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/service-unavailable")
    assert "sites" in resp.json()["detail"]
    assert elapsed < 1.0  # the connect timeout
    assert other.status_code == 200


async def test_slow_upstream_is_a_504_problem(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        started = time.monotonic()
        resp = await client.get("/v1/labels/test/slow")
        elapsed = time.monotonic() - started
    assert resp.status_code == 504
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/gateway-timeout")
    assert 0.9 < elapsed < 2.5


async def test_bulk_endpoints_get_the_longer_read_timeout(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        resp = await client.post("/v1/indicators/import", content=b"a,b\n")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "imported"}


async def test_client_leaving_mid_upload_is_not_an_upstream_error(
    upstreams: dict[str, ServedApp],
) -> None:
    served = serve_gateway(gateway_settings({n: u.url for n, u in upstreams.items()}))
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(
            b"POST /v1/ratings HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
            + b"x" * 200_000
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        await writer.wait_closed()
        async with httpx.AsyncClient(base_url=served.url) as client:
            for _ in range(20):
                metrics = (await client.get("/metrics", headers=OPS)).text
                if 'route="feedback",service="gateway",status="499"' in metrics:
                    break
                await asyncio.sleep(0.1)
            ok = await client.get("/v1/ratings")
    finally:
        served.stop()
    assert 'status="499"' in metrics
    assert 'status="502"' not in metrics
    assert ok.status_code == 200
