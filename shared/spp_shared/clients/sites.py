"""Client of the sites service, for the services that need to know sites
(indicators, feedback, labelling): do these ids exist, in which network and
where."""

from __future__ import annotations

from collections.abc import Sequence

from spp_shared.contracts.sites import LookupRequest, LookupResponse, SiteOut, SiteRef
from spp_shared.kit.http_client import ServiceClient

LOOKUP_MAX = 10_000


class SitesClient(ServiceClient):
    peer_name = "sites"

    async def lookup(
        self,
        ids: Sequence[str] = (),
        refs: Sequence[SiteRef] = (),
        *,
        assertion: str | None = None,
        request_id: str | None = None,
    ) -> LookupResponse:
        """Which of ``ids`` (site ids or SP+ codes) and ``refs`` exist: one call
        per 10,000 keys. A POST, but it only reads: safe to retry."""
        ids, refs = list(ids), list(refs)
        if len(ids) + len(refs) <= LOOKUP_MAX:
            return await self._lookup(ids, refs, assertion, request_id)
        found, missing_ids, missing_refs = [], [], []
        keys: list[str | SiteRef] = [*ids, *refs]
        for start in range(0, len(keys), LOOKUP_MAX):
            part = keys[start : start + LOOKUP_MAX]
            answer = await self._lookup(
                [k for k in part if isinstance(k, str)],
                [k for k in part if isinstance(k, SiteRef)],
                assertion,
                request_id,
            )
            found += answer.found
            missing_ids += answer.missing_ids
            missing_refs += answer.missing_refs
        unique = {s.id: s for s in found}
        return LookupResponse(
            found=list(unique.values()), missing_ids=missing_ids, missing_refs=missing_refs
        )

    async def _lookup(
        self,
        ids: list[str],
        refs: list[SiteRef],
        assertion: str | None,
        request_id: str | None,
    ) -> LookupResponse:
        body = LookupRequest(ids=ids, refs=refs).model_dump(mode="json")
        return await self.request_model(
            LookupResponse,
            "POST",
            "/v1/sites/lookup",
            json=body,
            assertion=assertion,
            request_id=request_id,
            retry=True,
        )

    async def get(
        self, ref: str, *, assertion: str | None = None, request_id: str | None = None
    ) -> SiteOut:
        """One site by id, SP+ code or ``network:external_code``."""
        return await self.request_model(
            SiteOut, "GET", f"/v1/sites/{ref}", assertion=assertion, request_id=request_id
        )
