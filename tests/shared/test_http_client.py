"""The service-to-service client: retries only when safe, a clear 503 when down."""

from __future__ import annotations

import socket

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from spp_shared.kit.http_client import PeerError, PeerUnavailable, ServiceClient
from spp_shared.kit.identity import AssertionGuard, Principal, service_principal
from tests.support import TEST_VERIFIER, service_signer

pytestmark = pytest.mark.anyio


class Flaky:
    """A peer answering 503 ``failures`` times, then 200; counts attempts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.headers: list[dict[str, str]] = []

    async def endpoint(self, request: Request) -> JSONResponse:
        self.attempts += 1
        self.headers.append(dict(request.headers))
        if self.attempts <= self.failures:
            return JSONResponse({"status": 503}, status_code=503)
        return JSONResponse({"name": "ok", "count": self.attempts})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/thing", self.endpoint, methods=["GET", "POST"])])


class Thing(BaseModel):
    name: str
    count: int


def client_for(peer: Flaky, retries: int = 2) -> ServiceClient:
    return ServiceClient(
        "http://peer", retries=retries, backoff=0.001, transport=httpx.ASGITransport(peer.app())
    )


async def test_idempotent_call_is_retried_then_typed() -> None:
    peer = Flaky(failures=2)
    client = client_for(peer)
    thing = await client.request_model(
        Thing, "GET", "/thing", assertion="signed", request_id="rid-9"
    )
    await client.aclose()
    assert thing == Thing(name="ok", count=3)
    assert peer.headers[-1]["x-spp-assertion"] == "signed"
    assert peer.headers[-1]["x-request-id"] == "rid-9"


async def test_a_service_signs_its_own_calls_bound_to_each() -> None:
    seen: list[Principal] = []

    async def whoami(request: Request) -> JSONResponse:
        seen.append(request.state.principal)
        return JSONResponse({"name": request.url.path, "count": len(seen)})

    peer = Starlette(routes=[Route("/base/v1/{rest:path}", whoami, methods=["GET", "POST"])])
    peer.add_middleware(AssertionGuard, verifier=TEST_VERIFIER)
    # A base URL with a path of its own: the assertion names the path the peer sees.
    client = ServiceClient(
        "http://peer/base",
        transport=httpx.ASGITransport(peer),
        signer=service_signer("feedback"),
        retries=0,
    )
    first = await client.request_model(Thing, "GET", "/v1/sites/été 1", request_id="rid-1")
    second = await client.request_model(Thing, "POST", "/v1/sites/lookup", json={})
    await client.aclose()
    assert (first.name, second.name) == ("/base/v1/sites/été 1", "/base/v1/sites/lookup")
    assert [p.subject for p in seen] == ["feedback", "feedback"]
    assert seen[0] == service_principal("feedback").model_copy(update={"request_id": "rid-1"})
    assert seen[1].request_id  # a new id, the same in the header and the assertion


async def test_post_is_not_retried() -> None:
    peer = Flaky(failures=1)
    client = client_for(peer)
    with pytest.raises(PeerUnavailable):
        await client.request_model(Thing, "POST", "/thing", json={})
    await client.aclose()
    assert peer.attempts == 1


async def test_retries_are_bounded() -> None:
    peer = Flaky(failures=10)
    client = client_for(peer, retries=2)
    with pytest.raises(PeerUnavailable):
        await client.request("GET", "/thing")
    await client.aclose()
    assert peer.attempts == 3


async def test_peer_error_carries_its_problem() -> None:
    app = Starlette(
        routes=[Route("/thing", lambda r: JSONResponse({"title": "nope"}, status_code=404))]
    )
    client = ServiceClient("http://peer", transport=httpx.ASGITransport(app))
    with pytest.raises(PeerError) as err:
        await client.request_model(Thing, "GET", "/thing")
    await client.aclose()
    assert (err.value.status, err.value.body) == (404, {"title": "nope"})


async def test_peer_down_is_a_clear_503_problem() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ServiceClient(f"http://127.0.0.1:{port}", timeout=1.0, retries=1, backoff=0.001)
    client.peer_name = "sites"
    with pytest.raises(PeerUnavailable) as err:
        await client.request("GET", "/v1/sites")
    await client.aclose()
    body = err.value.to_body()
    assert body["status"] == 503
    assert "sites" in body["detail"]


class Failing(Flaky):
    """A peer answering ``status`` ``failures`` times, then 200."""

    def __init__(self, failures: int, status: int) -> None:
        super().__init__(failures)
        self.status = status

    async def endpoint(self, request: Request) -> JSONResponse:
        answer = await super().endpoint(request)
        if answer.status_code == 503:
            return JSONResponse({"status": self.status}, status_code=self.status)
        return answer


@pytest.mark.parametrize("status", [502, 504])
async def test_bad_gateway_and_timeout_answers_are_retried_too(status: int) -> None:
    peer = Failing(failures=1, status=status)
    client = client_for(peer)
    thing = await client.request_model(Thing, "GET", "/thing")
    await client.aclose()
    assert (thing.count, peer.attempts) == (2, 2)


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500])
async def test_other_errors_are_answered_at_once(status: int) -> None:
    peer = Failing(failures=5, status=status)
    client = client_for(peer)
    response = await client.request("GET", "/thing")
    await client.aclose()
    assert (response.status_code, peer.attempts) == (status, 1)


async def test_a_write_the_caller_knows_is_idempotent_may_be_retried() -> None:
    peer = Flaky(failures=1)
    client = client_for(peer)
    response = await client.request("POST", "/thing", json={}, retry=True)
    await client.aclose()
    assert (response.status_code, peer.attempts) == (200, 2)


async def test_a_read_may_be_kept_to_one_attempt() -> None:
    peer = Flaky(failures=1)
    client = client_for(peer)
    with pytest.raises(PeerUnavailable):
        await client.request("GET", "/thing", retry=False)
    await client.aclose()
    assert peer.attempts == 1
