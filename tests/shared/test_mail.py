"""E-mail through the outbox, delivered to a real SMTP server (aiosmtpd) that
the tests start on a free local port.

On the sites service's migrated database: the e-mail is enqueued with a
change, the worker (in process, or the real ``worker --once`` command) sends
it, and the server's mailbox is checked.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from pydantic import ValidationError
from sqlalchemy import select

from spp_shared.contracts.jobs import JobState
from spp_shared.kit.db import Database
from spp_shared.kit.mail import EMAIL_KIND, email_handler, enqueue_email
from spp_shared.kit.outbox import JOBS
from spp_shared.kit.settings import SmtpSettings
from spp_shared.kit.worker import Worker
from tests.support import ServiceDB

T = TypeVar("T")

# A citizen's words and address: they must reach the mailbox and no log.
CITIZEN = "camille.martin@exemple.fr"
WORDS = "L'agent m'a reçue sans rendez-vous ; merci à l'accueil de Bourg-en-Bresse."


@dataclass
class Mailbox:
    """aiosmtpd's handler: keeps what it accepts, refuses whom it is told to."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def smtp(port: int, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "from_address": "SP+ <ne-pas-repondre@servicespublicsplus.fr>",
        "timeout_seconds": 5,
    }
    return SmtpSettings(**(values | overrides))


@pytest.fixture
async def db(sites_db: ServiceDB) -> AsyncIterator[Database]:
    await sites_db.reset()
    database = Database(sites_db.url, pool_size=2)
    yield database
    await database.dispose()


async def queue_one(db: Database, to: list[str] | None = None) -> int:
    async with db.sessionmaker() as session, session.begin():
        return await enqueue_email(
            session,
            to=to or [CITIZEN],
            subject="Votre avis a reçu une réponse",
            text=WORDS,
            reply_to="accueil@caf.fr",
        )


async def job_rows(db: Database) -> list[Any]:
    async with db.read_sessionmaker() as session:
        return list((await session.execute(select(JOBS))).all())


@pytest.mark.anyio
async def test_a_committed_email_arrives_at_the_smtp_server(
    db: Database, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    await queue_one(db)
    worker = Worker(db, {EMAIL_KIND: email_handler(smtp(port))})
    assert await worker.run_until_idle() == 1
    [(sender, recipients, message)] = box.messages
    assert sender == "ne-pas-repondre@servicespublicsplus.fr"
    assert recipients == [CITIZEN]
    assert message["Subject"] == "Votre avis a reçu une réponse"
    assert message["To"] == CITIZEN
    assert message["Reply-To"] == "accueil@caf.fr"
    assert message["Message-ID"].endswith("@servicespublicsplus.fr>")
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip() == WORDS
    assert await job_rows(db) == []


@pytest.mark.anyio
async def test_a_rolled_back_change_sends_no_email(
    db: Database, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    async with db.sessionmaker() as session:
        await enqueue_email(session, to=[CITIZEN], subject="Brouillon", text=WORDS)
        await session.rollback()
    assert await Worker(db, {EMAIL_KIND: email_handler(smtp(port))}).run_until_idle() == 0
    assert box.messages == []


@pytest.mark.anyio
async def test_an_unreachable_server_is_retried_and_a_refusal_is_final(
    db: Database, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    await queue_one(db)
    down = Worker(db, {EMAIL_KIND: email_handler(smtp(free_port()))})
    assert await down.run_until_idle() == 1
    [job] = await job_rows(db)
    assert (job.state, job.attempts) == (JobState.pending, 1)
    assert job.last_error.startswith("SMTPConnect")

    box.refuse["nobody@exemple.fr"] = "550 5.1.1 No such user"
    await queue_one(db, to=["nobody@exemple.fr"])
    assert await Worker(db, {EMAIL_KIND: email_handler(smtp(port))}).run_until_idle() == 1
    refused = [j for j in await job_rows(db) if j.state == JobState.failed]
    assert len(refused) == 1
    assert refused[0].attempts == 1
    assert "every recipient was refused" in refused[0].last_error
    assert box.messages == []


@pytest.mark.anyio
async def test_a_bad_address_or_subject_fails_the_change_not_the_worker(db: Database) -> None:
    async with db.sessionmaker() as session:
        with pytest.raises(ValidationError):
            await enqueue_email(session, to=["not an address"], subject="Objet", text="...")
        with pytest.raises(ValidationError):
            await enqueue_email(
                session, to=[CITIZEN], subject="Objet\r\nBcc: tous@exemple.fr", text="..."
            )
        await session.rollback()
    assert await job_rows(db) == []


def run_worker_command(url: str, **smtp_env: str) -> str:
    """``python -m spp_sites worker --once`` as a process; what it logged."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPP_SMTP_")}
    env |= {"SPP_SITES_DATABASE_URL": url, "SPP_SITES_LOG_JSON": "true"} | smtp_env
    done = subprocess.run(
        [sys.executable, "-m", "spp_sites", "worker", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def on_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(url, pool_size=1)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def test_the_worker_command_sends_with_the_platform_smtp_settings(
    sites_db: ServiceDB, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    asyncio.run(sites_db.reset())
    on_database(sites_db.url, queue_one)
    logged = run_worker_command(
        sites_db.url,
        SPP_SMTP_HOST="127.0.0.1",
        SPP_SMTP_PORT=str(port),
        SPP_SMTP_TLS="none",
        SPP_SMTP_FROM_ADDRESS="ne-pas-repondre@servicespublicsplus.fr",
    )
    assert [r for _, r, _ in box.messages] == [[CITIZEN]]
    assert '"event": "email_sent"' in logged
    # Personal data reaches the mailbox, not the logs.
    assert "Bourg-en-Bresse" not in logged
    assert CITIZEN not in logged


def test_without_smtp_the_email_is_logged_as_not_sent_without_its_content(
    sites_db: ServiceDB,
) -> None:
    asyncio.run(sites_db.reset())
    on_database(sites_db.url, queue_one)
    logged = run_worker_command(sites_db.url)
    assert '"event": "email_not_sent"' in logged
    assert "SMTP is not configured" in logged
    assert "Bourg-en-Bresse" not in logged
    assert CITIZEN not in logged
    assert on_database(sites_db.url, job_rows) == []
