"""One OpenAPI document for the whole platform, merged from the services'.

Front-end teams generate their clients from this document, so the merge is
deterministic: the same inputs always give the same names.

- Paths: each service contributes only the paths the gateway routes to it.
- Components: a name defined identically by several services is kept once; a
  name whose definitions differ (or that refers to such a name) is prefixed
  with the service (``Site`` -> ``SitesSite``, ``FeedbackSite``) in every
  service defining it, and that service's ``$ref``s are rewritten.
- Operation ids: kept unless two services use the same one, then prefixed
  (``sites_list``) in both.
- Tags: an untagged operation gets its service's name; ``x-tagGroups`` groups
  tags by service.
- A service that is down is left out and listed in
  ``info.x-unavailable-services``.
- Every operation also declares what the gateway itself may answer in front
  of it (a URL or header block too large, the service down or too slow; for
  an operation with a body, a body too large or too slow), so a client
  generated from the document knows every status it can meet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson

from spp_gateway.routes import LOCAL, RouteTable, route_key
from spp_gateway.upstream import UpstreamClient

COMPONENTS_REF = "#/components/"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

JSONDict = dict[str, Any]


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _refs(node: Any, out: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Every ``#/components/<kind>/<name>`` referenced under ``node``."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENTS_REF):
            kind, _, name = ref[len(COMPONENTS_REF) :].partition("/")
            out.add((kind, name))
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)
    return out


def _rewrite_refs(node: Any, renames: Mapping[tuple[str, str], str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(COMPONENTS_REF):
                kind, _, name = value[len(COMPONENTS_REF) :].partition("/")
                new = renames.get((kind, name))
                out[key] = f"{COMPONENTS_REF}{kind}/{new}" if new else value
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


_PROBLEM_REF = {"$ref": COMPONENTS_REF + "schemas/Problem"}
# Answers of the gateway's own, in front of any operation...
GATEWAY_ANSWERS: Mapping[str, str] = {
    "414": "URI too long",
    "431": "Request header fields too large",
    "502": "Bad gateway",
    "503": "Service unavailable",
    "504": "Gateway timeout",
}
# ...and in front of one that takes a body.
BODY_ANSWERS: Mapping[str, str] = {"408": "Request timeout", "413": "Payload too large"}


def _declare_gateway_answers(op: JSONDict) -> None:
    responses = op.setdefault("responses", {})
    answers = {**GATEWAY_ANSWERS, **(BODY_ANSWERS if "requestBody" in op else {})}
    for status, description in answers.items():
        responses.setdefault(
            status,
            {
                "description": description,
                "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
            },
        )


def _prefixed(service: str, name: str) -> str:
    return service[:1].upper() + service[1:] + name


def merge_openapi(
    docs: Mapping[str, JSONDict | None],
    routes: RouteTable,
    *,
    title: str = "Services Publics+ API",
    version: str = "1.0.0",
) -> JSONDict:
    """Merge the services' documents (``None`` for a service that is down)."""
    available = {name: doc for name, doc in docs.items() if doc is not None}
    unavailable = [name for name, doc in docs.items() if doc is None]

    # Paths the gateway actually routes to each service.
    paths: dict[str, JSONDict] = {}
    for service, doc in available.items():
        owned = set(routes.prefixes(service))
        paths[service] = {
            p: item for p, item in (doc.get("paths") or {}).items() if route_key(p) in owned
        }

    # Components: which names clash between services.
    defs: dict[tuple[str, str], dict[str, Any]] = {}
    for service, doc in available.items():
        for kind, entries in (doc.get("components") or {}).items():
            if isinstance(entries, dict):
                for name, definition in entries.items():
                    defs.setdefault((kind, name), {})[service] = definition
    clashing = {
        key
        for key, by_service in defs.items()
        if len({_canonical(d) for d in by_service.values()}) > 1
    }
    # Identical text is not identical meaning when it refers to a clashing name.
    changed = True
    while changed:
        changed = False
        for key, by_service in defs.items():
            if key in clashing or len(by_service) < 2:
                continue
            if any(_refs(d, set()) & clashing for d in by_service.values()):
                clashing.add(key)
                changed = True
    renames: dict[str, dict[tuple[str, str], str]] = {
        service: {key: _prefixed(service, key[1]) for key in clashing if service in defs[key]}
        for service in available
    }

    components: dict[str, JSONDict] = {}
    for (kind, name), by_service in sorted(defs.items()):
        section = components.setdefault(kind, {})
        for service, definition in by_service.items():
            rewritten = _rewrite_refs(definition, renames[service])
            section[renames[service].get((kind, name), name)] = rewritten
    components.setdefault("securitySchemes", {}).setdefault(
        "bootstrapBearer",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "Authorization: Bearer <token> (bootstrap token today; "
            "API keys and OIDC later). Anonymous calls send nothing.",
        },
    )

    # Operation ids used by more than one service get the service's prefix.
    seen: dict[str, set[str]] = {}
    for service, service_paths in paths.items():
        for item in service_paths.values():
            for method, op in item.items():
                if method in HTTP_METHODS and isinstance(op, dict) and "operationId" in op:
                    seen.setdefault(op["operationId"], set()).add(service)
    duplicated = {op_id for op_id, services in seen.items() if len(services) > 1}

    merged_paths: JSONDict = {}
    tags: dict[str, JSONDict] = {}
    groups: dict[str, list[str]] = {}
    for service, service_paths in paths.items():
        declared = {
            t["name"]: t for t in available[service].get("tags") or [] if isinstance(t, dict)
        }
        group = groups.setdefault(service, [])
        for path, item in service_paths.items():
            item = _rewrite_refs(item, renames[service])
            for method, op in item.items():
                if method not in HTTP_METHODS or not isinstance(op, dict):
                    continue
                if op.get("operationId") in duplicated:
                    op["operationId"] = f"{service}_{op['operationId']}"
                _declare_gateway_answers(op)
                op_tags = op.setdefault("tags", []) or [service]
                op["tags"] = op_tags
                for tag in op_tags:
                    tags.setdefault(tag, declared.get(tag, {"name": tag}))
                    if tag not in group:
                        group.append(tag)
            merged_paths[path] = item

    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "The public API of Services Publics+, served by the gateway. "
            "Errors are application/problem+json (RFC 9457).",
            "x-unavailable-services": unavailable,
        },
        "paths": dict(sorted(merged_paths.items())),
        "components": components,
        "tags": list(tags.values()),
        "x-tagGroups": [{"name": s, "tags": t} for s, t in groups.items() if t],
    }


