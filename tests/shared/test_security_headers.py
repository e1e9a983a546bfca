"""SecurityHeaders (kit/security_headers.py) around tiny ASGI apps: the
headers on every answer, banners gone, the app's own choices kept once, the
docs page's CSP, and a crash's 500."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE, TYPE_BASE
from spp_shared.kit.security_headers import API_CSP, SECURITY_HEADERS, SecurityHeaders, docs_csp

pytestmark = pytest.mark.anyio


async def answering(scope: Scope, receive: Receive, send: Send) -> None:
    """The status the path names (/200, /404...), with banners; /own also sets
    headers of its own choosing; /boom crashes."""
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("kaboom-detail")
    headers = [
        (b"content-type", b"application/json"),
        (b"server", b"upstream/1.0"),
        (b"x-powered-by", b"Express"),
    ]
    if path == "/own":
        headers += [
            (b"x-frame-options", b"SAMEORIGIN"),
            (b"content-security-policy", b"default-src 'self'"),
            (b"cache-control", b"max-age=60"),
        ]
    status = int(path[1:]) if path[1:].isdigit() else 200
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


def client(app: ASGIApp, *, raise_app_exceptions: bool = False) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions),
        base_url="http://testserver",
    )


def header_lists(resp: httpx.Response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in resp.headers.multi_items():
        out.setdefault(name.lower(), []).append(value)
    return out


@pytest.mark.parametrize("status", [200, 404, 500])
async def test_security_headers_on_every_response(status: int) -> None:
    async with client(SecurityHeaders(answering)) as c:
        resp = await c.get(f"/{status}")
    assert resp.status_code == status
    headers = header_lists(resp)
    for name, value in SECURITY_HEADERS:
        assert headers[name.decode()] == [value.decode()]
    assert headers["content-security-policy"] == [API_CSP.decode()]
    assert headers["x-content-type-options"] == ["nosniff"]
    assert headers["x-frame-options"] == ["DENY"]
    assert headers["referrer-policy"] == ["no-referrer"]
    assert headers["strict-transport-security"] == ["max-age=63072000; includeSubDomains"]
    assert headers["cross-origin-opener-policy"] == ["same-origin"]
    assert "camera=()" in headers["permissions-policy"][0]
    assert "server" not in headers
    assert "x-powered-by" not in headers
    assert "cache-control" not in headers  # no credentials sent


async def test_headers_the_app_set_are_kept_not_duplicated() -> None:
    async with client(SecurityHeaders(answering)) as c:
        resp = await c.get("/own", headers={"Authorization": "Bearer x"})
    headers = header_lists(resp)
    assert headers["x-frame-options"] == ["SAMEORIGIN"]
    assert headers["content-security-policy"] == ["default-src 'self'"]
    assert headers["cache-control"] == ["max-age=60"]
    assert headers["referrer-policy"] == ["no-referrer"]


async def test_twice_is_once() -> None:
    # A service's answer, secured there, secured again at the gateway.
    async with client(SecurityHeaders(SecurityHeaders(answering))) as c:
        resp = await c.get("/200")
    assert all(len(values) == 1 for values in header_lists(resp).values())


@pytest.mark.parametrize("credentials", [{"Authorization": "Bearer t"}, {"X-API-Key": "k"}])
async def test_no_store_for_authenticated_requests(credentials: dict[str, str]) -> None:
    async with client(SecurityHeaders(answering)) as c:
        resp = await c.get("/200", headers=credentials)
    assert resp.headers["cache-control"] == "no-store"


async def test_a_crash_still_gets_a_secured_500() -> None:
    async with client(SecurityHeaders(answering)) as c:
        resp = await c.get("/boom", headers={"x-request-id": "rid-1"})
    assert resp.status_code == 500
    assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert resp.json()["type"] == TYPE_BASE + "internal-error"
    assert "kaboom" not in resp.text
    assert resp.headers["x-content-type-options"] == "nosniff"


async def test_a_crash_is_reraised_for_the_server_to_log() -> None:
    async with client(SecurityHeaders(answering), raise_app_exceptions=True) as c:
        with pytest.raises(RuntimeError, match="kaboom"):
            await c.get("/boom")


async def test_without_answering_crashes_the_crash_is_left_to_the_app_s_own_handler() -> None:
    # A FastAPI app answers (and logs) its 500 outside every middleware.
    sent: list[object] = []

    async def send(message: object) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/boom", "headers": []}
    with pytest.raises(RuntimeError, match="kaboom"):
        await SecurityHeaders(answering, answer_crashes=False)(scope, receive, send)
    assert sent == []


def swagger_app() -> FastAPI:
    app = FastAPI(docs_url=None, openapi_url=None)

    @app.get("/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Services Publics+ API")

    return app


async def test_docs_page_gets_a_csp_swagger_ui_can_live_with() -> None:
    async with client(SecurityHeaders(swagger_app())) as c:
        resp = await c.get("/docs")
    assert resp.status_code == 200
    csp = resp.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert "https://cdn.jsdelivr.net" in directives["style-src"]
    assert "data:" in directives["img-src"]
    script_src = directives["script-src"].split()
    assert "https://cdn.jsdelivr.net" in script_src
    assert "'unsafe-inline'" not in script_src
    # Exactly the page's inline bootstrap script is allowed, by its hash.
    inline = re.findall(r"<script>(.*?)</script>", resp.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in script_src
    assert resp.headers["x-frame-options"] == "DENY"
    assert int(resp.headers["content-length"]) == len(resp.content)


def test_docs_csp_ignores_external_scripts() -> None:
    csp = docs_csp(b'<script src="https://cdn.jsdelivr.net/x.js"></script><script>go()</script>')
    assert csp.count(b"'sha256-") == 1
