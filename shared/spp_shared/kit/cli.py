"""The command line every service shares: ``serve``, ``migrate``, and the
background commands (``worker`` and the periodic purges) of
:func:`background_commands`.

Periodic commands are made for a scheduler (``make run``, Kubernetes
CronJobs): they exit 0 when done and 1 when they could not do their work,
end in bounded time, and may be run again at any moment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import structlog
import uvicorn
from sqlalchemy import Table
from sqlalchemy.exc import SQLAlchemyError

from spp_shared.kit import idempotency, outbox
from spp_shared.kit.db import Database
from spp_shared.kit.keys import PUBLIC_KEYS_ENV, signing_key_env
from spp_shared.kit.logging import configure_logging
from spp_shared.kit.mail import EMAIL_KIND, email_handler
from spp_shared.kit.retention import DEFAULT_MAX_SECONDS
from spp_shared.kit.settings import ServiceSettings
from spp_shared.kit.worker import Handler, Worker

log = structlog.get_logger("spp.cli")

S = TypeVar("S", bound=ServiceSettings)


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Command:
    """A service's own command: its help, its arguments, and what it runs
    (returning the exit code)."""

    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = field(default=_no_arguments)


def require_keys(process: str, *, public_keys: bool = True) -> None:
    """Stop with a clear message, not a traceback, when the process's keys are
    missing: its own private key (``SPP_SITES_SIGNING_KEY`` for ``sites``)
    and, for a service, the public keys of every issuer."""
    needed = [signing_key_env(process)]
    if public_keys:
        needed.append(PUBLIC_KEYS_ENV)
    missing = [env for env in needed if not os.environ.get(env)]
    if missing:
        raise SystemExit(
            f"{' and '.join(missing)} not set: each process needs its own private key, and "
            "each service the public keys of the gateway and of every service "
            "(`make run` generates them for development; deploy/README.md says how)."
        )


def serve_main(
    name: str,
    factory: str,
    *,
    default_port: int,
    migrate: Callable[[], None],
    commands: Mapping[str, Command] | None = None,
    argv: list[str] | None = None,
) -> None:
    """``serve`` and ``migrate``, plus the service's own ``commands``."""
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
    for name_, command in (commands or {}).items():
        command.arguments(sub.add_parser(name_, help=command.help))
    args = parser.parse_args(argv)

    if commands and args.command in commands:
        code = commands[args.command].run(args)
        if code:
            raise SystemExit(code)
        return

    if args.command == "serve":
        require_keys(name.removeprefix("spp_"))
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


def background_commands(
    settings: Callable[[], S],
    *,
    handlers: Callable[[S, Database], Mapping[str, Handler]] | None = None,
    job_timeouts: Callable[[S], Mapping[str, float]] | None = None,
    idempotency_keys: Table | None = None,
) -> dict[str, Command]:
    """``worker`` and ``purge-jobs`` for every service, ``purge-idempotency``
    for those that keep idempotency keys.

    ``handlers`` gives the service's job handlers by kind, from its settings
    and the worker's database;
    every worker also sends e-mail (``send_email``, kit/mail.py).
    ``job_timeouts`` gives the kinds whose jobs may run longer than
    ``job_timeout_seconds`` (a bulk import), with their own limit.
    """
    commands = {
        "worker": Command(
            "run the outbox's jobs until stopped (SIGTERM finishes the jobs in hand)",
            lambda args: _run_worker(
                settings(), handlers or _no_handlers, job_timeouts or _no_timeouts, args
            ),
            _worker_arguments,
        ),
        "purge-jobs": Command(
            "delete failed jobs older than the retention (failed_job_retention_days)",
            lambda args: _purge(settings(), "purge_jobs", _purge_jobs, args),
            _purge_arguments,
        ),
    }
    if idempotency_keys is not None:
        table = idempotency_keys

        async def purge_keys(db: Database, _: ServiceSettings, max_seconds: float) -> int:
            return await idempotency.purge_expired(db, table, max_seconds=max_seconds)

        commands["purge-idempotency"] = Command(
            "delete idempotency keys past their expiry (24 h after their first use)",
            lambda args: _purge(settings(), "purge_idempotency", purge_keys, args),
            _purge_arguments,
        )
    return commands


def _no_handlers(settings: ServiceSettings, db: Database) -> Mapping[str, Handler]:
    return {}


def _no_timeouts(settings: ServiceSettings) -> Mapping[str, float]:
    return {}


def worker_handlers(
    settings: ServiceSettings, service_handlers: Mapping[str, Handler]
) -> dict[str, Handler]:
    """The kit's handlers (e-mail) and the service's own, by kind."""
    kit = {EMAIL_KIND: email_handler(settings.smtp)}
    if clash := kit.keys() & service_handlers.keys():
        raise ValueError(f"job kinds the kit already handles: {sorted(clash)}")
    return kit | dict(service_handlers)


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="run the jobs that are due, then exit")
    parser.add_argument("--concurrency", type=int, help="jobs run at once (worker_concurrency)")


def _purge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="stop after this long and leave the rest to the next run",
    )


def _run_worker(
    settings: S,
    handlers: Callable[[S, Database], Mapping[str, Handler]],
    timeouts: Callable[[S], Mapping[str, float]],
    args: argparse.Namespace,
) -> int:
    configure_logging(settings.log_level, settings.log_json)

    async def main() -> None:
        db = Database(settings.database_url.get_secret_value(), pool_size=2)
        worker = Worker(
            db,
            worker_handlers(settings, handlers(settings, db)),
            concurrency=args.concurrency or settings.worker_concurrency,
            timeout=settings.job_timeout_seconds,
            timeouts=timeouts(settings),
        )
        try:
            if args.once:
                ran = await worker.run_until_idle()
                log.info("worker_idle", service=settings.service_name, jobs=ran)
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            log.info("worker_started", service=settings.service_name, worker=worker.name)
            await worker.run(stop, poll_seconds=settings.worker_poll_seconds)
            log.info("worker_stopped", service=settings.service_name, worker=worker.name)
        finally:
            await db.dispose()

    asyncio.run(main())
    return 0


async def _purge_jobs(db: Database, settings: ServiceSettings, max_seconds: float) -> int:
    retention = timedelta(days=settings.failed_job_retention_days)
    return await outbox.purge_failed(db, older_than=retention, max_seconds=max_seconds)


def _purge(
    settings: ServiceSettings,
    event: str,
    purge: Callable[[Database, ServiceSettings, float], Awaitable[int]],
    args: argparse.Namespace,
) -> int:
    configure_logging(settings.log_level, settings.log_json)

    async def main() -> int:
        db = Database(settings.database_url.get_secret_value(), pool_size=1)
        try:
            return await purge(db, settings, args.max_seconds)
        finally:
            await db.dispose()

    try:
        deleted = asyncio.run(main())
    except (SQLAlchemyError, OSError) as exc:
        # A scheduler reads the exit code; the log says why.
        log.error(event, service=settings.service_name, error=type(exc).__name__)
        return 1
    log.info(event, service=settings.service_name, deleted=deleted)
    return 0
