"""The hot path: a pure ASGI reverse proxy to the upstream services.

Per request, with no framework: one dict lookup to route, one pass over the
headers, authentication (auth.py), the rate limit, then either the gateway's
own resources (API keys, agent mappings, audit log, served in-process) or
the upstream, with the signed assertion. A small body (a route whose limit
is at most ``max_buffered_body``) is read whole before an upstream
connection is taken, so a client that stalls holds only its own socket; a
large one (an upload) streams through its own pool, a few per caller at
once, and responses stream back (an upload or an export is never held in
memory). Writes of signed-in callers
are audited once answered. Upstream failures become problem+json: 503 when
the service cannot be reached, 504 when it is too slow, 502 for anything
else it does wrong.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiohttp
import structlog
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

from spp_gateway.auth import (
    AuthenticationUnavailable,
    Authenticator,
    InvalidCredentials,
    rate_identity,
)
from spp_gateway.hardening import BodyPolicy, BodyRefused
from spp_gateway.metrics import GatewayMetrics
from spp_gateway.policy import READ_METHODS, RouteGroup, is_change, rate_group
from spp_gateway.ratelimit import RateLimiter, send_rate_limited
from spp_gateway.routes import LOCAL, RouteTable, is_bulk
from spp_gateway.uploads import UploadSlots
from spp_gateway.upstream import UpstreamClient
from spp_shared.kit.errors import (
    TYPE_BASE,
    send_problem_response,
    status_problem,
)
from spp_shared.kit.identity import ANONYMOUS, ASSERTION_HEADER, PRINCIPAL_STATE, Principal
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
_X_API_KEY = b"x-api-key"
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
    _X_API_KEY,
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


class ClientDisconnected(Exception):
    """The downstream client went away while its request body was streaming."""


class AuditHook(Protocol):
    """Records a privileged request once its answer is known (never raises)."""

    async def __call__(
        self, *, principal: Principal, method: str, path: str, status: int, request_id: str
    ) -> None: ...


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return wrapped  # type: ignore[return-value]


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (a small one: its route's limit bounds it)."""
    return b"".join([chunk async for chunk in _request_body(receive)])


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``body`` already read, then waits on the client."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


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


