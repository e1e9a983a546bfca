"""The merged OpenAPI of the real platform tells the truth (docs/decisions/0026).

Built in-process from the four services' apps and the gateway's own routes,
merged as the gateway merges them: any route a service adds is checked here
without a line of this file changing. tools/openapi_check.py (CI) checks the
same document served by the running platform with Redocly, openapi-typescript
and schemathesis.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import pytest

from spp_gateway.app import gateway_document
from spp_gateway.openapi import OpenAPIClash, merge_openapi
from spp_gateway.routes import LOCAL, SERVICES, RouteTable
from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE
from spp_shared.kit.identity import ASSERTION_HEADER
from spp_shared.kit.openapi import AGENT_OIDC, API_KEY_HEADER, BEARER, HTTP_METHODS

ISSUER = "https://idp.example.gouv.fr"
ROUTES = RouteTable({name: f"http://{name}.internal" for name in SERVICES})


def service_documents() -> dict[str, dict[str, Any]]:
    docs = {name: import_module(f"spp_{name}.app").create_app().openapi() for name in SERVICES}
    docs[LOCAL] = gateway_document()
    return docs


@pytest.fixture(scope="module")
def merged() -> dict[str, Any]:
    return merge_openapi(
        service_documents(), ROUTES, server_url="https://api.example.gouv.fr/", oidc_issuer=ISSUER
    )


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def test_every_service_and_the_gateway_contribute(merged: dict[str, Any]) -> None:
    assert merged["info"]["x-unavailable-services"] == []
    paths = set(merged["paths"])
    assert {"/v1/sites/{ref}", "/v1/commitments", "/v1/api-keys"} <= paths
    assert not any(p.startswith(("/healthz", "/readyz", "/metrics")) for p in paths)


def test_servers_licence_and_security_schemes(merged: dict[str, Any]) -> None:
    assert merged["servers"][0]["url"] == "https://api.example.gouv.fr"
    assert merge_openapi(service_documents(), ROUTES)["servers"][0]["url"] == "/"
    assert "Etalab" in merged["info"]["license"]["name"]
    assert merged["info"]["license"]["url"].startswith("https://")
    schemes = merged["components"]["securitySchemes"]
    assert schemes[API_KEY_HEADER] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes[API_KEY_HEADER]["description"],
    }
    assert (schemes[BEARER]["type"], schemes[BEARER]["scheme"]) == ("http", "bearer")
    assert schemes[AGENT_OIDC]["type"] == "openIdConnect"
    assert schemes[AGENT_OIDC]["openIdConnectUrl"] == (ISSUER + "/.well-known/openid-configuration")
    # Without a provider configured, agents' tokens are still described.
    plain = merge_openapi(service_documents(), ROUTES)["components"]["securitySchemes"]
    assert plain[AGENT_OIDC]["bearerFormat"] == "JWT"


def test_every_operation_says_who_may_call_it(merged: dict[str, Any]) -> None:
    signed_in = [{API_KEY_HEADER: []}, {BEARER: []}, {AGENT_OIDC: []}]
    public = {(m, p) for m, p, op in operations(merged) if {} in op["security"]}
    for method, path, op in operations(merged):
        assert "x-spp-action" in op, (method, path)
        security = [r for r in op["security"] if r]
        assert security == signed_in, (method, path)
        # Only what the permission matrix refuses to someone can be a 403.
        assert ("403" in op["responses"]) == ((method, path) not in public), (method, path)
    assert ("get", "/v1/sites/{ref}") in public
    assert ("post", "/v1/sites/import") not in public
    assert ("get", "/v1/audit-events") not in public
    patch = merged["paths"]["/v1/sites/{ref}"]["patch"]
    assert "`sites:update`" in patch["description"]
    assert "network_manager (network)" in patch["description"]


def test_every_error_is_a_problem(merged: dict[str, Any]) -> None:
    for method, path, op in operations(merged):
        responses = op["responses"]
        for status, answer in responses.items():
            if int(status) >= 400:
                assert list(answer["content"]) == [PROBLEM_MEDIA_TYPE], (method, path, status)
                schema = answer["content"][PROBLEM_MEDIA_TYPE]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path)
        # In front of every operation: the guards, the gateway and the database.
        assert {"400", "401", "414", "415", "429", "431", "502", "503", "504"} <= set(responses)
        has_input = "requestBody" in op or op.get("parameters")
        assert ("422" in responses) == bool(has_input), (method, path)
        if "requestBody" in op:
            assert {"408", "413"} <= set(responses), (method, path)
        if any(p["in"] == "path" for p in op.get("parameters", [])):
            assert "404" in responses, (method, path)
        headers = {p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"}
        if "if-match" in headers:
            assert {"412", "428"} <= set(responses), (method, path)
        if headers & {"if-none-match", "if-modified-since"}:
            assert "content" not in responses["304"], (method, path)
            assert set(responses["304"]["headers"]) == {"ETag", "Last-Modified"}
    schemas = merged["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas


def test_conditional_writes_and_reads_are_declared(merged: dict[str, Any]) -> None:
    # The answers schemathesis met undeclared before (issue 8).
    paths = merged["paths"]
    for path, method in [
        ("/v1/sites/{ref}", "patch"),
        ("/v1/networks/{code}", "patch"),
        ("/v1/agent-mappings/{mapping_id}", "patch"),
        ("/v1/agent-mappings/{mapping_id}", "delete"),
    ]:
        assert {"412", "428"} <= set(paths[path][method]["responses"]), (path, method)
    for path in ("/v1/sites/{ref}", "/v1/networks/{code}", "/v1/agent-mappings/{mapping_id}"):
        assert "304" in paths[path]["get"]["responses"], path
    admin_422 = paths["/v1/api-keys"]["post"]["responses"]["422"]
    assert list(admin_422["content"]) == [PROBLEM_MEDIA_TYPE]


def test_tags_are_described_and_ids_are_the_functions_names(merged: dict[str, Any]) -> None:
    tags = {t["name"]: t for t in merged["tags"]}
    for method, path, op in operations(merged):
        for tag in op["tags"]:
            assert tags[tag].get("description"), (method, path, tag)
    ids = [op["operationId"] for _, _, op in operations(merged)]
    assert len(ids) == len(set(ids))
    assert {"get_site", "create_api_key", "list_audit_events"} <= set(ids)


def test_the_internal_assertion_is_not_part_of_the_public_api(merged: dict[str, Any]) -> None:
    assert ASSERTION_HEADER not in str(merged).lower()


def test_the_gateway_hides_an_assertion_header_a_service_declares() -> None:
    docs = service_documents()
    op = docs["sites"]["paths"]["/v1/sites/{ref}"]["get"]
    op["parameters"].append(
        {"name": "X-SPP-Assertion", "in": "header", "required": True, "schema": {"type": "string"}}
    )
    spec = merge_openapi(docs, ROUTES)
    params = spec["paths"]["/v1/sites/{ref}"]["get"]["parameters"]
    assert "x-spp-assertion" not in {p["name"].lower() for p in params}


def test_the_real_services_do_not_clash() -> None:
    """A schema or operation id two services define differently fails here,
    before any gateway refuses to serve the document."""
    docs = service_documents()
    merge_openapi(docs, ROUTES)  # raises OpenAPIClash
    # And it would: a second, different ImportReport from the indicators service.
    report = docs["sites"]["components"]["schemas"]["ImportReport"]
    other = {**report, "properties": {**report["properties"], "values": {"type": "integer"}}}
    docs["indicators"]["components"]["schemas"]["ImportReport"] = other
    docs["indicators"]["paths"]["/v1/indicators/import"] = {
        "post": {
            "operationId": "import_indicators",
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ImportReport"}
                        }
                    },
                }
            },
        }
    }
    with pytest.raises(OpenAPIClash, match="ImportReport"):
        merge_openapi(docs, ROUTES)


def _contract_modules() -> list[Any]:
    import pkgutil

    import spp_shared.contracts as contracts

    return [
        import_module(f"spp_shared.contracts.{m.name}")
        for m in pkgutil.iter_modules(contracts.__path__)
    ]


def test_every_example_is_accepted_by_its_own_contract() -> None:
    """Redocly checks examples against the JSON schema; this checks them against
    the contract itself (a SIRET check digit, a phone number, a code's rules)."""
    from typing import get_args, get_origin

    from pydantic import BaseModel, TypeAdapter
    from pydantic.fields import FieldInfo

    checked = 0
    for module in _contract_modules():
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel):
                extra = value.model_config.get("json_schema_extra")
                for example in extra.get("examples", []) if isinstance(extra, dict) else []:
                    value.model_validate(example)
                    checked += 1
            elif get_origin(value) is not None and any(
                isinstance(a, FieldInfo) for a in get_args(value)
            ):
                for info in (a for a in get_args(value) if isinstance(a, FieldInfo)):
                    for example in info.examples or []:
                        TypeAdapter(value).validate_python(example)
                        checked += 1
    assert checked >= 20
