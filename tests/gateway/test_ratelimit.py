"""The rate limiter: in memory, on a real Redis, and with Redis gone."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import coredis
import orjson
import pytest
from limits.aio.storage import MemoryStorage

from spp_gateway import ratelimit
from spp_gateway.policy import RouteGroup
from spp_gateway.ratelimit import (
    UNLIMITED,
    RateDecision,
    RateLimiter,
    SweepingMemoryStorage,
    send_rate_limited,
)
from spp_gateway.settings import GatewaySettings
from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE, TYPE_BASE

pytestmark = pytest.mark.anyio

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def limits(**overrides: str) -> dict[tuple[RouteGroup, bool], str]:
    """Every (group, anonymous) pair, generous unless overridden as group[_anonymous]."""
    out = {(g, a): "1000/minute" for g in RouteGroup for a in (False, True)}
    for name, text in overrides.items():
        group, _, anon = name.partition("_")
        out[(RouteGroup(group), anon == "anonymous")] = text
    return out


@pytest.fixture
async def memory_limiter() -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(
        limits(
            write="3/minute",
            write_anonymous="2/minute",
            submission_anonymous="5/minute;3/hour",
            bulk_anonymous="0/hour",
        )
    )
    yield limiter
    await limiter.close()


def _redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys (and only they) are deleted after."""
    if not _redis_up():
        pytest.fail(f"no Redis on {REDIS_HOST}:{REDIS_PORT} (.ci/run starts one)")
    prefix = f"spp-test:{uuid.uuid4().hex}"
    yield prefix
    client: Any = coredis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = await client.keys(f"{prefix}:*")
        if keys:
            await client.delete(list(keys))
    finally:
        client.connection_pool.disconnect()


async def test_allows_up_to_the_limit_then_refuses(memory_limiter: RateLimiter) -> None:
    seen = [
        await memory_limiter.check("key:a", RouteGroup.write, anonymous=False) for _ in range(4)
    ]
    assert [d.allowed for d in seen] == [True, True, True, False]
    assert [d.remaining for d in seen] == [2, 1, 0, 0]
    assert all(d.limit == 3 and d.window == 60 and d.policy == "3;w=60" for d in seen)
    assert all(1 <= d.reset_after <= 60 for d in seen)
    assert seen[-1].group is RouteGroup.write


async def test_counters_are_per_identity_group_and_caller_kind(
    memory_limiter: RateLimiter,
) -> None:
    for _ in range(3):
        assert (await memory_limiter.check("key:a", RouteGroup.write, anonymous=False)).allowed
    assert not (await memory_limiter.check("key:a", RouteGroup.write, anonymous=False)).allowed
    assert (await memory_limiter.check("key:b", RouteGroup.write, anonymous=False)).allowed
    assert (await memory_limiter.check("key:a", RouteGroup.read, anonymous=False)).allowed
    anonymous = [
        await memory_limiter.check("ip:192.0.2.1", RouteGroup.write, anonymous=True)
        for _ in range(3)
    ]
    assert [d.allowed for d in anonymous] == [True, True, False]
    assert anonymous[0].limit == 2


async def test_every_limit_of_a_group_must_pass_and_the_tightest_is_reported(
    memory_limiter: RateLimiter,
) -> None:
    seen = [
        await memory_limiter.check("ip:198.51.100.7", RouteGroup.submission, anonymous=True)
        for _ in range(4)
    ]
    assert [d.allowed for d in seen] == [True, True, True, False]
    # 5/minute leaves 4 after the first request, 3/hour leaves 2: the hour is tighter.
    assert (seen[0].limit, seen[0].remaining, seen[0].window) == (3, 2, 3600)
    assert seen[0].policy == "5;w=60, 3;w=3600"
    assert (seen[3].limit, seen[3].remaining, seen[3].window) == (3, 0, 3600)


async def test_a_zero_limit_refuses_without_counting(memory_limiter: RateLimiter) -> None:
    decision = await memory_limiter.check("ip:192.0.2.9", RouteGroup.bulk, anonymous=True)
    assert not decision.allowed
    assert (decision.limit, decision.remaining, decision.reset_after) == (0, 0, 3600)
    assert "closed to anonymous callers" in ratelimit.refusal_detail(decision)
    assert (await memory_limiter.check("key:x", RouteGroup.bulk, anonymous=False)).allowed


