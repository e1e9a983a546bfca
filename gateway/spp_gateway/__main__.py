"""``python -m spp_gateway [--host H] [--port P] [--workers N]``, and the admin commands.

Without a command the gateway serves: uvloop and httptools, no ``Server``
banner, and no uvicorn access log (the request context middleware writes
one structured line per request instead). The commands act on the
gateway's database (``SPP_GATEWAY_DATABASE_URL``):

* ``migrate``: apply its migrations;
* ``api-keys create|list|revoke|rotate``: manage API keys without a running
  gateway (the first key of a fresh platform, or a revocation in a hurry).
  Each change is in the audit log with the actor ``cli``.

Mistakes answer a one-line reason and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import uvicorn
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from spp_gateway.models import MIGRATIONS
from spp_gateway.server import head_timeout_protocol
from spp_gateway.settings import GatewaySettings
from spp_gateway.store.api_keys import ApiKeyStore
from spp_shared.contracts.access import ApiKeyCreate, ApiKeyOut
from spp_shared.contracts.permissions import Role
from spp_shared.kit.cli import require_keys
from spp_shared.kit.db import Database, WriteSession
from spp_shared.kit.errors import Problem
from spp_shared.kit.identity import Principal, PrincipalKind
from spp_shared.kit.migrations import upgrade

T = TypeVar("T")

# Whoever runs the command holds the database's credentials: an administrator.
CLI_ACTOR = Principal(subject="cli", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin])

# API fields as the command line spells them, for error messages.
_FLAGS = {
    "name": "--name",
    "owner": "--owner",
    "roles": "--role",
    "scopes": "--scope",
    "network": "--network",
    "sites": "--site",
    "expires_at": "--expires-in-days",
}
EXIT_USAGE = 2


class CommandError(Exception):
    """A mistake the user can fix; printed as it is."""


def _flag(field: str) -> str:
    head = field.split(".")[0]
    return _FLAGS.get(head, head)


def _database_url() -> str:
    try:
        return GatewaySettings().database_url.get_secret_value()
    except ValidationError as exc:
        raise CommandError(f"the gateway settings are invalid: {_pydantic_reasons(exc)}") from exc


def _shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _pydantic_reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"{_flag('.'.join(str(p) for p in err['loc']))}: {err['msg']}" for err in exc.errors()
    )


def _problem_text(exc: Problem) -> str:
    reasons = [f"{_flag(str(e.get('field', '')))}: {e.get('reason')}" for e in exc.errors or ()]
    return "; ".join(reasons) if reasons else str(exc.detail or exc.title)


def _with_store(
    work: Callable[[WriteSession, ApiKeyStore], Awaitable[T]],
) -> T:
    """Run ``work`` in one transaction on the gateway's database."""
    url = _database_url()

    async def run() -> T:
        db = Database(url, pool_size=1)
        store = ApiKeyStore(db, cache_seconds=0, last_used_resolution=0)
        try:
            async with db.sessionmaker() as session, session.begin():
                return await work(session, store)
        finally:
            await store.close()
            await db.dispose()

    try:
        return asyncio.run(run())
    except Problem as exc:
        raise CommandError(_problem_text(exc)) from exc
    except (SQLAlchemyError, OSError) as exc:
        # The driver's message may quote values; the class says enough, with the hint.
        raise CommandError(
            f"cannot use the gateway database at {_shown_url(url)} ({type(exc).__name__}); "
            "is it reachable, and migrated (`python -m spp_gateway migrate`)?"
        ) from exc


def _print_secret(key: Any) -> None:
    print(key.secret)
    print(key.id)
    print(
        "Keep the first line now: it is the key's secret, and it is never shown again.",
        file=sys.stderr,
    )


