"""problem+json (RFC 9457) for every refusal, on every app that can answer it.

calls.py says, app by app, which request draws each status, or why the app
cannot answer it at all (a :class:`Gap`).
"""

from __future__ import annotations

import pytest

from tests.conformance.calls import PROBLEMS, STATUSES, Gap, problem_calls
from tests.conformance.harness import APPS, GATEWAY, App, Call


@pytest.mark.parametrize(
    ("name", "status", "call"),
    [pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2]}") for case in problem_calls()],
)
def test_refusals_are_problem_details(
    conformance_apps: dict[str, App], name: str, status: int, call: Call
) -> None:
    answer = conformance_apps[name].answer(call)
    response = answer.response
    assert answer.status == status, response.text
    assert answer.content_type == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 401 and name == GATEWAY:
        # RFC 9110: a 401 names how to authenticate. (A service's assertion
        # guard refuses callers that went around the gateway; no scheme a
        # client could use applies there.)
        assert response.headers["www-authenticate"].startswith("Bearer")
    if status == 405:
        assert response.headers["allow"]
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1


def test_every_app_says_how_it_answers_each_status_or_why_it_cannot() -> None:
    for name in APPS:
        assert sorted(PROBLEMS[name]) == sorted(STATUSES), name
        for status, calls in PROBLEMS[name].items():
            assert isinstance(calls, Gap) or calls, (name, status)