@pytest.mark.parametrize(
    "identity",
    ["", "agent:a/b/c", "key:\n\r\x00", "ip:2001:db8::1", "agent:é" * 500, "agent:\udcff"],
)
async def test_any_identity_text_is_a_safe_distinct_key(identity: str) -> None:
    limiter = RateLimiter(limits(read="1/minute"))
    try:
        assert (await limiter.check(identity, RouteGroup.read, anonymous=False)).allowed
        assert not (await limiter.check(identity, RouteGroup.read, anonymous=False)).allowed
        assert (await limiter.check(identity + "x", RouteGroup.read, anonymous=False)).allowed
    finally:
        await limiter.close()
    key = ratelimit._storage_key(identity)
    assert len(key) == 32
    assert key.isalnum()


async def test_disabled_limiter_lets_everything_through_without_headers() -> None:
    limiter = RateLimiter(limits(read="1/minute"), enabled=False)
    try:
        for _ in range(3):
            decision = await limiter.check("key:a", RouteGroup.read, anonymous=False)
            assert decision is UNLIMITED
        assert decision.headers() == []
    finally:
        await limiter.close()


def test_missing_groups_are_refused() -> None:
    partial = limits()
    del partial[(RouteGroup.admin, True)]
    with pytest.raises(ValueError, match="admin"):
        RateLimiter(partial)


async def test_from_settings() -> None:
    settings = GatewaySettings(rate_limit_admin="2/minute", rate_limit_admin_anonymous="1/hour")
    limiter = RateLimiter.from_settings(settings)
    try:
        assert not limiter.shared
        first = await limiter.check("agent:x", RouteGroup.admin, anonymous=False)
        assert (first.limit, first.policy) == (2, "2;w=60")
        anon = await limiter.check("ip:192.0.2.1", RouteGroup.admin, anonymous=True)
        assert (anon.limit, anon.policy) == (1, "1;w=3600")
    finally:
        await limiter.close()


def test_headers() -> None:
    allowed = RateDecision(True, 60, 59, 42, "60;w=60")
    assert allowed.headers() == [
        (b"ratelimit-limit", b"60"),
        (b"ratelimit-remaining", b"59"),
        (b"ratelimit-reset", b"42"),
        (b"ratelimit-policy", b"60;w=60"),
    ]
    refused = RateDecision(False, 60, 0, 17, "60;w=60, 1000;w=86400")
    assert dict(refused.headers())[b"retry-after"] == b"17"
    assert dict(refused.headers())[b"ratelimit-policy"] == b"60;w=60, 1000;w=86400"


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


async def test_send_rate_limited() -> None:
    send = Recorder()
    decision = RateDecision(False, 60, 0, 23, "60;w=60", 60, RouteGroup.submission)
    await send_rate_limited(send, decision, instance="/v1/experiences", request_id="rid-1")
    start, body_message = send.messages
    assert start["status"] == 429
    headers = dict(start["headers"])
    assert headers[b"content-type"] == PROBLEM_MEDIA_TYPE.encode()
    assert headers[b"retry-after"] == b"23"
    assert headers[b"ratelimit-limit"] == b"60"
    assert headers[b"ratelimit-remaining"] == b"0"
    assert headers[b"ratelimit-reset"] == b"23"
    assert headers[b"ratelimit-policy"] == b"60;w=60"
    assert int(headers[b"content-length"]) == len(body_message["body"])
    body = orjson.loads(body_message["body"])
    assert body == {
        "type": TYPE_BASE + "rate-limited",
        "title": "Too many requests",
        "status": 429,
        "detail": "At most 60 requests per minute for this route group (submission); "
        "retry in 23 s.",
        "instance": "/v1/experiences",
        "request_id": "rid-1",
    }


async def test_refusal_detail_names_odd_windows() -> None:
    assert "per 5 minutes" in ratelimit.refusal_detail(RateDecision(False, 2, 0, 9, "", 300))
    assert "per 2 hours" in ratelimit.refusal_detail(RateDecision(False, 2, 0, 9, "", 7200))
    assert "per 90 seconds" in ratelimit.refusal_detail(RateDecision(False, 2, 0, 9, "", 90))


