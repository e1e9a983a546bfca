"""RFC 9457 problem details: one error hierarchy and the handlers mapping it.

Services raise :class:`Problem` subclasses (never FastAPI's HTTPException);
the handlers installed by :func:`install_problem_handlers` turn them, and
every framework error (validation, unknown route, wrong method), into
``application/problem+json``. Unexpected exceptions become a bare 500 with
the request id, never a stack trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Send

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://servicespublicsplus.fr/problems/"

log = structlog.get_logger("spp.errors")


class ProblemResponse(Response):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem_body(
    *,
    status: int,
    type_: str,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type_ if type_.startswith(("http", "about:")) else TYPE_BASE + type_,
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = list(errors)
    # An absent member, never a null one (request_id outside a request): the
    # Problem schema says string.
    body.update((name, value) for name, value in extra.items() if value is not None)
    return body


class Problem(Exception):
    """A domain error that is the client's to fix (or to know about)."""

    status: ClassVar[int] = 400
    type_: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    # Headers every answer of this kind carries (``headers=`` may override them).
    headers_always: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.headers = {**self.headers_always, **(headers or {})}
        self.extra = extra

    def to_body(self, instance: str | None = None) -> dict[str, Any]:
        return problem_body(
            status=self.status,
            type_=self.type_,
            title=self.title,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
            **self.extra,
        )


class BadRequest(Problem):
    pass


class ValidationProblem(Problem):
    status = 422
    type_ = "validation-error"
    title = "The request is not valid"


class Unauthorized(Problem):
    status = 401
    type_ = "unauthorized"
    title = "Authentication required"
    # RFC 9110: a 401 names how to authenticate. The platform's callers send
    # bearer tokens (or X-API-Key) to the gateway, which passes a service's
    # 401 on as it is.
    headers_always: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": "Bearer"}


class Forbidden(Problem):
    status = 403
    type_ = "forbidden"
    title = "Not allowed"


class NotFound(Problem):
    status = 404
    type_ = "not-found"
    title = "Not found"


class Conflict(Problem):
    status = 409
    type_ = "conflict"
    title = "Conflict"


class PreconditionFailed(Problem):
    status = 412
    type_ = "precondition-failed"
    title = "Precondition failed"


class PreconditionRequired(Problem):
    status = 428
    type_ = "precondition-required"
    title = "Precondition required"


class PayloadTooLarge(Problem):
    status = 413
    type_ = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(Problem):
    status = 415
    type_ = "unsupported-media-type"
    title = "Unsupported media type"


class ServiceUnavailable(Problem):
    status = 503
    type_ = "service-unavailable"
    title = "Service unavailable"


class EarlyResponse(Exception):
    """An answer decided before the endpoint's end (a 304, a replayed
    creation): raised from a dependency or a route, sent as it is, and the
    request's transaction rolled back like on any exception."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


_STATUS_TYPES: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    411: ("length-required", "Length required"),
    412: ("precondition-failed", "Precondition failed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "The request is not valid"),
    428: ("precondition-required", "Precondition required"),
    429: ("too-many-requests", "Too many requests"),
    502: ("bad-gateway", "Bad gateway"),
    503: ("service-unavailable", "Service unavailable"),
    504: ("gateway-timeout", "Gateway timeout"),
}


def status_problem(status: int, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    """Problem body for a bare HTTP status (used by the gateway too)."""
    type_, title = _STATUS_TYPES.get(status, ("about:blank", "Error"))
    return problem_body(status=status, type_=type_, title=title, detail=detail, **extra)


def internal_error_problem(request_id: str | None) -> dict[str, Any]:
    """The 500's body: nothing of the error, only the id to quote."""
    body = status_problem(500, "An unexpected error occurred; quote the request id.")
    body["type"] = TYPE_BASE + "internal-error"
    body["title"] = "Internal error"
    if request_id:  # absent rather than null: the Problem schema says string
        body["request_id"] = request_id
    return body


async def send_problem_response(
    send: Send, body: Mapping[str, Any], *, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with ``body`` (a problem) from plain ASGI code: the middlewares and
    the gateway's proxy that run before, or without, any framework."""
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": body["status"],
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def request_id_of(request: Request) -> str | None:
    """The id RequestContextMiddleware gave this request."""
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Flatten pydantic's errors into ``{field, location, reason}`` entries."""
    out = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            # pydantic locates a syntax error by character offset, not by field.
            offset = err.get("loc", ("body", "?"))[-1]
            reason = f"invalid JSON at character {offset}: {err.get('msg', 'invalid')}"
            out.append({"location": "body", "field": "body", "reason": reason})
            continue
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else "body"
        field = ".".join(loc[1:]) if len(loc) > 1 else where
        out.append({"location": where, "field": field, "reason": err.get("msg", "invalid")})
    return out


def allowed_methods(request: Request) -> list[str]:
    """Every method the routes of this path accept (Starlette names only the
    first matching route's in its Allow header)."""
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    # Included routers are wrapped (FastAPI keeps the router they came from).
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        body = exc.to_body(instance=request.url.path)
        if rid := request_id_of(request):
            body["request_id"] = rid
        return ProblemResponse(body, status_code=exc.status, headers=exc.headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc)
        fields = ", ".join(sorted({e["field"] for e in errors}))
        body = problem_body(
            status=422,
            type_="validation-error",
            title="The request is not valid",
            detail=f"Invalid fields: {fields}",
            instance=request.url.path,
            errors=errors,
            request_id=request_id_of(request),
        )
        return ProblemResponse(body, status_code=422)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use {', '.join(allowed)}."
        body = status_problem(
            exc.status_code, detail, instance=request.url.path, request_id=request_id_of(request)
        )
        return ProblemResponse(body, status_code=exc.status_code, headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Logged with its traceback for operators; the client sees only the id.
        log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
        return ProblemResponse(internal_error_problem(request_id_of(request)), status_code=500)

    def busy(request: Request, detail: str) -> Response:
        body = status_problem(
            503, detail, instance=request.url.path, request_id=request_id_of(request)
        )
        return ProblemResponse(body, status_code=503, headers={"Retry-After": "1"})

    async def on_database_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DBAPIError)
        if exc.connection_invalidated:
            # A pooled connection was cut (database restart, failover, a proxy's
            # idle timeout): SQLAlchemy has dropped it and renews the pool; the
            # request is safe to send again (ADR 0025).
            log.warning("database_connection_lost", path=request.url.path)
            return busy(request, "The connection to the database was lost; retry in a moment.")
        if "database is locked" in str(exc.orig):
            # SQLite (the embedded default) serialises writers; past the busy
            # timeout the honest answer is "busy, retry", not a 500.
            return busy(request, "The database is busy with another write; retry in a moment.")
        return await on_unexpected(request, exc)

    async def on_early_response(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EarlyResponse)
        return exc.response

    app.add_exception_handler(EarlyResponse, on_early_response)

    async def on_pool_timeout(request: Request, exc: Exception) -> Response:
        log.warning("database_pool_exhausted", path=request.url.path)
        return busy(request, "Every database connection is in use; retry in a moment.")

    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(PoolTimeout, on_pool_timeout)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
