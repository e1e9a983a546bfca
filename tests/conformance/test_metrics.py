"""/metrics on every app: who may read it, and that Prometheus can."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.calls import HEALTHZ, METRICS, OPS_ACCESS
from tests.conformance.harness import App, Call

OPS_METRICS = Call("GET", "/metrics", "ops")


def test_metrics_follow_the_app_s_access_rule(app: App) -> None:
    anyone = app.answer(METRICS)
    if OPS_ACCESS[app.name].metrics == "open":
        assert anyone.status == 200
        return
    assert anyone.status == 401
    assert anyone.content_type == "application/problem+json"
    assert anyone.response.headers["www-authenticate"].startswith("Bearer")
    wrong = app.answer(Call("GET", "/metrics", "wrong"))
    assert (wrong.status, wrong.content_type) == (401, "application/problem+json")
    assert app.answer(OPS_METRICS).status == 200


def test_metrics_are_in_the_prometheus_text_format(app: App) -> None:
    app.answer(HEALTHZ)
    scrape = app.send(METRICS if OPS_ACCESS[app.name].metrics == "open" else OPS_METRICS)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"] == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    requests = families["spp_http_requests"]
    assert requests.type == "counter"
    healthz = [
        s
        for s in requests.samples
        if s.name == "spp_http_requests_total" and s.labels.get("route") == "/healthz"
    ]
    assert healthz, "the /healthz call is not counted"
    assert {(s.labels["service"], s.labels["method"], s.labels["status"]) for s in healthz} == {
        (app.name, "GET", "200")
    }
    assert families["spp_http_request_duration_seconds"].type == "histogram"
