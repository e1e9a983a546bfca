"""Typed base for service-to-service HTTP calls.

One long-lived ``httpx.AsyncClient`` per peer, explicit timeouts, bounded
retries on idempotent calls only, and a clear :class:`PeerUnavailable`
(problem 503) when the peer cannot be reached. Given the calling service's
:class:`~spp_shared.kit.identity.ServiceSigner` (``app.state.signer``), the
client signs each call's assertion itself: the service's own identity,
bound to that call's method, path and request id. An assertion given
explicitly is sent as it is instead (it must have been signed for this very
call: one signed for another request is refused by the peer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from spp_shared.kit.errors import ServiceUnavailable
from spp_shared.kit.identity import ASSERTION_HEADER, ServiceSigner
from spp_shared.kit.logging import new_request_id

M = TypeVar("M", bound=BaseModel)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class PeerUnavailable(ServiceUnavailable):
    type_ = "peer-unavailable"
    title = "A service this request depends on is unavailable"


class PeerError(Exception):
    """The peer answered with an error status; carries its problem body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"peer answered {status}")
        self.status = status
        self.body = body


class ServiceClient:
    peer_name = "peer"

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.1,
        transport: httpx.AsyncBaseTransport | None = None,
        signer: ServiceSigner | None = None,
    ) -> None:
        self.signer = signer
        self.retries = retries
        self.backoff = backoff
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        assertion: str | None = None,
        request_id: str | None = None,
        retry: bool | None = None,
    ) -> httpx.Response:
        # One id for the call, its retries and its assertion: the peer's logs
        # then name the same request as ours.
        request_id = request_id or new_request_id()
        request = self._client.build_request(
            method, path, json=json, params=params, headers={"x-request-id": request_id}
        )
        if assertion is None and self.signer is not None:
            # The path as the peer's server will see it (base URL's path included).
            assertion = self.signer.sign(
                method=request.method, path=request.url.path, request_id=request_id
            )
        if assertion:
            request.headers[ASSERTION_HEADER] = assertion
        may_retry = (method.upper() in IDEMPOTENT) if retry is None else retry
        attempts = 1 + (self.retries if may_retry else 0)
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                response = await self._client.send(request)
            except httpx.TransportError as exc:  # connect, read, write, pool, protocol
                last = exc
            else:
                if response.status_code not in (502, 503, 504):
                    return response
                last = None
            if attempt + 1 < attempts:
                await asyncio.sleep(self.backoff * (2**attempt))
        reason = type(last).__name__ if last else "it keeps answering 5xx"
        raise PeerUnavailable(f"The {self.peer_name} service cannot be reached ({reason}).")

    async def request_model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        response = await self.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            raise PeerError(response.status_code, body)
        return model.model_validate_json(response.content)