class OpenAPICache:
    """Fetches the services' documents concurrently and keeps the merge a while.

    A document with a service missing is kept only briefly, so the spec heals
    soon after the service comes back.
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
    ) -> None:
        self.routes = routes
        self.local = local  # the gateway's own resources (API keys, mappings, audit)
        self.upstream = upstream
        self.ttl = ttl
        self.degraded_ttl = min(degraded_ttl, ttl)
        self.fetch_timeout = fetch_timeout
        self._body: bytes | None = None
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

    async def get(self) -> bytes:
        if self._body is not None and time.monotonic() < self._expires:
            return self._body
        async with self._lock:  # one refresh at a time; the others reuse it
            if self._body is not None and time.monotonic() < self._expires:
                return self._body
            upstreams = list(self.routes.upstreams.values())
            fetched = await asyncio.gather(*(self._fetch(u.base_url) for u in upstreams))
            docs = {u.name: doc for u, doc in zip(upstreams, fetched, strict=True)}
            if self.local is not None:
                docs[LOCAL] = self.local()
            merged = merge_openapi(docs, self.routes)
            self._body = orjson.dumps(merged)
            degraded = bool(merged["info"]["x-unavailable-services"])
            self._expires = time.monotonic() + (self.degraded_ttl if degraded else self.ttl)
            return self._body
