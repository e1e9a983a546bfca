"""The typed sites client against the real sites service (ASGI transport)."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from spp_shared.clients import sites as sites_client_module
from spp_shared.clients.sites import SitesClient
from spp_shared.contracts.sites import SiteRef
from spp_shared.kit.http_client import PeerError
from spp_shared.kit.identity import ANONYMOUS
from tests.sites.fixtures import BRON, VICO
from tests.support import GATEWAY_SIGNER, AsGateway, service_signer

pytestmark = pytest.mark.anyio


async def test_lookup_and_get_are_typed(
    sites_app: FastAPI, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LifespanManager(sites_app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sites", auth=AsGateway()
        ) as raw:
            bron = (await raw.post("/v1/sites", json=BRON, headers=admin_headers)).json()
            await raw.post("/v1/sites", json=VICO, headers=admin_headers)
        # The feedback service calls on its own behalf: the client signs each
        # call with the service's own key.
        client = SitesClient("http://sites", transport=transport, signer=service_signer("feedback"))
        unsigned = SitesClient("http://sites", transport=transport)
        try:
            answer = await client.lookup(
                ids=[bron["id"], "NOPE0001"],
                refs=[SiteRef(network="france-services", external_code="125")],
            )
            assert {s.external_code for s in answer.found} == {"953", "125"}
            assert answer.missing_ids == ["NOPE0001"]
            site = await client.get("france-services:953")
            assert site.address.departement_code == "69"
            with pytest.raises(PeerError) as err:
                await client.get("france-services:0")
            assert err.value.status == 404

            # More keys than one call takes: split, merged, each site once.
            monkeypatch.setattr(sites_client_module, "LOOKUP_MAX", 2)
            many = await client.lookup(ids=[bron["id"], bron["id"], "NOPE0001"])
            assert [s.id for s in many.found] == [bron["id"]]
            assert many.missing_ids == ["NOPE0001"]

            with pytest.raises(PeerError) as refused:
                await unsigned.lookup(ids=[bron["id"]])
            assert refused.value.status == 401
            # An assertion is bound to its request: one signed for another
            # (a caller's, say) does not carry over to this call.
            other = GATEWAY_SIGNER.sign(ANONYMOUS, method="GET", path="/v1/sites")
            with pytest.raises(PeerError) as replayed:
                await unsigned.get("france-services:953", assertion=other)
            assert replayed.value.status == 401
            assert replayed.value.body["type"].endswith("/invalid-assertion")
        finally:
            await client.aclose()
            await unsigned.aclose()
