"""One OpenAPI document for the whole platform, merged from the services'.

Front-end teams generate their clients from this document, so the names in
it never change under them (docs/decisions/0026):

- Paths: each service contributes only the paths the gateway routes to it.
- Components: a name several services define identically (``Problem``, a
  shared contract) is kept once. Two different definitions under one name, or
  one operation id in two services, are refused (:class:`OpenAPIClash`):
  renaming either would change a client already generated. CI merges the
  real services' documents (tests/test_openapi.py), so a clash fails there
  before it reaches a gateway, which would answer 503 for its document.
- Schemas no operation refers to, directly or not, are left out.
- Tags: an untagged operation gets its service's name; ``x-tagGroups`` groups
  tags by service.
- A service that is down is left out and listed in
  ``info.x-unavailable-services``.
- The gateway owns authentication, so its security schemes replace the
  services' copies (the OIDC provider named when one is configured), and
  the internal identity assertion header never shows.
- Every operation also declares what the gateway itself may answer in front
  of it (bad credentials, a URL or header block too large, a rate limit, the
  service down or too slow; for an operation with a body, a body too large or
  too slow), so a client generated from the document knows every status it
  can meet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson
import structlog

from spp_gateway.routes import LOCAL, RouteTable, route_key
from spp_gateway.upstream import UpstreamClient
from spp_shared.kit.identity import ASSERTION_HEADER
from spp_shared.kit.openapi import (
    AGENT_OIDC,
    HTTP_METHODS,
    SECURITY_SCHEMES,
    component_refs,
    problem,
)

JSONDict = dict[str, Any]
log = structlog.get_logger("spp.gateway.openapi")

LICENSE: JSONDict = {
    # The API description, like the data the platform publishes, is open (ADR 0026).
    "name": "Licence Ouverte / Open Licence 2.0 (Etalab)",
    "url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
}

# Answers of the gateway's own, in front of any operation...
GATEWAY_ANSWERS: Mapping[str, str] = {
    "400": "Bad request: control characters in the path or the query string.",
    "401": "The credential sent is not valid (unknown, revoked or expired key, bad token), "
    "or two were sent.",
    "414": "URI too long.",
    "429": "Too many requests: the caller's rate limit; see Retry-After and RateLimit.",
    "431": "Request header fields too large.",
    "502": "Bad gateway: the service answered something unusable.",
    "503": "Service unavailable: the service, or the credential store, cannot be reached.",
    "504": "Gateway timeout: the service was too slow.",
}
# ...and in front of one that takes a body.
BODY_ANSWERS: Mapping[str, str] = {
    "408": "Request timeout: the body came too slowly.",
    "413": "Payload too large.",
}
_INTERNAL_HEADERS = frozenset({ASSERTION_HEADER.lower()})


class OpenAPIClash(ValueError):
    """Two services define one schema or operation id differently."""


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def security_schemes(oidc_issuer: str | None) -> JSONDict:
    """The credentials the gateway accepts; the OIDC provider named when configured."""
    schemes = {name: dict(scheme) for name, scheme in SECURITY_SCHEMES.items()}
    if oidc_issuer:
        schemes[AGENT_OIDC] = {
            "type": "openIdConnect",
            "openIdConnectUrl": oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
            "description": SECURITY_SCHEMES[AGENT_OIDC]["description"],
        }
    return schemes


_RETRY_AFTER: JSONDict = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}


def _declare_gateway_answers(op: JSONDict) -> None:
    responses = op.setdefault("responses", {})
    answers = {**GATEWAY_ANSWERS, **(BODY_ANSWERS if "requestBody" in op else {})}
    for status, description in answers.items():
        responses.setdefault(status, problem(description))
    responses["429"].setdefault("headers", _RETRY_AFTER)


def _without_internal_headers(op: JSONDict) -> None:
    params = op.get("parameters")
    if isinstance(params, list):
        op["parameters"] = [
            p
            for p in params
            if not (
                isinstance(p, dict)
                and p.get("in") == "header"
                and str(p.get("name", "")).lower() in _INTERNAL_HEADERS
            )
        ]


def _reachable_schemas(paths: JSONDict, schemas: JSONDict) -> set[str]:
    seen: set[str] = set()
    todo = [name for kind, name in component_refs(paths) if kind == "schemas"]
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        todo.extend(n for kind, n in component_refs(schemas[name]) if kind == "schemas")
    return seen


def merge_openapi(
    docs: Mapping[str, JSONDict | None],
    routes: RouteTable,
    *,
    title: str = "Services Publics+ API",
    version: str = "1.0.0",
    server_url: str | None = None,
    oidc_issuer: str | None = None,
) -> JSONDict:
    """Merge the services' documents (``None`` for a service that is down).

    Raises :class:`OpenAPIClash` when two services define one name differently.
    """
    # A copy: the operations are completed in place, and a caller's own
    # document (the gateway's, cached by FastAPI) must stay as it was.
    available = {name: orjson.loads(orjson.dumps(doc)) for name, doc in docs.items() if doc}
    unavailable = [name for name, doc in docs.items() if not doc]

    # Paths the gateway actually routes to each service.
    paths: dict[str, JSONDict] = {}
    for service, doc in available.items():
        owned = set(routes.prefixes(service))
        paths[service] = {
            p: item for p, item in (doc.get("paths") or {}).items() if route_key(p) in owned
        }

    components: dict[str, JSONDict] = {}
    defined_by: dict[tuple[str, str], str] = {}
    clashes: list[str] = []
    for service, doc in available.items():
        for kind, entries in (doc.get("components") or {}).items():
            if kind == "securitySchemes" or not isinstance(entries, dict):
                continue  # the gateway's own, below
            section = components.setdefault(kind, {})
            for name, definition in entries.items():
                first = defined_by.setdefault((kind, name), service)
                if name in section and _canonical(section[name]) != _canonical(definition):
                    clashes.append(f"{kind} {name!r} ({first} and {service})")
                section.setdefault(name, definition)

    op_services: dict[str, str] = {}
    for service, service_paths in paths.items():
        for item in service_paths.values():
            for method, op in item.items():
                if method in HTTP_METHODS and isinstance(op, dict) and "operationId" in op:
                    first = op_services.setdefault(op["operationId"], service)
                    if first != service:
                        clashes.append(f"operationId {op['operationId']!r} ({first} and {service})")
    if clashes:
        raise OpenAPIClash("Names defined differently by two services: " + "; ".join(clashes))

    merged_paths: JSONDict = {}
    tags: dict[str, JSONDict] = {}
    groups: dict[str, list[str]] = {}
    for service, service_paths in paths.items():
        declared = {
            t["name"]: t for t in available[service].get("tags") or [] if isinstance(t, dict)
        }
        group = groups.setdefault(service, [])
        for path, item in service_paths.items():
            for method, op in item.items():
                if method not in HTTP_METHODS or not isinstance(op, dict):
                    continue
                _without_internal_headers(op)
                _declare_gateway_answers(op)
                op_tags = op.setdefault("tags", []) or [service]
                op["tags"] = op_tags
                for tag in op_tags:
                    tags.setdefault(tag, declared.get(tag, {"name": tag}))
                    if tag not in group:
                        group.append(tag)
            merged_paths[path] = item

    schemas = components.get("schemas", {})
    used = _reachable_schemas(merged_paths, schemas)
    components["schemas"] = {name: schemas[name] for name in sorted(schemas) if name in used}
    components["securitySchemes"] = security_schemes(oidc_issuer)

    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "The public API of Services Publics+, served by the gateway. "
            "Errors are application/problem+json (RFC 9457). Public reads need no "
            "credential; the other operations take an API key (X-API-Key or "
            "Authorization: Bearer) or an agent's OIDC token.",
            "license": LICENSE,
            "x-unavailable-services": unavailable,
        },
        "servers": [
            {
                "url": server_url.rstrip("/") if server_url else "/",
                "description": "The platform's gateway",
            }
        ],
        "paths": dict(sorted(merged_paths.items())),
        "components": components,
        "tags": list(tags.values()),
        "x-tagGroups": [{"name": s, "tags": t} for s, t in groups.items() if t],
    }


class OpenAPICache:
    """Fetches the services' documents concurrently and keeps the merge a while.

    A document with a service missing is kept only briefly, so the spec heals
    soon after the service comes back; so is a clash (:class:`OpenAPIClash`,
    raised by :meth:`get` until the services agree again).
    """

    def __init__(
        self,
        routes: RouteTable,
        upstream: UpstreamClient,
        *,
        ttl: float,
        fetch_timeout: float,
        degraded_ttl: float = 5.0,
        local: Callable[[], JSONDict] | None = None,
        server_url: str | None = None,
        oidc_issuer: str | None = None,
    ) -> None:
        self.routes = routes
        self.local = local  # the gateway's own resources (API keys, mappings, audit)
        self.upstream = upstream
        self.ttl = ttl
        self.degraded_ttl = min(degraded_ttl, ttl)
        self.fetch_timeout = fetch_timeout
        self.server_url = server_url
        self.oidc_issuer = oidc_issuer
        self._body: bytes | None = None
        self._clash: OpenAPIClash | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self, base_url: str) -> JSONDict | None:
        timeout = aiohttp.ClientTimeout(total=self.fetch_timeout)
        try:
            async with self.upstream.session.get(
                base_url + "/openapi.json", timeout=timeout, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    return None
                doc = orjson.loads(await resp.read())
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError):
            return None
        return doc if isinstance(doc, dict) else None

    def _cached(self) -> bytes | None:
        if time.monotonic() >= self._expires:
            return None
        if self._clash is not None:
            raise self._clash
        return self._body

    async def get(self) -> bytes:
        if (cached := self._cached()) is not None:
            return cached
        async with self._lock:  # one refresh at a time; the others reuse it
            if (cached := self._cached()) is not None:
                return cached
            upstreams = list(self.routes.upstreams.values())
            fetched = await asyncio.gather(*(self._fetch(u.base_url) for u in upstreams))
            docs = {u.name: doc for u, doc in zip(upstreams, fetched, strict=True)}
            if self.local is not None:
                docs[LOCAL] = self.local()
            try:
                merged = merge_openapi(
                    docs, self.routes, server_url=self.server_url, oidc_issuer=self.oidc_issuer
                )
            except OpenAPIClash as exc:
                log.error("openapi_clash", error=str(exc))
                self._body, self._clash = None, exc
                self._expires = time.monotonic() + self.degraded_ttl
                raise
            self._body, self._clash = orjson.dumps(merged), None
            degraded = bool(merged["info"]["x-unavailable-services"])
            self._expires = time.monotonic() + (self.degraded_ttl if degraded else self.ttl)
            return self._body
