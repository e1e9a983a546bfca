"""The typed sites client against the real sites service (ASGI transport)."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from spp_shared.clients import sites as sites_client_module
from spp_shared.clients.sites import SitesClient
from spp_shared.contracts.permissions import Role
from spp_shared.contracts.sites import SiteRef
from spp_shared.kit.http_client import PeerError
from spp_shared.kit.identity import ANONYMOUS as ANONYMOUS_PRINCIPAL
from spp_shared.kit.identity import Principal, PrincipalKind, sign_assertion
from tests.sites.fixtures import BRON, VICO
from tests.support import TEST_ASSERTION_KEY

pytestmark = pytest.mark.anyio

# A peer service calls on its own behalf with a service assertion.
FEEDBACK = Principal(subject="feedback", kind=PrincipalKind.service, roles=[Role.service])


async def test_lookup_and_get_are_typed(
    sites_app: FastAPI, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Signed now, not at import: an assertion lives 60 s.
    service = sign_assertion(FEEDBACK, TEST_ASSERTION_KEY)
    anonymous = sign_assertion(ANONYMOUS_PRINCIPAL, TEST_ASSERTION_KEY)
    async with LifespanManager(sites_app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sites") as raw:
            bron = (await raw.post("/v1/sites", json=BRON, headers=admin_headers)).json()
            await raw.post("/v1/sites", json=VICO, headers=admin_headers)
        client = SitesClient("http://sites", transport=transport)
        try:
            answer = await client.lookup(
                ids=[bron["id"], "NOPE0001"],
                refs=[SiteRef(network="france-services", external_code="125")],
                assertion=service,
            )
            assert {s.external_code for s in answer.found} == {"953", "125"}
            assert answer.missing_ids == ["NOPE0001"]
            site = await client.get("france-services:953", assertion=anonymous)
            assert site.address.departement_code == "69"
            with pytest.raises(PeerError) as err:
                await client.get("france-services:0", assertion=anonymous)
            assert err.value.status == 404

            # More keys than one call takes: split, merged, each site once.
            monkeypatch.setattr(sites_client_module, "LOOKUP_MAX", 2)
            many = await client.lookup(ids=[bron["id"], bron["id"], "NOPE0001"], assertion=service)
            with pytest.raises(PeerError) as refused:
                await client.lookup(ids=[bron["id"]])
            assert refused.value.status == 401
            assert [s.id for s in many.found] == [bron["id"]]
            assert many.missing_ids == ["NOPE0001"]
        finally:
            await client.aclose()
