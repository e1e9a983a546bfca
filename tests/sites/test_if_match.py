"""If-Match read as RFC 9110 says: every field line, its syntax, a strong comparison."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sites.fixtures import BRON
from tests.sites.test_sites_api import etag

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"


async def writes(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, body, current ETag) of each write that takes If-Match."""
    site = (await client.post("/v1/sites", json=BRON, headers=headers)).json()
    site_tag = etag(site)
    network_tag = (await client.get("/v1/networks/caf")).headers["etag"]
    return [
        ("PATCH", f"/v1/sites/{site['id']}", {"name": "Bron"}, site_tag),
        ("POST", f"/v1/sites/{site['id']}/close", {}, site_tag),
        ("PATCH", "/v1/networks/caf", {"website": "https://www.caf.fr"}, network_tag),
    ]


def lines(headers: dict[str, str], *values: str) -> list[tuple[str, str]]:
    return list(headers.items()) + [("If-Match", v) for v in values]


async def test_repeated_if_match_lines_are_one_list(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for method, path, body, _tag in await writes(sites_client, admin_headers):
        # It was: 200, only the first line read.
        star = await sites_client.request(
            method, path, json=body, headers=lines(admin_headers, "*", '"nope"')
        )
        assert star.status_code == 400, (method, path, star.text)
        assert star.headers["content-type"] == PROBLEM
        wrong = await sites_client.request(
            method, path, json=body, headers=lines(admin_headers, '"nope"', '"nope.2"')
        )
        assert wrong.status_code == 412, (method, path, wrong.text)
    # The current tag on the second line counts (it was: 412, the first line alone).
    site = (
        await sites_client.post(
            "/v1/sites", json=BRON | {"external_code": "X2"}, headers=admin_headers
        )
    ).json()
    second = await sites_client.patch(
        f"/v1/sites/{site['id']}",
        json={"name": "Bron"},
        headers=lines(admin_headers, '"nope"', etag(site)),
    )
    assert second.status_code == 200, second.text


@pytest.mark.parametrize(("value", "status"), [("W/*", 400), ('W/"{tag}"', 412)])
async def test_weak_if_match_never_passes(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], value: str, status: int
) -> None:
    for method, path, body, tag in await writes(sites_client, admin_headers):
        # It was: 200 for both (W/* read as *, W/"x" as "x").
        header = value.replace('"{tag}"', tag)
        resp = await sites_client.request(
            method, path, json=body, headers=admin_headers | {"If-Match": header}
        )
        assert resp.status_code == status, (method, path, resp.text)
        assert resp.headers["content-type"] == PROBLEM
        assert "If-Match" in resp.json()["detail"] or status == 412


async def test_if_none_match_keeps_the_weak_comparison(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = (await sites_client.post("/v1/sites", json=BRON, headers=admin_headers)).json()
    for path in (f"/v1/sites/{site['id']}", "/v1/networks/caf"):
        tag = (await sites_client.get(path)).headers["etag"]
        for value in (tag, f"W/{tag}"):
            resp = await sites_client.get(path, headers={"If-None-Match": value})
            assert resp.status_code == 304, (path, value)
        both = await sites_client.get(
            path, headers=[("If-None-Match", '"other"'), ("If-None-Match", tag)]
        )
        assert both.status_code == 304, path
