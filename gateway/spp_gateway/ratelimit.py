"""Per-caller rate limits, one family per route group, with the `limits` library.

A caller is an identity string (``api_key:<id>``, ``agent:<sub>``, or ``ip:<addr>``
for anonymous callers); each (route group, anonymous?) pair has one or more
limits such as ``10/minute;20/hour``, all enforced. Counters live in Redis
when ``SPP_GATEWAY_REDIS_URL`` is set (one budget across every gateway
process), otherwise in this process's memory.

The limiter must never be the reason a request fails: when Redis cannot be
reached the request is let through, a warning is logged at most every 30 s,
and Redis is left alone for a second so a dead server does not cost every
request a timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.types import Send

from spp_gateway.policy import RouteGroup
from spp_gateway.settings import GatewaySettings
from spp_shared.kit.errors import problem_body, send_problem_response

log = structlog.get_logger("spp.gateway.ratelimit")

DEFAULT_KEY_PREFIX = "spp:ratelimit"
# Seconds between two "storage unavailable" warnings, and without asking the
# storage again after a failure.
_WARN_EVERY = 30.0
_RETRY_STORAGE_AFTER = 1.0
# Seconds between two sweeps of expired in-memory counters (see below).
_SWEEP_EVERY = 10.0

_GRANULARITY_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The answer for one request, reporting the tightest of the group's limits."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds, >= 1
    policy: str  # every limit of the group, RateLimit-Policy syntax: "10;w=60, 20;w=3600"
    window: int = 0  # seconds of the reported limit's window
    group: RouteGroup | None = None
    # False when nothing was counted (limits off, or the storage is down):
    # no RateLimit headers then, rather than made-up numbers.
    enforced: bool = True

    def headers(self) -> list[tuple[bytes, bytes]]:
        if not self.enforced:
            return []
        out = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_after).encode()),
            (b"ratelimit-policy", self.policy.encode()),
        ]
        if not self.allowed:
            out.append((b"retry-after", str(self.reset_after).encode()))
        return out


UNLIMITED = RateDecision(
    allowed=True, limit=0, remaining=0, reset_after=1, policy="", enforced=False
)


def group_limits(settings: GatewaySettings) -> dict[tuple[RouteGroup, bool], str]:
    """(group, anonymous) -> the limit text from the settings."""
    s = settings
    return {
        (RouteGroup.read, False): s.rate_limit_read,
        (RouteGroup.read, True): s.rate_limit_read_anonymous,
        (RouteGroup.write, False): s.rate_limit_write,
        (RouteGroup.write, True): s.rate_limit_write_anonymous,
        (RouteGroup.submission, False): s.rate_limit_submission,
        (RouteGroup.submission, True): s.rate_limit_submission_anonymous,
        (RouteGroup.bulk, False): s.rate_limit_bulk,
        (RouteGroup.bulk, True): s.rate_limit_bulk_anonymous,
        (RouteGroup.admin, False): s.rate_limit_admin,
        (RouteGroup.admin, True): s.rate_limit_admin_anonymous,
        (RouteGroup.lookup, False): s.rate_limit_lookup,
        (RouteGroup.lookup, True): s.rate_limit_lookup_anonymous,
    }


class SweepingMemoryStorage(MemoryStorage):
    """limits' in-memory storage, sweeping expired counters at most every 10 s.

    The stock storage starts a sweep of *every* counter after each hit as
    soon as the previous sweep is over: with 10,000 anonymous IPs that costs
    ~0.8 ms per request, about twice the gateway's whole per-request budget.
    Reading a counter already drops it when expired, so the sweep only
    reclaims the memory of callers who went away, and that can wait.
    """

    _next_sweep = 0.0

    # The base class calls its private ``__schedule_expiry`` after each hit;
    # this is that name, mangled, so the override is what runs (a test fails
    # if limits renames it).
    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_EVERY
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]

    async def close(self) -> None:
        timer = self.timer
        if timer is not None and not timer.done():
            timer.cancel()
            await asyncio.wait({timer}, timeout=1.0)


def _async_url(url: str) -> str:
    return url if url.startswith("async+") else "async+" + url


def _storage_key(identity: str) -> str:
    # Any text may come in (a subject from a token, an IPv6 address...): a
    # digest is a bounded, separator-free key, and no raw IP lands in Redis.
    return hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class RateLimiter:
    """Counts requests per (identity, route group) and says whether one may pass."""

    def __init__(
        self,
        limits: Mapping[tuple[RouteGroup, bool], str],
        *,
        storage_url: str | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        timeout: float = 0.25,
        enabled: bool = True,
    ) -> None:
        missing = {(g, a) for g in RouteGroup for a in (False, True)} - set(limits)
        if missing:
            raise ValueError(f"No rate limit for {sorted(missing)}")
        # Shortest window first: a request refused by the per-minute limit
        # then never spends the scarcer per-hour budget.
        self._items: dict[tuple[RouteGroup, bool], tuple[RateLimitItem, ...]] = {
            key: tuple(sorted(parse_many(text), key=lambda item: item.get_expiry()))
            for key, text in limits.items()
        }
        self._policies = {
            key: ", ".join(f"{item.amount};w={item.get_expiry()}" for item in items)
            for key, items in self._items.items()
        }
        self.enabled = enabled
        self.shared = storage_url is not None
        storage: Storage
        if storage_url is not None:
            storage = storage_from_string(  # type: ignore[assignment]
                _async_url(storage_url),
                key_prefix=key_prefix,
                wrap_exceptions=True,
                connect_timeout=timeout,
                stream_timeout=timeout,
            )
        else:
            storage = SweepingMemoryStorage()
        # Sliding window counter: two integer keys per caller and one short
        # Lua script per hit, whatever the limit. A moving window keeps one
        # list entry per request (1,200 per reader at 1200/minute) and scans
        # it on each hit; a fixed window lets a caller burst twice the limit
        # across a window boundary. This one approximates a true sliding
        # window at nearly the cost of a fixed one.
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._storage = storage
        self._down_until = 0.0
        self._warned_at = -math.inf

    @classmethod
    def from_settings(
        cls, settings: GatewaySettings, *, key_prefix: str = DEFAULT_KEY_PREFIX
    ) -> RateLimiter:
        return cls(
            group_limits(settings),
            storage_url=settings.redis_url,
            key_prefix=key_prefix,
            timeout=settings.redis_timeout,
            enabled=settings.rate_limits_enabled,
        )

    async def check(self, identity: str, group: RouteGroup, *, anonymous: bool) -> RateDecision:
        """Count one request of ``identity`` in ``group``; never raises."""
        if not self.enabled:
            return UNLIMITED
        if self._down_until and time.monotonic() < self._down_until:
            return UNLIMITED
        key = (group, anonymous)
        try:
            return await self._check(
                self._items[key], self._policies[key], _storage_key(identity), group
            )
        except Exception as exc:
            # Broad on purpose: whatever the storage does (connection refused,
            # timeout, a script error), the request goes on unlimited.
            self._storage_failed(exc)
            return UNLIMITED

    async def _check(
        self,
        items: tuple[RateLimitItem, ...],
        policy: str,
        key: str,
        group: RouteGroup,
    ) -> RateDecision:
        tightest: RateDecision | None = None
        for item in items:
            window = item.get_expiry()
            if item.amount == 0:  # closed to these callers: no need to count
                return RateDecision(False, 0, 0, window, policy, window, group)
            allowed = await self._strategy.hit(item, group.value, key)
            stats = await self._strategy.get_window_stats(item, group.value, key)
            reset_after = max(1, math.ceil(stats.reset_time - time.time()))
            decision = RateDecision(
                allowed,
                item.amount,
                stats.remaining if allowed else 0,
                reset_after,
                policy,
                window,
                group,
            )
            if not allowed:
                return decision
            if tightest is None or (decision.remaining, -decision.reset_after) < (
                tightest.remaining,
                -tightest.reset_after,
            ):
                tightest = decision
        assert tightest is not None  # parse_many never returns an empty list
        return tightest

    def _storage_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + _RETRY_STORAGE_AFTER
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "rate_limit_storage_unavailable",
                error=type(exc).__name__,
                reason=str(exc)[:200],
                action="requests pass unlimited until it is back",
            )

    async def close(self) -> None:
        storage: Any = self._storage
        if isinstance(storage, SweepingMemoryStorage):
            await storage.close()
            return
        # limits has no close(); its coredis client keeps a connection pool.
        pool = getattr(
            getattr(getattr(storage, "bridge", None), "storage", None), "connection_pool", None
        )
        if pool is not None:
            pool.disconnect()


def _period(window: int) -> str:
    if window in _GRANULARITY_NAMES:
        return _GRANULARITY_NAMES[window]
    for seconds in (86400, 3600, 60):
        if window % seconds == 0:
            return f"{window // seconds} {_GRANULARITY_NAMES[seconds]}s"
    return f"{window} seconds"


def refusal_detail(decision: RateDecision) -> str:
    group = f" ({decision.group})" if decision.group else ""
    if decision.limit == 0:
        return f"This route group{group} is closed to anonymous callers; authenticate to use it."
    return (
        f"At most {decision.limit} requests per {_period(decision.window)} for this route "
        f"group{group}; retry in {decision.reset_after} s."
    )


async def send_rate_limited(
    send: Send, decision: RateDecision, *, instance: str, request_id: str | None
) -> None:
    """Answer 429 problem+json with Retry-After and the RateLimit headers."""
    body = problem_body(
        status=429,
        type_="rate-limited",
        title="Too many requests",
        detail=refusal_detail(decision),
        instance=instance,
        request_id=request_id,
    )
    headers = decision.headers()
    if not any(name == b"retry-after" for name, _ in headers):
        headers.append((b"retry-after", str(decision.reset_after).encode()))
    await send_problem_response(send, body, headers=headers)
