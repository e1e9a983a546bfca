"""The OpenAPI document of an app, with what the routes alone do not say.

Front-end teams generate their clients from the gateway's merged document,
so an answer it does not declare is a bug. FastAPI declares a route's success
and its 422; everything else an operation can answer follows from what the
kit puts in front of every route, and is declared here once, from the route
itself, rather than by hand in each decorator:

- every operation: 400 (control characters in the path or query, a malformed
  header), 401 (no or invalid credentials), 415 (a ``Content-Encoding`` on the
  request), 503 (the database busy or unreachable);
- with parameters or a body: 422, as application/problem+json (FastAPI's own
  ``HTTPValidationError`` is never what the handlers answer);
- with a body: 413 and 415;
- with a path parameter: 404;
- state-changing methods: 409 (a duplicate, a status that forbids the
  change, an Idempotency-Key still in flight);
- an ``If-Match`` parameter: 412 and 428;
- an ``If-None-Match`` or ``If-Modified-Since`` parameter: 304, and the
  validators (ETag, Last-Modified) on the 200;
- an action the permission matrix does not grant to the public: 403, and
  the credentials that can carry it (``security``); a public action is
  callable without any.

A route's own ``responses=`` come first: this only adds what is missing.
The gateway adds what it answers itself in front of every operation
(spp_gateway.openapi).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from spp_shared.contracts.permissions import Action, Role
from spp_shared.kit.conditional import NOT_MODIFIED, VALIDATOR_HEADERS
from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE
from spp_shared.kit.permissions import api_routes, declared_actions

JSONDict = dict[str, Any]

PROBLEM_SCHEMA: JSONDict = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "location": {"type": "string"},
                    "field": {"type": "string"},
                    "line": {"type": "integer"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
PROBLEM_REF: JSONDict = {"$ref": "#/components/schemas/Problem"}

# The credentials the gateway accepts (spp_gateway.auth). Whoever serves the
# document may describe them better (the gateway names its OIDC provider).
API_KEY_HEADER = "apiKeyHeader"
BEARER = "bearerToken"
AGENT_OIDC = "agentOidc"
SECURITY_SCHEMES: Mapping[str, JSONDict] = {
    API_KEY_HEADER: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key (`spp_<id>_<secret>`), for machine clients.",
    },
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <token>`: an API key, or the platform's "
        "bootstrap administrator token.",
    },
    AGENT_OIDC: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An agent's access token from the platform's OIDC provider "
        "(ProConnect), as `Authorization: Bearer <jwt>`.",
    },
}
# Any one of them: what the caller may do follows from the roles behind it.
SIGNED_IN: list[JSONDict] = [{API_KEY_HEADER: []}, {BEARER: []}, {AGENT_OIDC: []}]
# ``{}``: anonymous. A signed-in caller may still call (with its own rate budget).
PUBLIC: list[JSONDict] = [{}, *SIGNED_IN]

_WRITES = frozenset({"post", "put", "patch", "delete"})
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

# Why each status, said once for every operation that can answer it.
ANSWERS: Mapping[str, str] = {
    "400": "Bad request: control characters in the path or the query string, or a "
    "malformed header (If-Match, Idempotency-Key).",
    "401": "Authentication required, or the credential sent is not valid.",
    "403": "The caller's roles or scopes do not allow this, or not on this object.",
    "404": "Not found.",
    "409": "Conflict with the current state (a duplicate, a status that forbids "
    "the change, an Idempotency-Key still in flight).",
    "412": "Precondition failed: the resource changed since the ETag sent in If-Match.",
    "413": "Payload too large.",
    "415": "Unsupported media type, or a Content-Encoding the API does not read.",
    "422": "The request is not valid: `errors` names each invalid field.",
    "428": "Precondition required: send If-Match with the ETag you last read.",
    "503": "Service unavailable (busy or unreachable database); retry later.",
}


def operation_id(route: APIRoute) -> str:
    """Stable operation ids, the function's name: front-ends generate clients from them."""
    return route.name


def problem(description: str) -> JSONDict:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}}


def _headers_taken(op: JSONDict) -> set[str]:
    return {
        str(p.get("name", "")).lower()
        for p in op.get("parameters") or []
        if isinstance(p, dict) and p.get("in") == "header"
    }


