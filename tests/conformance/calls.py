"""Every call the conformance suite makes, app by app, and what each app owes.

The tests read these tables; test_openapi.py walks all of them, so every
answer any conformance test looks at is also checked against the app's
published OpenAPI document.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass

from tests.conformance.harness import APPS, GATEWAY, NOT_READY, SERVICES, Call, Caller

# The sites service's bound on an import body in this suite (conftest.py sets
# it), low enough for a small request to pass it; the default is 512 MiB.
SITES_IMPORT_MAX_BYTES = 1024
# The gateway's default body bound for its admin resources (API keys...).
GATEWAY_ADMIN_BODY_LIMIT = 64 * 1024

NOWHERE = "/v1/conformance/nothing-here"
HEALTHZ = Call("GET", "/healthz", "none")
DOCS = Call("GET", "/docs", "none")
READYZ = Call("GET", "/readyz", "none")
METRICS = Call("GET", "/metrics", "none")

_GZIP = (("content-type", "application/json"), ("content-encoding", "gzip"))
_CSV = (("content-type", "text/csv"),)


def jobs(service: str) -> str:
    """Every service's admin list of its outbox (the kit's jobs router)."""
    return f"/v1/{service}/jobs"


def not_ready(path: str, caller: Caller = "none") -> tuple[Call, ...]:
    """``path`` on each instance built on a database it cannot use."""
    return tuple(Call("GET", path, caller, instance=i) for i in NOT_READY)


# --- who may read the operations endpoints ----------------------------------------------


@dataclass(frozen=True)
class OpsAccess:
    """``open``: any caller that reaches the app; ``ops-token``: only with
    ``Authorization: Bearer <SPP_GATEWAY_METRICS_TOKEN>``."""

    metrics: str
    readiness_details: str


OPS_ACCESS: dict[str, OpsAccess] = {
    # The gateway is the platform's public face: what runs behind it and how
    # busy it is are for the operations tooling. Without a token configured,
    # /metrics answers 404 (tests/gateway/test_ops.py).
    GATEWAY: OpsAccess(metrics="ops-token", readiness_details="ops-token"),
    # A service is reached only on the internal network (probes, Prometheus,
    # the gateway); the gateway routes /v1 paths alone, never a service's
    # /metrics or /readyz, so no caller from outside can ask them.
    **{name: OpsAccess(metrics="open", readiness_details="open") for name in SERVICES},
}

METRICS_CALLS: dict[str, tuple[Call, ...]] = {
    GATEWAY: (
        METRICS,
        Call("GET", "/metrics", "ops"),
        Call("GET", "/metrics", "wrong"),
        Call("GET", "/readyz", "ops"),
        *not_ready("/readyz", "ops"),
    ),
    **{name: (METRICS,) for name in SERVICES},
}


# --- problem+json: which app answers which status, and how ----------------------------


@dataclass(frozen=True)
class Gap:
    """A status an app cannot answer, and why."""

    reason: str


STATUSES = (400, 401, 404, 405, 413, 415, 422, 429)


def _service_problems(name: str) -> dict[int, tuple[Call, ...] | Gap]:
    return {
        # The kit's guard, before any route: control characters the database
        # would choke on.
        400: (Call("GET", jobs(name) + "?kind=a%00b", "admin"),),
        # The kit's assertion guard: no assertion, no route.
        401: (Call("GET", jobs(name), "none"),),
        404: (Call("GET", NOWHERE, "anonymous"),),
        405: (Call("DELETE", jobs(name), "admin"),),
        # Only the sites import reads a body with a bound of its own; the
        # other services have no route reading a body yet, and the kit sets no
        # body bound for JSON routes (the gateway's RequestBounds does, in
        # front of every service).
        413: Gap(f"no route of the {name} service reads a request body yet")
        if name != "sites"
        else (
            Call("POST", "/v1/sites/import", "admin", _CSV, b"x" * (SITES_IMPORT_MAX_BYTES + 1)),
        ),
        # The kit's guard: a Content-Encoding the service would not decode,
        # on any route (on a body-reading one where the service has any).
        415: (
            Call("POST", "/v1/networks", "admin", _GZIP, gzip.compress(b'{"code": "gz"}'))
            if name == "sites"
            else Call("GET", jobs(name), "admin", _GZIP),
        ),
        422: (Call("GET", jobs(name) + "?limit=abc", "admin"),)
        + (
            (Call("POST", "/v1/networks", "admin", _GZIP[:1], b'{"code": "x1",'),)
            if name == "sites"
            else ()
        ),
        # Rate limits are the gateway's (per caller, across every service,
        # ADR 0014); the kit has none, and a service is reached directly only
        # from the internal network.
        429: Gap("rate limits are the gateway's; the kit has none"),
    }


PROBLEMS: dict[str, dict[int, tuple[Call, ...] | Gap]] = {
    GATEWAY: {
        # RequestBounds, before anything reads the request.
        400: (Call("GET", "/v1/networks?q=%1b%5b31m", "anonymous"),),
        # A credential nobody issued (the proxy), and none on an admin
        # resource of the gateway's own (its admin routes).
        401: (Call("GET", "/v1/networks", "wrong"), Call("GET", "/v1/api-keys", "anonymous")),
        # No service owns the path (the proxy), no route of the gateway's own.
        404: (Call("GET", NOWHERE, "anonymous"), Call("GET", "/nothing-here", "anonymous")),
        # A service's 405 passed through, and the gateway's own.
        405: (Call("DELETE", "/v1/networks", "admin"), Call("POST", "/healthz", "none")),
        # The admin group's body bound (RequestBounds).
        413: (
            Call(
                "POST",
                "/v1/api-keys",
                "admin",
                _GZIP[:1],
                b" " * (GATEWAY_ADMIN_BODY_LIMIT + 1),
            ),
        ),
        # The gateway forwards the body as sent, the service refuses it; its
        # own routes refuse it as the services do.
        415: (
            Call("POST", "/v1/networks", "admin", _GZIP, gzip.compress(b'{"code": "gz"}')),
            Call("POST", "/v1/api-keys", "admin", _GZIP, gzip.compress(b'{"name": "gz"}')),
        ),
        # The gateway's own route, and a service's passed through.
        422: (
            Call("GET", "/v1/audit-events?limit=abc", "admin"),
            Call("GET", "/v1/networks?limit=abc", "anonymous"),
        ),
        # Imports are closed to anonymous callers by default (0/hour).
        429: (Call("POST", "/v1/sites/import", "anonymous", _CSV, b"code\n"),),
    },
    **{name: _service_problems(name) for name in SERVICES},
}


def problem_calls() -> Iterator[tuple[str, int, Call]]:
    for name in APPS:
        for status, calls in PROBLEMS[name].items():
            if not isinstance(calls, Gap):
                for call in calls:
                    yield name, status, call


# --- the assertion guard -----------------------------------------------------------------

# Every service refuses these callers on every route but the operations ones,
# with these problem types; an admin's valid assertion passes (the control).
REFUSED_ASSERTIONS: dict[Caller, str] = {
    "none": "missing-assertion",
    "garbage": "invalid-assertion",
    "expired": "invalid-assertion",
    "foreign": "invalid-assertion",
    "replayed": "invalid-assertion",
    "service-key": "invalid-assertion",
}


def guard_calls(name: str) -> tuple[Call, ...]:
    if name == GATEWAY:
        # An admin's assertion, signed with the platform's key, sent by an
        # anonymous client to each service's admin-only list: the gateway
        # must drop it and assert the anonymous caller it saw.
        return tuple(Call("GET", jobs(s), "forged") for s in SERVICES)
    return (
        Call("GET", jobs(name), "admin"),
        *(Call("GET", jobs(name), caller) for caller in REFUSED_ASSERTIONS),
    )


# --- security headers ----------------------------------------------------------------------


def secured_calls(name: str) -> tuple[Call, ...]:
    """API answers of every kind: health, a problem, a resource (through the
    gateway: each service's)."""
    if name == GATEWAY:
        proxied = tuple(Call("GET", jobs(s), "admin") for s in SERVICES)
        return (HEALTHZ, Call("GET", NOWHERE), *proxied)
    return (HEALTHZ, Call("GET", NOWHERE), Call("GET", jobs(name), "admin"))


def every_call(name: str) -> Iterator[Call]:
    """Every call the conformance tests make to app ``name``."""
    yield HEALTHZ
    yield READYZ
    yield from not_ready("/readyz")
    yield from not_ready("/healthz")
    yield from METRICS_CALLS[name]
    for app, _, call in problem_calls():
        if app == name:
            yield call
    yield from guard_calls(name)
    yield from secured_calls(name)
    yield DOCS
