"""Liveness and readiness, on every app: what a probe and a load balancer read."""

from __future__ import annotations

import pytest

from tests.conformance.calls import HEALTHZ, OPS_ACCESS, READYZ
from tests.conformance.harness import NOT_READY, SERVICES, App, Call, Instance


def test_healthz_says_alive(app: App) -> None:
    answer = app.answer(HEALTHZ)
    assert (answer.status, answer.content_type) == (200, "application/json")
    assert answer.response.json() == {"status": "ok", "service": app.name}


def test_readyz_says_ready_with_the_details_its_access_rule_allows(app: App) -> None:
    answer = app.answer(READYZ)
    assert (answer.status, answer.content_type) == (200, "application/json")
    if OPS_ACCESS[app.name].readiness_details == "open":
        assert answer.response.json() == {"status": "ok", "service": app.name, "database": "ok"}
        return
    # Anyone learns whether to send traffic; which part is down, only operations.
    assert answer.response.json() == {"status": "ok"}
    details = app.answer(Call("GET", "/readyz", "ops")).response.json()
    assert details["status"] == details["database"] == "ok"
    assert {name: s["status"] for name, s in details["services"].items()} == dict.fromkeys(
        SERVICES, "ok"
    )


@pytest.mark.parametrize("instance", NOT_READY)
def test_readyz_says_unavailable_when_the_database_cannot_be_used(
    app: App, instance: Instance
) -> None:
    answer = app.answer(Call("GET", "/readyz", "none", instance=instance))
    assert (answer.status, answer.content_type) == (503, "application/json")
    body = answer.response.json()
    assert body["status"] == "unavailable"
    # The address of the database (and its password) is never in the answer.
    assert "127.0.0.1" not in answer.response.text
    assert "sqlite" not in answer.response.text.lower()
    if OPS_ACCESS[app.name].readiness_details == "open":
        assert body["service"] == app.name
        assert body["database"] not in ("ok", None)
    else:
        assert body == {"status": "unavailable"}
        details = app.answer(Call("GET", "/readyz", "ops", instance=instance)).response.json()
        assert details["database"] == "unavailable"
        # Its services are up: the database alone is why.
        assert {s["status"] for s in details["services"].values()} == {"ok"}
    # Alive all the same: restarting the process would not bring the database back.
    assert app.answer(Call("GET", "/healthz", "none", instance=instance)).status == 200
