"""Each app's /openapi.json declares every status and content type the
conformance calls drew from it (the gateway's: its merged document).

Front-end teams generate their clients from these documents: an answer they
do not declare is one a generated client cannot read.
"""

from __future__ import annotations

import re
from typing import Any

from tests.conformance.calls import every_call
from tests.conformance.harness import GATEWAY, SERVICES, Answer, App, Call

OPENAPI = Call("GET", "/openapi.json", "none")

# Paths the documents leave out on purpose: the operations endpoints, read by
# probes and Prometheus, and the documentation itself, not by the clients
# generated from the document.
# (A service documents its /healthz and /readyz; the gateway's merged
# document holds the /v1 API alone.)
OUTSIDE_THE_DOCUMENT: dict[str, frozenset[str]] = {
    GATEWAY: frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"}),
    **{name: frozenset({"/metrics", "/openapi.json", "/docs"}) for name in SERVICES},
}


def _template_regex(template: str) -> re.Pattern[str]:
    literal_parts = re.split(r"\{[^}/]+\}", template)
    return re.compile("[^/]+".join(re.escape(part) for part in literal_parts) + r"\Z")


def operation(spec: dict[str, Any], path: str) -> tuple[str, dict[str, Any]] | None:
    """The path item ``path`` falls under: of the templates it matches, the
    one with the most literal characters (``/v1/sites/jobs`` over
    ``/v1/sites/{site_id}``), as the routers choose."""
    matches = [
        (len(re.sub(r"\{[^}/]+\}", "", template)), template, item)
        for template, item in spec.get("paths", {}).items()
        if _template_regex(template).match(path)
    ]
    if not matches:
        return None
    _, template, item = max(matches)
    return template, item


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return dict(target)


def undeclared(spec: dict[str, Any], app: str, answer: Answer) -> str | None:
    """Why ``answer`` is not what the document declares (None: it is)."""
    call = answer.call
    path = call.path.split("?")[0]
    what = f"{call} -> {answer.status} {answer.content_type or '(no body)'}"
    found = operation(spec, path)
    if found is None:
        if answer.status == 404 or path in OUTSIDE_THE_DOCUMENT[app]:
            return None  # no such resource: nothing to declare it on
        return f"{what}: the path is not in the document"
    template, item = found
    op = item.get(call.method.lower())
    if op is None:
        if answer.status == 405:
            return None  # the method the document does not offer, refused
        return f"{what}: {call.method} {template} is not in the document"
    responses = op.get("responses", {})
    status = str(answer.status)
    key = next((k for k in (status, status[0] + "XX", "default") if k in responses), None)
    if key is None:
        return f"{what}: {call.method} {template} does not declare {status}"
    content = _resolve(spec, responses[key]).get("content", {})
    if answer.content_type and answer.content_type not in content:
        return (
            f"{what}: {call.method} {template} declares {status} as "
            f"{', '.join(content) or 'no body'}"
        )
    return None


def test_the_openapi_document_declares_every_answer(app: App) -> None:
    for call in every_call(app.name):
        app.answer(call)
    spec = app.answer(OPENAPI).response.json()
    problems = [
        reason
        for answer in list(app.answers.values())
        if (reason := undeclared(spec, app.name, answer)) is not None
    ]
    assert not problems, "\n".join(sorted(problems))


def test_the_matcher_picks_the_literal_path_over_a_template() -> None:
    spec = {"paths": {"/v1/sites/{site_id}": {"get": {}}, "/v1/sites/jobs": {"get": {}}}}
    assert operation(spec, "/v1/sites/jobs") == ("/v1/sites/jobs", {"get": {}})
    assert operation(spec, "/v1/sites/01J") == ("/v1/sites/{site_id}", {"get": {}})
    assert operation(spec, "/v1/sites/01J/hours") is None
