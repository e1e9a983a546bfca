"""End to end through real processes: a client → gateway → sites service.

Both run as `python -m ...` processes on free local ports, exactly as `make
run` starts them, over real HTTP, on the suite's database (SQLite or
PostgreSQL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.processes import gateway_and_sites, platform_env
from tests.sites.fixtures import BRON, LYON_8

pytestmark = pytest.mark.e2e

TOKEN = "e2e-bootstrap-token-0123456789abcdef"


@pytest.fixture
def platform(fresh_database_url: Callable[[str], str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    env, sites_port, gateway_port = platform_env(fresh_database_url, "e2e", TOKEN)
    with gateway_and_sites(env, sites_port, gateway_port, tmp_path / "e2e.log") as urls:
        yield urls


def test_newcomer_tour_through_the_gateway(platform: tuple[str, str]) -> None:
    gateway, _ = platform
    admin = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=gateway, timeout=10) as client:
        networks = client.get("/v1/networks", params={"limit": 100})
        assert networks.status_code == 200
        assert "france-services" in {n["code"] for n in networks.json()["items"]}

        assert client.post("/v1/sites", json=BRON).status_code == 401
        wrong = client.post("/v1/sites", json=BRON, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"

        created = client.post("/v1/sites", json=BRON, headers=admin)
        assert created.status_code == 201, created.text
        site = created.json()
        client.post("/v1/sites", json=LYON_8, headers=admin).raise_for_status()

        near = client.get("/v1/sites", params={"near": "45.7578,4.832", "radius_km": 8})
        assert [s["external_code"] for s in near.json()["items"]] == ["657", "953"]
        in_dep = client.get("/v1/sites", params={"departement": "69"})
        assert len(in_dep.json()["items"]) == 2

        got = client.get(f"/v1/sites/{site['id']}", headers={"X-Request-ID": "tour-1"})
        assert got.headers["x-request-id"] == "tour-1"
        patched = client.patch(
            f"/v1/sites/{site['id']}",
            json={"name": "France services de Bron"},
            headers=admin | {"If-Match": got.headers["etag"]},
        )
        assert patched.status_code == 200, patched.text
        stale = client.patch(
            f"/v1/sites/{site['id']}",
            json={"name": "lost"},
            headers=admin | {"If-Match": got.headers["etag"]},
        )
        assert stale.status_code == 412
        assert client.get(f"/v1/sites/{site['id']}").json()["name"] == "France services de Bron"

        bad = client.post("/v1/sites", json=BRON | {"siret": "123"}, headers=admin)
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"

        spec = client.get("/openapi.json").json()
        assert "/v1/sites/{ref}" in spec["paths"]
        assert client.get("/docs").status_code == 200

        down = client.get("/v1/experiences")
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"


def test_calling_the_service_directly_forges_nothing(platform: tuple[str, str]) -> None:
    gateway, sites = platform
    forged = {"x-spp-assertion": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}
    with httpx.Client(timeout=10) as client:
        direct = client.post(f"{sites}/v1/sites", json=BRON, headers=forged)
        assert direct.status_code == 401
        through = client.post(f"{gateway}/v1/sites", json=BRON, headers=forged)
        # The gateway drops client-supplied assertions: this is an anonymous call.
        assert through.status_code == 401
        assert through.json()["type"].endswith("/unauthorized")


DEMO = Path(__file__).parents[2] / "services/sites/spp_sites/reference/demo"


def test_the_programme_export_imports_whole_through_the_gateway(
    platform: tuple[str, str],
) -> None:
    gateway, _ = platform
    admin = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/csv"}
    with httpx.Client(base_url=gateway, timeout=120) as client:
        with (DEMO / "sp_plus_export-structures.csv").open("rb") as f:
            resp = client.post("/v1/sites/import", content=f, headers=admin)
        assert resp.status_code == 200, resp.text[:500]
        report = resp.json()
        assert (report["rows"], report["created"], report["rejected"]) == (14_763, 14_763, 0)
        assert "police-nationale" not in report["networks_created"]  # a reference network
        assert report["committed"] is True

        with (DEMO / "france_services_liste-fs-20240801.csv").open("rb") as f:
            resp = client.post("/v1/sites/import", content=f, headers=admin)
        assert resp.status_code == 200, resp.text[:500]
        report = resp.json()
        assert (report["updated"], report["created"], report["rejected"]) == (2_180, 665, 0)

        # A France services structure of the export, enriched by the ANCT list.
        valserhone = client.get("/v1/sites/france-services:1").json()
        assert valserhone["sp_code"] is not None
        assert valserhone["coordinates"] is not None
        assert valserhone["opening_hours"]["tuesday"]
        closed = client.get("/v1/sites", params={"status": "closed", "limit": 500}).json()
        assert len(closed["items"]) == 500
        assert closed["next_cursor"]

        # The whole registry back, streamed through the gateway to an anonymous
        # caller, then 304 while nothing changes.
        with client.stream("GET", "/v1/sites/export", params={"format": "jsonl"}) as export:
            assert export.status_code == 200
            assert export.headers["content-type"] == "application/x-ndjson"
            ids = [orjson.loads(line)["id"] for line in export.iter_lines()]
        # The export's sites and those the platform already had, once each.
        assert len(ids) == len(set(ids)) >= 14_763
        again = client.get(
            "/v1/sites/export",
            params={"format": "jsonl"},
            headers={"If-None-Match": export.headers["etag"]},
        )
        assert again.status_code == 304


class Capture(ThreadingHTTPServer):
    """A stand-in upstream that keeps the headers the gateway sends it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                capture.seen.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_assertions_are_bound_to_their_request_end_to_end(
    fresh_database_url: Callable[[str], str], tmp_path: Path
) -> None:
    capture = Capture()
    env, sites_port, gateway_port = platform_env(
        fresh_database_url,
        "e2e_bound",
        TOKEN,
        SPP_GATEWAY_LABELLING_URL=f"http://127.0.0.1:{capture.server_address[1]}",
    )
    admin = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with (
            gateway_and_sites(env, sites_port, gateway_port, tmp_path / "e2e.log") as urls,
            httpx.Client(base_url=urls[0], timeout=10) as client,
        ):
            sites = urls[1]
            site = client.post("/v1/sites", json=BRON, headers=admin).json()
            # The service sees the path the gateway signed, however it is spelled:
            # a reference with a colon, percent-encoded.
            ref = "/v1/sites/france-services%3A953"
            got = client.get(ref)
            assert got.status_code == 200, got.text
            assert got.json()["id"] == site["id"]
            # HEAD passes the guard as HEAD; what the route answers is its own
            # business (the sites routes declare GET only today: 405).
            assert client.head(ref).status_code not in (401, 403)

            # An admin's call to another service, captured there (a compromised
            # labelling service, or anyone on the internal network)...
            assert client.get("/v1/labels/x", headers=admin).status_code == 200
            [seen] = capture.seen
            stolen = {"x-spp-assertion": seen["x-spp-assertion"]}
            # ...is worth nothing on the sites service, for any other request.
            with httpx.Client(base_url=sites, timeout=10) as direct:
                for method, path in (
                    ("POST", "/v1/networks"),
                    ("DELETE", f"/v1/sites/{site['id']}"),
                    ("GET", f"/v1/sites/{site['id']}"),
                ):
                    resp = direct.request(method, path, json={}, headers=stolen)
                    assert resp.status_code == 401, (method, path, resp.text)
                    assert resp.json()["type"].endswith("/invalid-assertion")
            assert client.get(f"/v1/sites/{site['id']}").status_code == 200
    finally:
        capture.shutdown()
        capture.server_close()
