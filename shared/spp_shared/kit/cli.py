"""The command line every service shares: ``serve`` and ``migrate``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import uvicorn

from spp_shared.kit.settings import ASSERTION_KEY_ENV, MissingAssertionKey


def require_assertion_key() -> None:
    """Stop with a clear message, not a traceback, when the key is missing."""
    if not os.environ.get(ASSERTION_KEY_ENV):
        raise SystemExit(str(MissingAssertionKey()))


def serve_main(
    name: str,
    factory: str,
    *,
    default_port: int,
    migrate: Callable[[], None],
    commands: dict[str, tuple[str, Callable[[], None]]] | None = None,
    argv: list[str] | None = None,
) -> None:
    """``serve`` and ``migrate``, plus the service's own ``commands`` (name: help, fn)."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=os.environ.get("SPP_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=default_port)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--migrate", action="store_true", help="apply migrations and reference data first"
    )
    sub.add_parser("migrate", help="apply migrations and load reference data, then exit")
    for command, (help_text, _) in (commands or {}).items():
        sub.add_parser(command, help=help_text)
    args = parser.parse_args(argv)

    if commands and args.command in commands:
        commands[args.command][1]()
        return

    if args.command == "serve":
        require_assertion_key()
    if args.command == "migrate" or getattr(args, "migrate", False):
        migrate()
    if args.command == "serve":
        uvicorn.run(
            factory,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            server_header=False,
            access_log=False,  # RequestContextMiddleware writes one structured line
            log_config=None,  # our JSON logging (configure_logging) covers uvicorn too
            log_level="warning",
        )
