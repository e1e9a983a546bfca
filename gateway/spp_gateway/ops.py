"""The operations credential: who may read the metrics and the readiness details.

Metrics name every route, status and upstream with their volumes, and the
readiness details say which service is down: a map for an attacker, so
they are for the operations tooling only. It sends
``Authorization: Bearer <SPP_GATEWAY_METRICS_TOKEN>`` (Prometheus'
``authorization`` scrape setting). Without the setting, metrics are not
served at all and readiness answers its status alone (what a load
balancer or a Kubernetes probe needs).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from starlette.requests import Request

from spp_gateway.auth import token_digest
from spp_shared.kit.errors import NotFound, Unauthorized

_BEARER = "bearer "
T = TypeVar("T")


class OpsToken:
    """Checks the operations bearer token (compared as digests, like the bootstrap token)."""

    __slots__ = ("_digest",)

    def __init__(self, token: str | None) -> None:
        self._digest = token_digest(token.encode()) if token else None

    def operator(self, request: Request) -> bool:
        """True for the operations tooling, False for a caller sending no credential.

        Raises :class:`Unauthorized` (401) for any other credential: a scrape
        configured with a stale token must fail loudly, not read as anonymous.
        """
        sent = request.headers.getlist("authorization")
        if not sent:
            return False
        value = sent[0]
        if (
            len(sent) == 1
            and self._digest is not None
            and value[: len(_BEARER)].lower() == _BEARER
            and hmac.compare_digest(token_digest(value[len(_BEARER) :].encode()), self._digest)
        ):
            return True
        raise Unauthorized(
            "Only the operations token (SPP_GATEWAY_METRICS_TOKEN) is accepted here.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    def require(self, request: Request) -> None:
        """Let the operations tooling through; 404 when no token is configured."""
        if self._digest is None:
            raise NotFound("Metrics are not served: SPP_GATEWAY_METRICS_TOKEN is not set.")
        if not self.operator(request):
            raise Unauthorized(
                "Send the operations token: Authorization: Bearer <SPP_GATEWAY_METRICS_TOKEN>.",
                headers={"WWW-Authenticate": "Bearer"},
            )


class Reused(Generic[T]):
    """The result of a costly check, reused for ``seconds``; one run at a time.

    Readiness is public and probes every upstream and the database: without
    this, each anonymous call would cost five round trips behind the gateway.
    """

    __slots__ = ("_check", "_expires", "_lock", "_value", "seconds")

    def __init__(self, check: Callable[[], Awaitable[T]], seconds: float) -> None:
        self._check = check
        self.seconds = seconds
        self._value: T | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> T:
        if self._value is not None and time.monotonic() < self._expires:
            return self._value
        async with self._lock:  # the callers that waited reuse this run's result
            if self._value is None or time.monotonic() >= self._expires:
                self._value = await self._check()
                self._expires = time.monotonic() + self.seconds
            return self._value
