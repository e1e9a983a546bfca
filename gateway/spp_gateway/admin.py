"""HTTP layer of the gateway's administration: API keys, agent mappings, audit log.

Included in the gateway's own FastAPI app, which provides (``app.state``):
``db`` (the gateway's :class:`~spp_shared.kit.db.Database`, read by the
kit's session dependencies), ``api_keys`` (:class:`ApiKeyStore`) and
``agents`` (:class:`AgentDirectory`). The gateway puts the caller's
principal in the request state before these routes run; each route declares
its action like every service's endpoints do.

No Idempotency-Key on key creation: replaying the answer would mean storing
the secret it shows (see :mod:`spp_gateway.models`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from spp_gateway.store import audit
from spp_gateway.store.agents import AgentDirectory, mapping_etag
from spp_gateway.store.api_keys import ApiKeyStore
from spp_shared.contracts.access import (
    AgentMappingCreate,
    AgentMappingOut,
    AgentMappingPatch,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditEventOut,
    GatewayAction,
    MatchKind,
    UtcDatetime,
)
from spp_shared.contracts.base import NO_CONTROL_CHARACTERS
from spp_shared.contracts.types import NetworkCode
from spp_shared.kit.conditional import ConditionalGetDep
from spp_shared.kit.db import ReadSessionDep, SessionDep
from spp_shared.kit.errors import request_id_of
from spp_shared.kit.openapi import operation_id
from spp_shared.kit.pagination import DEFAULT_LIMIT, Page
from spp_shared.kit.params import Cursor, IfMatch, Limit
from spp_shared.kit.permissions import Access, allowed

# Its OpenAPI document is completed like every service's (spp_shared.kit.openapi).
router = APIRouter(prefix="/v1", generate_unique_id_function=operation_id)
TAGS = {
    "api-keys": "API keys of machine clients (head offices, front-ends' back-ends): "
    "created, listed, rotated and revoked by administrators; secrets shown once.",
    "agent-mappings": "Which agents signed in through OIDC get which roles, network and sites.",
    "audit": "The audit log of privileged actions and changes.",
}


ManageKeys = Annotated[Access, allowed(GatewayAction.api_keys_manage)]
ManageMappings = Annotated[Access, allowed(GatewayAction.agent_mappings_manage)]

# A caller acts only on credentials no wider than its own (a key narrowed by
# scopes to managing keys or mappings must not undo the administrators').
BEYOND_CALLER = (
    "403 `grant-beyond-caller` when the target allows more than the caller's own credential."
)

# A response showing a secret must not stay in any cache, shared or the browser's.
NO_STORE = {"Cache-Control": "no-store"}


async def api_key_store(request: Request) -> ApiKeyStore:
    store: ApiKeyStore = request.app.state.api_keys
    return store


async def agent_directory(request: Request) -> AgentDirectory:
    directory: AgentDirectory = request.app.state.agents
    return directory


ApiKeysDep = Annotated[ApiKeyStore, Depends(api_key_store)]
AgentsDep = Annotated[AgentDirectory, Depends(agent_directory)]


def _request_id(request: Request, access: Access) -> str | None:
    return request_id_of(request) or access.principal.request_id


# --- API keys -----------------------------------------------------------------------


@router.post(
    "/api-keys",
    tags=["api-keys"],
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (its secret is shown in this answer only)",
)
async def create_api_key(
    data: ApiKeyCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    store: ApiKeysDep,
    access: ManageKeys,
) -> ApiKeyCreated:
    created = await store.create_key(
        session, access.principal, data, request_id=_request_id(request, access)
    )
    response.headers.update(NO_STORE | {"Location": f"/v1/api-keys/{created.id}"})
    return created


@router.get(
    "/api-keys",
    tags=["api-keys"],
    summary="List API keys (never their secrets)",
    description="Only the keys no wider than the caller's own credential are listed.",
)
async def list_api_keys(
    session: ReadSessionDep,
    store: ApiKeysDep,
    access: ManageKeys,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    owner: Annotated[str | None, Query(max_length=200, pattern=NO_CONTROL_CHARACTERS)] = None,
    network: Annotated[NetworkCode | None, Query()] = None,
    include_revoked: Annotated[bool, Query(description="Also list revoked keys.")] = False,
) -> Page[ApiKeyOut]:
    return await store.list_keys(
        session,
        access.principal,
        owner=owner,
        network=network,
        include_revoked=include_revoked,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/api-keys/{key_id}",
    tags=["api-keys"],
    summary="Get an API key",
    description=BEYOND_CALLER,
)
async def get_api_key(
    key_id: str, session: ReadSessionDep, store: ApiKeysDep, access: ManageKeys
) -> ApiKeyOut:
    return await store.get_key(session, access.principal, key_id)


@router.post(
    "/api-keys/{key_id}/rotate",
    tags=["api-keys"],
    summary="Give an API key a new secret (the old one stops working at once)",
    description=BEYOND_CALLER,
)
async def rotate_api_key(
    key_id: str,
    request: Request,
    response: Response,
    session: SessionDep,
    store: ApiKeysDep,
    access: ManageKeys,
) -> ApiKeyCreated:
    rotated = await store.rotate_key(
        session, access.principal, key_id, request_id=_request_id(request, access)
    )
    response.headers.update(NO_STORE)
    return rotated


@router.delete(
    "/api-keys/{key_id}",
    tags=["api-keys"],
    summary="Revoke an API key (kept for the record; revoking again changes nothing)",
    description=BEYOND_CALLER,
)
async def revoke_api_key(
    key_id: str, request: Request, session: SessionDep, store: ApiKeysDep, access: ManageKeys
) -> ApiKeyOut:
    return await store.revoke_key(
        session, access.principal, key_id, request_id=_request_id(request, access)
    )


# --- agent mappings -----------------------------------------------------------------


@router.post(
    "/agent-mappings",
    tags=["agent-mappings"],
    status_code=status.HTTP_201_CREATED,
    summary="Grant agents matched by subject, e-mail, domain or SIRET their roles",
)
async def create_agent_mapping(
    data: AgentMappingCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    agents: AgentsDep,
    access: ManageMappings,
) -> AgentMappingOut:
    mapping = await agents.create_mapping(
        session, access.principal, data, request_id=_request_id(request, access)
    )
    response.headers["Location"] = f"/v1/agent-mappings/{mapping.id}"
    response.headers["ETag"] = mapping_etag(mapping)
    return mapping


@router.get(
    "/agent-mappings",
    tags=["agent-mappings"],
    summary="List agent mappings",
    description="Only the mappings no wider than the caller's own credential are listed.",
)
async def list_agent_mappings(
    session: ReadSessionDep,
    agents: AgentsDep,
    access: ManageMappings,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    match: Annotated[MatchKind | None, Query()] = None,
    network: Annotated[NetworkCode | None, Query()] = None,
) -> Page[AgentMappingOut]:
    return await agents.list_mappings(
        session, access.principal, match=match, network=network, cursor=cursor, limit=limit
    )


@router.get(
    "/agent-mappings/{mapping_id}",
    tags=["agent-mappings"],
    response_model=AgentMappingOut,
    summary="Get an agent mapping",
    description=BEYOND_CALLER,
)
async def get_agent_mapping(
    mapping_id: str,
    session: ReadSessionDep,
    agents: AgentsDep,
    access: ManageMappings,
    conditional: ConditionalGetDep,
) -> AgentMappingOut:
    mapping = await agents.get_mapping(session, access.principal, mapping_id)
    conditional.check(mapping_etag(mapping), mapping.updated_at)
    return mapping


@router.patch(
    "/agent-mappings/{mapping_id}",
    tags=["agent-mappings"],
    summary="Change an agent mapping's roles, network or sites (If-Match required)",
    description=BEYOND_CALLER,
)
async def patch_agent_mapping(
    mapping_id: str,
    patch: AgentMappingPatch,
    request: Request,
    response: Response,
    session: SessionDep,
    agents: AgentsDep,
    access: ManageMappings,
    if_match: IfMatch = None,
) -> AgentMappingOut:
    mapping = await agents.patch_mapping(
        session,
        access.principal,
        mapping_id,
        patch,
        if_match,
        request_id=_request_id(request, access),
    )
    response.headers["ETag"] = mapping_etag(mapping)
    return mapping


@router.delete(
    "/agent-mappings/{mapping_id}",
    tags=["agent-mappings"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an agent mapping (If-Match optional)",
    description=BEYOND_CALLER,
)
async def delete_agent_mapping(
    mapping_id: str,
    request: Request,
    session: SessionDep,
    agents: AgentsDep,
    access: ManageMappings,
    if_match: IfMatch = None,
) -> Response:
    await agents.delete_mapping(
        session, access.principal, mapping_id, if_match, request_id=_request_id(request, access)
    )
    return Response(status_code=204)


# --- audit log ------------------------------------------------------------------------


@router.get(
    "/audit-events",
    tags=["audit"],
    summary="Read the audit log, newest first",
    dependencies=[allowed(GatewayAction.audit_read)],
)
async def list_audit_events(
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    actor: Annotated[
        str | None,
        Query(
            max_length=300,
            pattern=NO_CONTROL_CHARACTERS,
            description='"api_key:<id>", "agent:<sub>"...',
        ),
    ] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=NO_CONTROL_CHARACTERS,
            description='"api_key.created", "request"...',
        ),
    ] = None,
    since: Annotated[UtcDatetime | None, Query(description="From this time on.")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Before this time.")] = None,
) -> Page[AuditEventOut]:
    return await audit.list_events(
        session, actor=actor, action=action, since=since, until=until, cursor=cursor, limit=limit
    )
