"""Structured JSON logs and the request id, one access line per request.

Logs never carry bodies or query strings: citizens' words and tokens travel
there. Only method, path, status, duration and request id are written.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
# A caller's id is echoed in a header, written in every log line and stored
# in the audit log: only a plain token is taken as it is (no markup, no
# quotes, nothing a log viewer or an HTML report could interpret).
_REQUEST_ID = re.compile(rb"[A-Za-z0-9_-]{1,64}")


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library (uvicorn, python-multipart,
    # SQLAlchemy): the same JSON lines for them, one format to collect.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    # httpx logs every request it sends at INFO, URL included: our own access
    # line is enough, and a URL may carry what should not be logged.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(value: bytes | None) -> str:
    """The caller's id if it is a plain token (letters, digits, ``-``, ``_``;
    1 to 64 characters); else a new one."""
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value.decode("ascii")
    return new_request_id()


# nginx's status for a request whose client closed the connection before
# any answer: what the access log records when the app sent nothing.
CLIENT_CLOSED = 499


class RequestContextMiddleware:
    """Pure ASGI: sets the request id, echoes it, writes one access log line."""

    def __init__(self, app: ASGIApp, *, service: str, access_log: bool = True) -> None:
        self.app = app
        self.log = structlog.get_logger("spp.access")
        self.service = service
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                raw = value
                break
        request_id = clean_request_id(raw)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        answered = False
        rid_header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = True
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
            if not answered:
                # The app had nobody to answer: the client left first
                # (nginx's 499), not a server error.
                status = CLIENT_CLOSED
        finally:
            if self.access_log:
                self.log.info(
                    "request",
                    service=self.service,
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    request_id=request_id,
                )
