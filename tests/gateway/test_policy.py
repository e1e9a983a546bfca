"""Route groups and the settings of the rate limits and hardening."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from limits import parse_many
from pydantic import ValidationError

from spp_gateway.policy import RouteGroup, classify, rate_group
from spp_gateway.settings import GatewaySettings
from tests.support import ServiceDB

from .conftest import BOOTSTRAP_TOKEN, ServedApp, gateway_settings, serve_gateway


def settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(**overrides)


@pytest.mark.parametrize(
    ("method", "path", "group"),
    [
        ("GET", "/v1/sites", RouteGroup.read),
        ("HEAD", "/v1/sites/12", RouteGroup.read),
        ("OPTIONS", "/v1/experiences", RouteGroup.read),
        ("GET", "/v1/experiences/12", RouteGroup.read),
        ("POST", "/v1/sites", RouteGroup.write),
        ("DELETE", "/v1/experiences/12", RouteGroup.write),
        ("PUT", "/v1/indicators/3", RouteGroup.write),
        ("POST", "/v1/experiences", RouteGroup.submission),
        ("POST", "/v1/experiences/", RouteGroup.submission),
        ("PATCH", "/v1/ratings/7", RouteGroup.submission),
        ("PUT", "/v1/document-reports/7", RouteGroup.submission),
        ("POST", "/v1/experiences-archive", RouteGroup.write),  # not a prefix match
        ("POST", "/v1/sites/import", RouteGroup.bulk),
        ("POST", "/v1/experiences/import", RouteGroup.bulk),
        ("GET", "/v1/results/import", RouteGroup.read),
        # Not an import: a site or network whose reference is "import".
        ("PATCH", "/v1/sites/import", RouteGroup.write),
        ("PATCH", "/v1/networks/import", RouteGroup.write),
        ("POST", "/v1/sites/x/import", RouteGroup.write),
        ("PUT", "/v1/sites/import", RouteGroup.write),
        ("POST", "/v1/sites/import/", RouteGroup.write),
        ("GET", "/v1/api-keys", RouteGroup.admin),
        ("POST", "/v1/api-keys/abc/revoke", RouteGroup.admin),
        ("DELETE", "/v1/agent-mappings/1", RouteGroup.admin),
        ("GET", "/v1/audit-events", RouteGroup.admin),
        ("POST", "/v1/audit-events/import", RouteGroup.admin),  # admin wins over bulk
        ("GET", "/healthz", RouteGroup.read),
        ("POST", "/v1", RouteGroup.write),
    ],
)
def test_classify(method: str, path: str, group: RouteGroup) -> None:
    assert classify(method, path) is group


@pytest.mark.parametrize(
    ("method", "path", "query", "group"),
    [
        ("GET", "/v1/sites", b"near=45.75,4.83&radius_km=50", RouteGroup.lookup),
        ("GET", "/v1/sites", b"limit=200&near=45.75,4.83", RouteGroup.lookup),
        ("HEAD", "/v1/sites", b"near=45.75,4.83", RouteGroup.lookup),
        ("GET", "/v1/sites", b"ne%61r=45.75,4.83", RouteGroup.lookup),  # as the service decodes
        ("GET", "/v1/sites", b"NEAR=45.75,4.83", RouteGroup.read),  # not the parameter
        ("GET", "/v1/sites", b"q=nearby", RouteGroup.read),
        ("GET", "/v1/sites", b"departement=69", RouteGroup.read),
        ("GET", "/v1/sites", b"", RouteGroup.read),
        ("POST", "/v1/sites/lookup", b"", RouteGroup.lookup),
        ("POST", "/v1/sites", b"near=45.75,4.83", RouteGroup.write),
        ("GET", "/v1/sites/lookup", b"", RouteGroup.read),
        ("POST", "/v1/experiences", b"near=1,2", RouteGroup.submission),
        ("POST", "/v1/sites/import", b"", RouteGroup.bulk),
        ("GET", "/v1/api-keys", b"near=1,2", RouteGroup.admin),
        ("GET", "/v1/sites/export", b"format=jsonl", RouteGroup.lookup),
        ("HEAD", "/v1/sites/export/sites.csv", b"", RouteGroup.lookup),
        ("GET", "/v1/sites/export/datapackage.json", b"", RouteGroup.lookup),
        ("GET", "/v1/sites/exports", b"", RouteGroup.read),  # a site called "exports"
        ("GET", "/v1/exports", b"", RouteGroup.read),  # the route key itself
    ],
)
def test_rate_group(method: str, path: str, query: bytes, group: RouteGroup) -> None:
    assert rate_group(method, path, query) is group


def test_route_group_values_are_their_names() -> None:
    assert [g.value for g in RouteGroup] == [
        "read",
        "write",
        "submission",
        "bulk",
        "admin",
        "lookup",
    ]
    assert f"{RouteGroup.bulk}" == "bulk"


def test_default_limits_parse_and_are_sensible() -> None:
    s = settings()
    assert s.redis_url is None
    assert s.rate_limits_enabled is True
    for group in RouteGroup:
        authenticated = parse_many(getattr(s, f"rate_limit_{group}"))
        anonymous = parse_many(getattr(s, f"rate_limit_{group}_anonymous"))
        assert authenticated
        assert anonymous
    assert [str(i) for i in parse_many(s.rate_limit_submission_anonymous)] == [
        "10 per 1 minute",
        "20 per 1 hour",
    ]
    assert parse_many(s.rate_limit_bulk_anonymous)[0].amount == 0
    assert s.body_limit_submission == 64 * 1024
    assert s.body_limit_bulk == 512 * 1024 * 1024
    assert s.body_limit_read == s.body_limit_write == s.body_limit_default == 1024 * 1024
    assert s.max_header_bytes == 16384
    assert s.max_url_bytes == 8192
    assert s.cors_origins == []


@pytest.mark.parametrize("bad", ["60/minut", "", "sixty per minute", "10/minute;;x"])
def test_a_rate_limit_typo_fails_at_startup(bad: str) -> None:
    with pytest.raises(ValidationError, match="rate_limit_write"):
        settings(rate_limit_write=bad)


def test_rate_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPP_GATEWAY_RATE_LIMIT_READ_ANONYMOUS", "5/second;100/minute")
    monkeypatch.setenv("SPP_GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SPP_GATEWAY_RATE_LIMITS_ENABLED", "false")
    s = settings()
    assert s.rate_limit_read_anonymous == "5/second;100/minute"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.rate_limits_enabled is False
    monkeypatch.setenv("SPP_GATEWAY_RATE_LIMIT_ADMIN", "120/minuts")
    with pytest.raises(ValidationError, match="not a rate limit"):
        settings()


@pytest.mark.parametrize(
    "url", ["redis://h:6379/0", "rediss://u:p@h:6380", "async+redis://h", "redis+unix:///s.sock"]
)
def test_redis_urls(url: str) -> None:
    assert settings(redis_url=url).redis_url == url


@pytest.mark.parametrize("url", ["http://h:6379", "h:6379", "memcached://h"])
def test_bad_redis_urls(url: str) -> None:
    with pytest.raises(ValidationError, match="Redis URL"):
        settings(redis_url=url)


def test_empty_redis_url_means_memory() -> None:
    assert settings(redis_url="").redis_url is None


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("https://usagers.gouv.fr", ["https://usagers.gouv.fr"]),
        (
            " https://usagers.gouv.fr , HTTP://Localhost:5173/ ",
            ["https://usagers.gouv.fr", "http://localhost:5173"],
        ),
        ('["https://a.gouv.fr", "https://b.gouv.fr"]', ["https://a.gouv.fr", "https://b.gouv.fr"]),
        ("", []),
    ],
)
def test_cors_origins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, origins: list[str]
) -> None:
    monkeypatch.setenv("SPP_GATEWAY_CORS_ORIGINS", raw)
    assert settings().cors_origins == origins


@pytest.mark.parametrize(
    "bad", ["*", "null", "usagers.gouv.fr", "https://a.gouv.fr/app", "ftp://a.gouv.fr", "[1"]
)
def test_cors_origins_must_be_exact(bad: str) -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        settings(cors_origins=bad)


def test_body_and_header_limits_are_bounded() -> None:
    with pytest.raises(ValidationError):
        settings(body_limit_submission=-1)
    with pytest.raises(ValidationError):
        settings(max_header_bytes=10)


@pytest.mark.anyio
async def test_bulk_reads_spend_their_own_budget(
    upstreams: dict[str, ServedApp], gateway_db: ServiceDB
) -> None:
    # It was: 'near' searches and look-ups spent the plain read and write
    # budgets (1200 and 300 a minute per key), hundreds of times their cost.
    served = serve_gateway(
        gateway_settings(
            {n: u.url for n, u in upstreams.items()},
            database_url=gateway_db.url,
            rate_limits_enabled=True,
            rate_limit_lookup="2/minute",
            rate_limit_lookup_anonymous="2/minute",
        )
    )
    near = {"near": "45.7578,4.8320", "radius_km": "5"}
    admin = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=served.url) as client:
            anonymous = [(await client.get("/v1/sites", params=near)).status_code for _ in range(3)]
            plain = await client.get("/v1/sites", params={"departement": "69"})
            looked_up = [
                (await client.post("/v1/sites/lookup", json={"ids": []}, headers=admin))
                for _ in range(3)
            ]
            plain_write = await client.post("/v1/sites", json={}, headers=admin)
    finally:
        served.stop()
    assert anonymous == [200, 200, 429]
    assert plain.status_code == 200
    assert [r.status_code for r in looked_up] == [200, 200, 429]
    assert looked_up[2].headers["content-type"] == "application/problem+json"
    assert looked_up[0].headers["ratelimit-policy"].startswith("2;w=60")
    assert plain_write.status_code != 429
