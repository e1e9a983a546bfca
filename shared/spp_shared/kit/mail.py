"""E-mail through the outbox: :func:`enqueue_email` in the change's
transaction, the ``send_email`` handler in every service's worker.

An e-mail that is part of a change (an answer published, an application
received) is sent only if the change commits, and is not lost if the SMTP
server is down: the worker retries it with backoff. Sending is at least
once: a worker stopped between the SMTP server's acceptance and its record
sends the message again, with the same ``Message-ID`` (chosen at enqueue
time), which mail clients and archives use to fold the copies.

E-mails hold personal data (addresses, citizens' words): nothing of a
message but its job id and number of recipients is logged.
"""

from __future__ import annotations

import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Annotated

import aiosmtplib
import structlog
from pydantic import BaseModel, Field, ValidationError

from spp_shared.contracts.base import single_line
from spp_shared.contracts.types import Email
from spp_shared.kit.db import WriteSession
from spp_shared.kit.outbox import enqueue
from spp_shared.kit.settings import SmtpSettings
from spp_shared.kit.worker import Handler, Job, PermanentFailure

EMAIL_KIND = "send_email"
MAX_RECIPIENTS = 50
MAX_TEXT_LENGTH = 100_000

log = structlog.get_logger("spp.mail")


class OutgoingEmail(BaseModel):
    """The job's payload: a plain-text message (checked when enqueued, so a
    bad address fails the change that wanted it, not a worker later)."""

    to: list[Email] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    subject: Annotated[str, single_line(250)]
    text: str = Field(max_length=MAX_TEXT_LENGTH)
    reply_to: Email | None = None
    # The left part of the Message-ID: the same for every attempt.
    message_key: str = Field(pattern=r"^[0-9a-f]{32}$")


async def enqueue_email(
    session: WriteSession,
    *,
    to: list[str],
    subject: str,
    text: str,
    reply_to: str | None = None,
) -> int:
    """Queue an e-mail in ``session``'s transaction; the job's id."""
    email = OutgoingEmail(
        to=to, subject=subject, text=text, reply_to=reply_to, message_key=uuid.uuid4().hex
    )
    return await enqueue(session, EMAIL_KIND, email.model_dump(mode="json"))


def build_message(email: OutgoingEmail, settings: SmtpSettings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.from_address
    message["To"] = ", ".join(email.to)
    if email.reply_to:
        message["Reply-To"] = email.reply_to
    message["Subject"] = email.subject
    message["Message-ID"] = f"<{email.message_key}@{_sender_domain(settings.from_address)}>"
    message.set_content(email.text)
    return message


def _sender_domain(from_address: str) -> str:
    [(_, address)] = getaddresses([from_address])
    return Address(addr_spec=address).domain or "localhost"


def email_handler(settings: SmtpSettings) -> Handler:
    """The ``send_email`` handler: sends with aiosmtplib, or logs that SMTP
    is not configured and lets the job go (development machines)."""

    async def send_email(job: Job) -> None:
        try:
            email = OutgoingEmail.model_validate(job.payload)
        except ValidationError:
            raise PermanentFailure("the payload is not an e-mail this version can send") from None
        if settings.host is None:
            log.warning(
                "email_not_sent",
                reason="SMTP is not configured (SPP_SMTP_HOST)",
                job_id=job.id,
                recipients=len(email.to),
            )
            return
        try:
            refused, _ = await aiosmtplib.send(
                build_message(email, settings),
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password.get_secret_value() if settings.password else None,
                use_tls=settings.tls == "implicit",
                start_tls=settings.tls == "starttls",
                validate_certs=settings.validate_certs,
                cert_bundle=settings.ca_file,
                timeout=settings.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(r.code >= 500 for r in exc.recipients):
                raise PermanentFailure(f"every recipient was refused: {exc}") from None
            raise
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx is the server's final word (RFC 5321 4.2.1); 4xx may pass later.
            if exc.code >= 500:
                raise PermanentFailure(f"the SMTP server refused the message: {exc}") from None
            raise
        log.info("email_sent", job_id=job.id, recipients=len(email.to), refused=len(refused))

    return send_email
