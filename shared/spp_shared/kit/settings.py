"""Settings base shared by every service and the gateway.

Each service subclasses :class:`ServiceSettings` with its own env prefix
(``SPP_SITES_``, ``SPP_FEEDBACK_``...), so one environment can hold the
configuration of the whole platform without collisions. Platform-wide
secrets keep one name everywhere (``SPP_ASSERTION_KEY``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from fastapi import Request
from pydantic import AfterValidator, AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ASSERTION_KEY_ENV = "SPP_ASSERTION_KEY"
MIN_ASSERTION_KEY_LENGTH = 32


def _long_enough(key: SecretStr | None) -> SecretStr | None:
    if key is not None and len(key.get_secret_value()) < MIN_ASSERTION_KEY_LENGTH:
        raise ValueError(
            f"{ASSERTION_KEY_ENV} must be at least {MIN_ASSERTION_KEY_LENGTH} characters"
        )
    return key


# No default on purpose: a key shipped in the code would let anyone who can
# reach a service forge the gateway's assertions. `make run` and the tests
# generate their own. Optional here so that `migrate` runs without it; the
# apps refuse to start without it (require_assertion_key).
AssertionKey = Annotated[
    SecretStr | None,
    AfterValidator(_long_enough),
    Field(
        default=None,
        validation_alias=AliasChoices(ASSERTION_KEY_ENV, "assertion_key"),
        description="HMAC key of the gateway's identity assertion; the same in every process.",
    ),
]


class SmtpSettings(BaseSettings):
    """Outgoing e-mail (kit/mail.py), one setting for the whole platform
    (``SPP_SMTP_HOST``...). Without a host, e-mails are not sent: the worker
    logs that SMTP is not configured (a development machine needs none)."""

    model_config = SettingsConfigDict(env_prefix="SPP_SMTP_", extra="ignore")

    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    from_address: str = "Services Publics+ <ne-pas-repondre@servicespublicsplus.fr>"
    username: str | None = None
    password: SecretStr | None = None
    # starttls: upgrade a plain connection (port 587); implicit: TLS from the
    # first byte (port 465); none: a relay on a trusted network only.
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    validate_certs: bool = True
    ca_file: str | None = Field(default=None, description="CA bundle of a private relay.")
    timeout_seconds: float = Field(default=30.0, gt=0)


class ServiceSettings(BaseSettings):
    """Base of each service's settings; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    database_url: str = "sqlite+aiosqlite:///./.var/service.db"
    database_echo: bool = False
    database_pool_size: int = 10
    assertion_key: AssertionKey
    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True
    # The outbox's worker (``python -m spp_<name> worker``, kit/worker.py).
    worker_concurrency: int = Field(default=4, ge=1, le=100)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    job_timeout_seconds: float = Field(default=60.0, gt=0)
    # Failed jobs stay for an admin to read, then go (``purge-jobs``): their
    # payloads may hold citizens' words.
    failed_job_retention_days: int = Field(default=30, ge=1)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)


class MissingAssertionKey(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            f"{ASSERTION_KEY_ENV} is not set: give every service and the gateway the same "
            f"random key of at least {MIN_ASSERTION_KEY_LENGTH} characters "
            "(`make run` generates one for development)."
        )


def require_assertion_key(key: SecretStr | None) -> str:
    if key is None:
        raise MissingAssertionKey
    return key.get_secret_value()


S = TypeVar("S", bound=BaseSettings)


def settings_dependency(cls: type[S]) -> Callable[[Request], S]:
    """The dependency giving the app's settings (built in its factory, so a
    test's own settings are the ones its routes see), typed as ``cls``.

    Each service declares its alias once, beside its settings class::

        SettingsDep = Annotated[SitesSettings, Depends(settings_dependency(SitesSettings))]
    """

    def dependency(request: Request) -> S:
        settings = request.app.state.settings
        if not isinstance(settings, cls):
            raise TypeError(f"the app holds {type(settings).__name__}, not {cls.__name__}")
        return settings

    return dependency