def declare_answers(op: JSONDict, method: str) -> None:
    """Add to ``op`` (an operation of ``method``) every answer the kit can give."""
    responses: JSONDict = op.setdefault("responses", {})
    params = op.get("parameters") or []
    has_body = "requestBody" in op
    headers = _headers_taken(op)
    statuses = {"400", "401", "415", "503"}
    if params or has_body:
        statuses.add("422")
    if has_body:
        statuses.add("413")
    if any(isinstance(p, dict) and p.get("in") == "path" for p in params):
        statuses.add("404")
    if method in _WRITES:
        statuses.add("409")
    if "if-match" in headers:
        statuses |= {"412", "428"}
    # FastAPI's 422 is its HTTPValidationError as application/json; the
    # handlers answer a problem.
    if "422" in responses and PROBLEM_MEDIA_TYPE not in (responses["422"].get("content") or {}):
        del responses["422"]
    for status in sorted(statuses):
        responses.setdefault(status, problem(ANSWERS[status]))
    if headers & {"if-none-match", "if-modified-since"}:
        responses.setdefault("304", NOT_MODIFIED[304])
        ok = responses.get("200")
        if isinstance(ok, dict):
            ok.setdefault("headers", VALIDATOR_HEADERS)


def _permission(action: Action) -> tuple[bool, str]:
    """Whether ``action`` is public, and who holds it (for the description)."""
    row = action.grants
    if Role.public in row:
        return True, f"Public (`{action.value}`): no credential needed."
    holders = ", ".join(f"{role.value} ({scope.value})" for role, scope in row.items())
    return False, f"Needs `{action.value}`, granted to: {holders}."


def declare_security(op: JSONDict, route: APIRoute) -> None:
    """``security`` (and 403) from the one action the route declares."""
    actions = declared_actions(route)
    if len(actions) != 1:
        return  # not an API endpoint (health); the matrix test wants exactly one
    public, who = _permission(actions[0])
    op["security"] = [dict(r) for r in (PUBLIC if public else SIGNED_IN)]
    op["x-spp-action"] = actions[0].value
    op["description"] = f"{op['description']}\n\n{who}" if op.get("description") else who
    if not public:
        op.setdefault("responses", {}).setdefault("403", problem(ANSWERS["403"]))


COMPONENTS_REF = "#/components/"


def component_refs(node: Any, out: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
    """Every ``(kind, name)`` of a ``#/components/<kind>/<name>`` under ``node``."""
    found = set() if out is None else out
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENTS_REF):
            kind, _, name = ref[len(COMPONENTS_REF) :].partition("/")
            found.add((kind, name))
        for value in node.values():
            component_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            component_refs(value, found)
    return found


def _drop_validation_error_schemas(schema: JSONDict) -> None:
    """FastAPI's HTTPValidationError, once no 422 refers to it any more."""
    schemas = schema.get("components", {}).get("schemas", {})
    if ("schemas", "HTTPValidationError") not in component_refs(schema.get("paths")):
        schemas.pop("HTTPValidationError", None)
        if ("schemas", "ValidationError") not in component_refs([schema.get("paths"), schemas]):
            schemas.pop("ValidationError", None)


def describe(
    schema: JSONDict, routes: Iterable[Any], tags: Mapping[str, str] | None = None
) -> JSONDict:
    """Complete ``schema`` (FastAPI's document of ``routes``) in place; returns it."""
    paths: JSONDict = schema.get("paths") or {}
    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        item = paths.get(route.path_format) or {}
        for method in route.methods or ():
            op = item.get(method.lower())
            if isinstance(op, dict):
                declare_answers(op, method.lower())
                declare_security(op, route)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = dict(SECURITY_SCHEMES)
    _drop_validation_error_schemas(schema)
    if tags:
        used = {t for item in paths.values() for op in item.values() for t in op.get("tags", [])}
        schema["tags"] = [
            {"name": name, "description": text} for name, text in tags.items() if name in used
        ]
    return schema


def build_openapi(
    *,
    title: str,
    version: str,
    description: str | None,
    routes: Iterable[Any],
    tags: Mapping[str, str] | None = None,
) -> JSONDict:
    """FastAPI's document of ``routes``, completed by :func:`describe`."""
    routes = list(routes)
    schema = get_openapi(title=title, version=version, description=description, routes=routes)
    return describe(schema, routes, tags)
