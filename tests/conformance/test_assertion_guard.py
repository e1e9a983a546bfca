"""The identity assertion: services refuse calls without a valid one; the
gateway never forwards one a client sent."""

from __future__ import annotations

import pytest

from tests.conformance.calls import REFUSED_ASSERTIONS, jobs
from tests.conformance.harness import GATEWAY, SERVICES, App, Call, Caller


def test_an_admin_s_valid_assertion_opens_the_admin_list(service: App) -> None:
    answer = service.answer(Call("GET", jobs(service.name), "admin"))
    assert answer.status == 200, answer.response.text


@pytest.mark.parametrize("caller", list(REFUSED_ASSERTIONS))
def test_a_service_refuses_a_missing_or_invalid_assertion(service: App, caller: Caller) -> None:
    answer = service.answer(Call("GET", jobs(service.name), caller))
    assert (answer.status, answer.content_type) == (401, "application/problem+json")
    body = answer.response.json()
    assert body["type"].endswith("/" + REFUSED_ASSERTIONS[caller])
    if caller == "expired":
        assert "expired" in body["detail"]


@pytest.mark.parametrize("upstream", SERVICES)
def test_the_gateway_drops_an_assertion_a_client_sent(
    conformance_apps: dict[str, App], upstream: str
) -> None:
    # The same admin assertion the service accepts when the gateway sends it...
    direct = conformance_apps[upstream].answer(Call("GET", jobs(upstream), "admin"))
    assert direct.status == 200
    # ...sent by a client: the service sees the anonymous caller the gateway saw.
    answer = conformance_apps[GATEWAY].answer(Call("GET", jobs(upstream), "forged"))
    assert (answer.status, answer.content_type) == (401, "application/problem+json")
    assert answer.response.json()["type"].endswith("/unauthorized")
    assert answer.response.headers["www-authenticate"] == "Bearer"