def _in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """aiohttp wraps an error of the body generator: look down the chain."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


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
    await send_problem_response(send, body, headers=headers)


class Proxy:
    """ASGI app forwarding every ``/v1`` request to the service owning it."""

    def __init__(
        self,
        *,
        routes: RouteTable,
        auth: Authenticator,
        upstream: UpstreamClient,
        metrics: GatewayMetrics,
        local: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None,
        limiter: RateLimiter | None = None,
        audit: AuditHook | None = None,
        bodies: BodyPolicy,
        uploads: UploadSlots,
    ) -> None:
        self.routes = routes
        self.auth = auth
        self.upstream = upstream
        self.metrics = metrics
        self.local = local  # the gateway's own /v1 resources (API keys, mappings, audit)
        self.limiter = limiter
        self.audit = audit
        self.bodies = bodies
        self.uploads = uploads
        self._path_prefix = {
            name: unquote(urlsplit(u.base_url).path) for name, u in routes.upstreams.items()
        }

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
        api_key: bytes | None = None
        duplicate_credential = False
        forwarded_for: bytes | None = None
        host: bytes | None = None
        connection: bytes | None = None
        raw_request_id: bytes | None = None
        has_body = False
        for name, value in scope["headers"]:
            if name in _DROP_REQUEST:
                if name == _AUTHORIZATION:
                    duplicate_credential |= authorization is not None
                    authorization = value
                elif name == _X_API_KEY:
                    duplicate_credential |= api_key is not None
                    api_key = value
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

        client = scope.get("client")
        client_ip = client[0] if client else None
        try:
            if duplicate_credential:
                # A proxy in front may read the first header and we the last:
                # two different callers for one request. Refuse the ambiguity.
                raise InvalidCredentials(
                    "Send each credential header once.", error="invalid_request"
                )
            principal = await self.auth.authenticate(authorization, api_key)
        except InvalidCredentials as exc:
            # Failed attempts spend the address's anonymous read budget (the
            # widest anonymous one, whatever the route: a caller with a bad
            # key must learn it is bad, not that bulk routes are closed to
            # anonymous callers): guessing keys is rate-limited all the same.
            if self.limiter is not None:
                decision = await self.limiter.check(
                    rate_identity(ANONYMOUS, client_ip), RouteGroup.read, anonymous=True
                )
                if not decision.allowed:
                    await send_rate_limited(send, decision, instance=path, request_id=request_id)
                    self.metrics.observe(method, upstream.name, 429, started)
                    return
            await send_problem(
                send,
                401,
                exc.detail,
                instance=path,
                request_id=request_id,
                type_="invalid-credentials",
                title="Invalid credentials",
                headers=[(b"www-authenticate", f'Bearer error="{exc.error}"'.encode())],
            )
            self.metrics.observe(method, upstream.name, 401, started)
            return
        except AuthenticationUnavailable as exc:
            await send_problem(
                send,
                503,
                f"Credentials cannot be checked right now ({exc}); retry later.",
                instance=path,
                request_id=request_id,
                headers=[(b"retry-after", b"5")],
            )
            self.metrics.observe(method, upstream.name, 503, started)
            return

        if self.limiter is not None:
            decision = await self.limiter.check(
                rate_identity(principal, client_ip),
                rate_group(method, path, scope.get("query_string", b"")),
                anonymous=principal.is_anonymous,
            )
            if not decision.allowed:
                await send_rate_limited(send, decision, instance=path, request_id=request_id)
                self.metrics.observe(method, upstream.name, 429, started)
                return
            send = _with_headers(send, decision.headers())

        body: bytes | None = None
        streamed = has_body and self.bodies.streamed(method, path)
        if has_body and not streamed:
            # Read before any upstream connection is taken: a body that stalls
            # holds only its own client's socket (RequestBounds times it out).
            try:
                body = await _read_body(receive)
            except ClientDisconnected:
                self.metrics.observe(method, upstream.name, 499, started)
                return
            except BodyRefused as exc:
                self.metrics.observe(method, upstream.name, exc.status, started)
                raise
            receive = _replay(body, receive)

        if upstream.name == LOCAL and self.local is not None:
            await self._serve_local(scope, receive, send, principal, method, started, request_id)
            return

        uploader: str | None = None
        if streamed:
            uploader = rate_identity(principal, client_ip)
            if not self.uploads.acquire(uploader):
                await send_problem(
                    send,
                    429,
                    f"You already have {self.uploads.per_caller} uploads in progress; "
                    "send the next one when one of them is answered.",
                    instance=path,
                    request_id=request_id,
                    type_="too-many-uploads",
                    title="Too many uploads in progress",
                    headers=[(b"retry-after", b"5")],
                )
                self.metrics.observe(method, upstream.name, 429, started)
                return
        if body is not None:
            # aiohttp sends the length of what it holds; the client may have
            # sent its body chunked.
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]

        # Bound to this request as the service will see it: same method, and the
        # path its server decodes from the raw path forwarded below (the gateway
        # rewrites nothing), behind the base URL's own path if it has one.
        assertion = self.auth.assertion(
            principal,
            method=method,
            path=self._path_prefix[upstream.name] + path,
            request_id=request_id,
        )
        headers.append(("X-SPP-Assertion", assertion))
        headers.append(("X-Request-ID", request_id))
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
        data: Any = body if body is not None else _request_body(receive) if has_body else None
        try:
            status = await self._forward(
                send,
                method,
                URL(target, encoded=True),
                headers,
                data,
                self.upstream.uploads if streamed else self.upstream.session,
                upstream.name,
                path,
                request_id,
            )
        except BodyRefused as exc:
            status = exc.status  # RequestBounds answers it
            raise
        finally:
            if uploader is not None:
                self.uploads.release(uploader)
            self.metrics.observe(method, upstream.name, status, started)
        if self.audit is not None and is_change(method, path) and not principal.is_anonymous:
            # After the answer went out: the caller does not wait for the log.
            await self.audit(
                principal=principal, method=method, path=path, status=status, request_id=request_id
            )

    async def _serve_local(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        principal: Principal,
        method: str,
        started: float,
        request_id: str,
    ) -> None:
        """The gateway's own resources: same authentication, limits and metrics."""
        assert self.local is not None
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        status = 500

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.local(scope, receive, capture)  # type: ignore[arg-type]
        finally:
            self.metrics.observe(method, LOCAL, status, started)
        # The stores record what they did; a refused or failed attempt at an
        # administrative change is recorded here, so it leaves a trace too.
        if (
            self.audit is not None
            and status >= 400
            and method not in READ_METHODS
            and not principal.is_anonymous
        ):
            await self.audit(
                principal=principal,
                method=method,
                path=scope["path"],
                status=status,
                request_id=request_id,
            )

    async def _forward(
        self,
        send: Send,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        data: Any,
        session: aiohttp.ClientSession,
        service: str,
        path: str,
        request_id: str,
    ) -> int:
        # Only bulk calls override the session's timeout (None would disable it).
        extra: dict[str, Any] = (
            {"timeout": self.upstream.bulk_timeout} if is_bulk(method, path) else {}
        )
        try:
            resp = await session.request(
                method, url, headers=headers, data=data, allow_redirects=False, **extra
            )
        except ClientDisconnected:
            return 499
        except BodyRefused:
            raise
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            return await self._fail(send, 503, service, path, request_id, exc)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            return await self._fail(send, 504, service, path, request_id, exc)
        except aiohttp.ClientError as exc:
            if _in_chain(exc, ClientDisconnected) is not None:
                return 499  # nobody to answer; not the upstream's fault
            refused = _in_chain(exc, BodyRefused)
            if refused is not None:
                raise refused from None  # RequestBounds answers 413 or 408
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