async def test_memory_storage_sweeps_at_most_every_ten_seconds() -> None:
    # The override hooks a private method of limits: fail here if it goes.
    assert hasattr(MemoryStorage, "_MemoryStorage__schedule_expiry")
    limiter = RateLimiter(limits())
    storage = limiter._storage
    assert isinstance(storage, SweepingMemoryStorage)
    try:
        await limiter.check("ip:192.0.2.1", RouteGroup.read, anonymous=True)
        first = storage.timer
        assert first is not None
        for i in range(50):
            await asyncio.sleep(0)  # let a sweep run and finish, as between requests
            await limiter.check(f"ip:192.0.2.{i}", RouteGroup.read, anonymous=True)
        assert storage.timer is first  # the stock storage starts one per hit
    finally:
        await limiter.close()
    assert first.done()


# --- Redis -------------------------------------------------------------------------


async def test_redis_counters_are_shared_between_limiters(redis_prefix: str) -> None:
    one = RateLimiter(limits(write="3/minute"), storage_url=REDIS_URL, key_prefix=redis_prefix)
    two = RateLimiter(limits(write="3/minute"), storage_url=REDIS_URL, key_prefix=redis_prefix)
    try:
        assert one.shared
        a = await one.check("agent:alice", RouteGroup.write, anonymous=False)
        b = await two.check("agent:alice", RouteGroup.write, anonymous=False)
        c = await one.check("agent:alice", RouteGroup.write, anonymous=False)
        d = await two.check("agent:alice", RouteGroup.write, anonymous=False)
        assert [x.allowed for x in (a, b, c, d)] == [True, True, True, False]
        assert [x.remaining for x in (a, b, c, d)] == [2, 1, 0, 0]
        assert 1 <= d.reset_after <= 60
        assert (await two.check("agent:bob", RouteGroup.write, anonymous=False)).allowed
    finally:
        await one.close()
        await two.close()


async def test_redis_multiple_limits(redis_prefix: str) -> None:
    limiter = RateLimiter(
        limits(submission_anonymous="10/minute;2/hour"),
        storage_url="async+" + REDIS_URL,
        key_prefix=redis_prefix,
    )
    try:
        seen = [
            await limiter.check("ip:203.0.113.5", RouteGroup.submission, anonymous=True)
            for _ in range(3)
        ]
        assert [d.allowed for d in seen] == [True, True, False]
        assert (seen[0].limit, seen[0].remaining) == (2, 1)
        assert seen[2].window == 3600
    finally:
        await limiter.close()


async def test_redis_keys_hold_no_raw_identity(redis_prefix: str) -> None:
    limiter = RateLimiter(limits(), storage_url=REDIS_URL, key_prefix=redis_prefix)
    client: Any = coredis.Redis(host=REDIS_HOST, port=REDIS_PORT, decode_responses=True)
    try:
        await limiter.check("ip:203.0.113.77", RouteGroup.read, anonymous=True)
        keys = await client.keys(f"{redis_prefix}:*")
        assert keys
        assert not any("203.0.113.77" in k for k in keys)
    finally:
        await limiter.close()
        client.connection_pool.disconnect()


class FakeLog:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.warnings.append((event, kw))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_redis_fails_open_and_warns_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeLog()
    monkeypatch.setattr(ratelimit, "log", fake)
    limiter = RateLimiter(
        limits(write="1/minute"), storage_url=f"redis://127.0.0.1:{_closed_port()}"
    )
    try:
        for _ in range(3):
            decision = await limiter.check("agent:a", RouteGroup.write, anonymous=False)
            assert decision.allowed
            assert decision.headers() == []
        # Past the one-second pause Redis is tried again, fails again, and
        # the warning is not repeated within 30 s.
        monkeypatch.setattr(limiter, "_down_until", 0.0)
        assert (await limiter.check("agent:a", RouteGroup.write, anonymous=False)).allowed
    finally:
        await limiter.close()
    assert len(fake.warnings) == 1
    event, fields = fake.warnings[0]
    assert event == "rate_limit_storage_unavailable"
    assert fields["error"]


async def test_a_slow_storage_fails_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "log", FakeLog())
    limiter = RateLimiter(limits())

    async def broken(*_: Any, **__: Any) -> bool:
        raise TimeoutError

    monkeypatch.setattr(limiter._strategy, "hit", broken)
    try:
        assert await limiter.check("key:a", RouteGroup.read, anonymous=False) is UNLIMITED
    finally:
        await limiter.close()
