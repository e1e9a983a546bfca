"""Browser-facing security headers on every answer of every app.

The gateway sets them on all it answers; the services set them on their own
answers too (kit/security_headers.py), so a service reached without the
gateway (its docs on the internal network, an ingress misrouted) is as safe,
and the gateway keeps theirs rather than doubling them.
"""

from __future__ import annotations

import pytest

from spp_shared.kit.security_headers import API_CSP, SECURITY_HEADERS
from tests.conformance.calls import DOCS, secured_calls
from tests.conformance.harness import APPS, App, Call


@pytest.mark.parametrize(
    ("name", "call"),
    [
        pytest.param(name, call, id=f"{name}-{call}")
        for name in APPS
        for call in secured_calls(name)
    ],
)
def test_every_answer_carries_the_security_headers_once(
    conformance_apps: dict[str, App], name: str, call: Call
) -> None:
    headers = conformance_apps[name].answer(call).response.headers
    for header, value in SECURITY_HEADERS:
        assert headers.get_list(header.decode()) == [value.decode()], header
    assert headers.get_list("content-security-policy") == [API_CSP.decode()]
    assert "server" not in headers
    assert "x-powered-by" not in headers


def test_the_docs_page_may_run_exactly_its_own_scripts(app: App) -> None:
    answer = app.answer(DOCS)
    assert (answer.status, answer.content_type) == (200, "text/html")
    csp = answer.response.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; script-src https://cdn.jsdelivr.net 'sha256-")
    assert "frame-ancestors 'none'" in csp
    assert answer.response.headers["x-content-type-options"] == "nosniff"