def _status(key: ApiKeyOut, moment: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= moment:
        return "expired"
    return "active"


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


# --- commands ------------------------------------------------------------------------


def cmd_migrate(_args: argparse.Namespace) -> None:
    url = _database_url()
    try:
        upgrade(MIGRATIONS, url)
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(
            f"cannot migrate the gateway database at {_shown_url(url)} ({type(exc).__name__})"
        ) from exc
    print(f"gateway database migrated: {_shown_url(url)}")


def cmd_create(args: argparse.Namespace) -> None:
    expires_at = (
        datetime.now(UTC) + timedelta(days=args.expires_in_days)
        if args.expires_in_days is not None
        else None
    )
    try:
        data = ApiKeyCreate.model_validate(
            {
                "name": args.name,
                "owner": args.owner,
                "roles": args.role,
                "scopes": args.scope,
                "network": args.network,
                "sites": args.site,
                "expires_at": expires_at,
            }
        )
    except ValidationError as exc:
        raise CommandError(_pydantic_reasons(exc)) from exc

    async def work(session: WriteSession, store: ApiKeyStore) -> Any:
        return await store.create_key(session, CLI_ACTOR, data)

    _print_secret(_with_store(work))


def cmd_list(args: argparse.Namespace) -> None:
    async def work(session: WriteSession, store: ApiKeyStore) -> list[ApiKeyOut]:
        keys: list[ApiKeyOut] = []
        cursor: str | None = None
        while True:
            page = await store.list_keys(
                session,
                CLI_ACTOR,
                include_revoked=args.include_revoked,
                cursor=cursor,
                limit=500,
            )
            keys.extend(page.items)
            if page.next_cursor is None:
                return keys
            cursor = page.next_cursor

    keys = _with_store(work)
    moment = datetime.now(UTC)
    columns = ("id", "prefix", "status", "name", "owner", "roles", "network", "expires", "used")
    print("\t".join(columns))
    for key in keys:
        row = (
            key.id,
            key.prefix,
            _status(key, moment),
            key.name,
            key.owner,
            ",".join(r.value for r in key.roles),
            key.network or "-",
            _when(key.expires_at),
            _when(key.last_used_at),
        )
        print("\t".join(row))


def cmd_revoke(args: argparse.Namespace) -> None:
    async def work(session: WriteSession, store: ApiKeyStore) -> ApiKeyOut:
        return await store.revoke_key(session, CLI_ACTOR, args.key_id)

    key = _with_store(work)
    print(f"revoked {key.id} ({key.name}) at {_when(key.revoked_at)}")


def cmd_rotate(args: argparse.Namespace) -> None:
    async def work(session: WriteSession, store: ApiKeyStore) -> Any:
        return await store.rotate_key(session, CLI_ACTOR, args.key_id)

    _print_secret(_with_store(work))


def serve(args: argparse.Namespace) -> None:
    require_keys("gateway", public_keys=False)
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        raise SystemExit(f"invalid gateway settings: {_pydantic_reasons(exc)}") from None
    trusted_proxies = settings.forwarded_allow_ips.strip()
    uvicorn.run(
        "spp_gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        # httptools, with a deadline and a size bound on each request head
        http=head_timeout_protocol(
            settings.header_timeout,
            settings.max_header_bytes + settings.max_url_bytes + 1024,
        ),
        lifespan="on",
        server_header=False,
        date_header=True,
        # No trusted proxy named, no forwarded header read: a caller cannot
        # choose the address its anonymous rate limit counts against.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
        access_log=False,
        log_config=None,  # our JSON logging (configure_logging) covers uvicorn too
        log_level=os.environ.get("SPP_GATEWAY_LOG_LEVEL", "info").lower(),
    )


def _days(text: str) -> float:
    """A number of days from 0 to 10 years (argparse turns the error into a message)."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 < days <= 3660:
        raise argparse.ArgumentTypeError("give a number of days between 0 and 3660")
    return days


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spp_gateway",
        description="Run the SP+ gateway (no command), or manage its database.",
    )
    parser.add_argument("--host", default=os.environ.get("SPP_GATEWAY_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SPP_GATEWAY_PORT", "8000")))
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("SPP_GATEWAY_WORKERS", "1"))
    )
    parser.set_defaults(run=serve)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser("migrate", help="apply the gateway database's migrations").set_defaults(
        run=cmd_migrate
    )

    keys = commands.add_parser("api-keys", help="create, list, revoke and rotate API keys")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a key; prints its secret once, then its id")
    create.add_argument("--name", required=True)
    create.add_argument("--owner", required=True, help="the organisation or team responsible")
    create.add_argument("--role", action="append", required=True, help="repeat for several")
    create.add_argument("--scope", action="append", default=[], help="an action, e.g. sites:import")
    create.add_argument("--network", default=None, help="network code, e.g. caf")
    create.add_argument("--site", action="append", default=[], help="site id or SP+ code")
    create.add_argument("--expires-in-days", type=_days, default=None, metavar="DAYS")
    create.set_defaults(run=cmd_create)

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--include-revoked", action="store_true")
    listing.set_defaults(run=cmd_list)

    revoke = actions.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(run=cmd_revoke)

    rotate = actions.add_parser("rotate", help="new secret for a key; prints it once, then the id")
    rotate.add_argument("key_id", metavar="ID")
    rotate.set_defaults(run=cmd_rotate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


if __name__ == "__main__":
    main()
