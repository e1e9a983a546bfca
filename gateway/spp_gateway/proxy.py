"""The hot path: a pure ASGI reverse proxy to the upstream services.

No framework on this path: one dict lookup to route, one pass over the
headers, the body streamed both ways (an upload or an export is never held
in memory), and every upstream response released. Upstream failures become
problem+json: 503 when the service cannot be reached, 504 when it is too
slow, 502 for anything else it does wrong.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import orjson
import structlog
from starlette.types import Receive, Scope, Send
from yarl import URL

from spp_gateway.auth import Authenticator, InvalidCredentials
from spp_gateway.metrics import GatewayMetrics
from spp_gateway.routes import RouteTable, is_bulk
from spp_gateway.upstream import UpstreamClient
from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE, TYPE_BASE, status_problem
from spp_shared.kit.identity import ASSERTION_HEADER
from spp_shared.kit.logging import REQUEST_ID_HEADER, clean_request_id

log = structlog.get_logger("spp.gateway")

# RFC 9110 §7.6.1 hop-by-hop headers, plus the legacy Proxy-Connection.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_AUTHORIZATION = b"authorization"
_CONNECTION = b"connection"
_CONTENT_LENGTH = b"content-length"
_HOST = b"host"
_TRANSFER_ENCODING = b"transfer-encoding"
_XFF = b"x-forwarded-for"
_ASSERTION = ASSERTION_HEADER.encode()
# Request headers never forwarded as the client sent them: hop-by-hop ones,
# Host (aiohttp sets the upstream's), the credentials the gateway consumes, the
# identity a client might try to forge, and those the gateway rewrites.
_DROP_REQUEST = HOP_BY_HOP | {
    _HOST,
    _AUTHORIZATION,
    _ASSERTION,
    REQUEST_ID_HEADER,
    b"expect",  # 100-continue was already answered to the client by the server
    _XFF,
    b"x-forwarded-proto",
    b"x-forwarded-host",
}
# Response headers not passed back: hop-by-hop ones, the upstream's banner
# and date (our server adds its own date), and the request id the request
# context middleware echoes itself.
_DROP_RESPONSE = HOP_BY_HOP | {b"server", b"date", REQUEST_ID_HEADER}

# A response this small (by Content-Length) is read whole before answering:
# one ASGI message instead of three, and a read failure still gets a 504/502.
_SMALL_BODY = 64 * 1024

_PROBLEM_CT = (b"content-type", PROBLEM_MEDIA_TYPE.encode())


class ClientDisconnected(Exception):
    """The downstream client went away while its request body was streaming."""


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives, chunk by chunk (never buffered whole)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _caused_by_client_leaving(exc: BaseException) -> bool:
    """aiohttp wraps an error of the body generator: look down the chain."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ClientDisconnected):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _connection_tokens(value: bytes) -> frozenset[bytes]:
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    *,
    instance: str,
    request_id: str | None,
    type_: str | None = None,
    title: str | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    body = status_problem(status, detail, instance=instance, request_id=request_id)
    if type_ is not None:
        body["type"] = TYPE_BASE + type_
    if title is not None:
        body["title"] = title
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                _PROBLEM_CT,
                (_CONTENT_LENGTH, str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class Proxy:
    """ASGI app forwarding every ``/v1`` request to the service owning it."""

    def __init__(
        self,
        *,
        routes: RouteTable,
        auth: Authenticator,
        upstream: UpstreamClient,
        metrics: GatewayMetrics,
    ) -> None:
        self.routes = routes
        self.auth = auth
        self.upstream = upstream
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        state = scope.get("state")
        request_id: str | None = state.get("request_id") if state else None

        upstream = self.routes.match(path)
        if upstream is None:
            await send_problem(
                send,
                404,
                f"No API resource matches {path}",
                instance=path,
                request_id=request_id,
            )
            self.metrics.observe(method, "unmatched", 404, started)
            return

        # One pass over the client's headers: keep what the upstream may see,
        # pick out what the gateway needs.
        headers: list[tuple[str, str]] = []
        authorization: bytes | None = None
        forwarded_for: bytes | None = None
        host: bytes | None = None
        connection: bytes | None = None
        raw_request_id: bytes | None = None
        has_body = False
        for name, value in scope["headers"]:
            if name in _DROP_REQUEST:
                if name == _AUTHORIZATION:
                    authorization = value
                elif name == _HOST:
                    host = value
                elif name == _XFF:
                    forwarded_for = value
                elif name == _CONNECTION:
                    connection = value
                elif name == _TRANSFER_ENCODING:
                    has_body = True
                elif name == REQUEST_ID_HEADER:
                    raw_request_id = value
                continue
            if name == _CONTENT_LENGTH and value != b"0":
                has_body = True
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
        if request_id is None:  # served without the request context middleware
            request_id = clean_request_id(raw_request_id)
        if connection is not None:
            named = _connection_tokens(connection)
            headers = [(n, v) for n, v in headers if n.encode("latin-1") not in named]

        try:
            principal = self.auth.authenticate(authorization)
        except InvalidCredentials:
            await send_problem(
                send,
                401,
                "The credentials sent in the Authorization header are not valid.",
                instance=path,
                request_id=request_id,
                type_="invalid-credentials",
                title="Invalid credentials",
                headers=[(b"www-authenticate", b'Bearer error="invalid_token"')],
            )
            self.metrics.observe(method, upstream.name, 401, started)
            return
        if principal is not None:
            headers.append(
                ("X-SPP-Assertion", self.auth.assertion(principal, request_id).decode("ascii"))
            )

        headers.append(("X-Request-ID", request_id))
        client = scope.get("client")
        if client:
            ip = client[0]
            if forwarded_for:
                ip = f"{forwarded_for.decode('latin-1')}, {ip}"
            headers.append(("X-Forwarded-For", ip))
        headers.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
        if host is not None:
            headers.append(("X-Forwarded-Host", host.decode("latin-1")))

        raw_path: bytes | None = scope.get("raw_path")
        target = upstream.base_url + (raw_path.decode("latin-1") if raw_path else path)
        query: bytes = scope.get("query_string", b"")
        if query:
            target = f"{target}?{query.decode('latin-1')}"

        status = 502
        try:
            status = await self._forward(
                scope,
                receive,
                send,
                method,
                URL(target, encoded=True),
                headers,
                has_body,
                upstream.name,
                path,
                request_id,
            )
        finally:
            self.metrics.observe(method, upstream.name, status, started)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        has_body: bool,
        service: str,
        path: str,
        request_id: str,
    ) -> int:
        data: Any = _request_body(receive) if has_body else None
        # Only bulk calls override the session's timeout (None would disable it).
        extra: dict[str, Any] = {"timeout": self.upstream.bulk_timeout} if is_bulk(path) else {}
        try:
            resp = await self.upstream.session.request(
                method, url, headers=headers, data=data, allow_redirects=False, **extra
            )
        except ClientDisconnected:
            return 499
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            return await self._fail(send, 503, service, path, request_id, exc)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            return await self._fail(send, 504, service, path, request_id, exc)
        except aiohttp.ClientError as exc:
            if _caused_by_client_leaving(exc):
                return 499  # nobody to answer; not the upstream's fault
            return await self._fail(send, 502, service, path, request_id, exc)

        try:
            out = self._response_headers(resp.raw_headers)
            length = resp.content_length
            if length is not None and length <= _SMALL_BODY:
                try:
                    body = await resp.read()
                except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                    return await self._fail(send, 504, service, path, request_id, exc)
                except aiohttp.ClientError as exc:
                    return await self._fail(send, 502, service, path, request_id, exc)
                await send({"type": "http.response.start", "status": resp.status, "headers": out})
                await send({"type": "http.response.body", "body": body})
                return resp.status

            await send({"type": "http.response.start", "status": resp.status, "headers": out})
            try:
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (TimeoutError, aiohttp.ClientError) as exc:
                # Headers are gone already: all we can do is cut the response
                # short, which the server signals to the client by closing.
                log.warning(
                    "upstream_stream_failed",
                    service=service,
                    path=path,
                    error=type(exc).__name__,
                    request_id=request_id,
                )
                resp.close()
                return resp.status
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return resp.status
        finally:
            resp.release()

    @staticmethod
    def _response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        named: frozenset[bytes] | None = None
        for name, value in raw:
            lname = name.lower()
            if lname in _DROP_RESPONSE:
                if lname == _CONNECTION:
                    named = _connection_tokens(value)
                continue
            out.append((lname, value))
        if named:
            out = [(n, v) for n, v in out if n not in named]
        return out

    async def _fail(
        self,
        send: Send,
        status: int,
        service: str,
        path: str,
        request_id: str,
        exc: BaseException,
    ) -> int:
        detail = {
            503: f"The {service} service cannot be reached; retry later.",
            504: f"The {service} service did not answer in time.",
        }.get(status, f"The {service} service sent an invalid answer.")
        log.warning(
            "upstream_failed",
            service=service,
            path=path,
            status=status,
            error=type(exc).__name__,
            request_id=request_id,
        )
        await send_problem(
            send,
            status,
            detail,
            instance=path,
            request_id=request_id,
            headers=[(b"retry-after", b"1")] if status == 503 else (),
        )
        return status
