"""Settings base shared by every service and the gateway.

Each service subclasses :class:`ServiceSettings` with its own env prefix
(``SPP_SITES_``, ``SPP_FEEDBACK_``...), so one environment can hold the
configuration of the whole platform without collisions: each process's
own private key is ``SPP_<NAME>_SIGNING_KEY``. What every process shares
keeps one name everywhere: ``SPP_ASSERTION_PUBLIC_KEYS``, the public keys
of every issuer (ADR 0002).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

from fastapi import Request
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from spp_shared.kit.identity import (
    GATEWAY_ISSUER,
    AssertionSigner,
    AssertionVerifier,
    ServiceSigner,
    service_issuer,
)
from spp_shared.kit.keys import PUBLIC_KEYS_ENV, signing_key_env

# No default on purpose: a key shipped in the code would let anyone who can
# reach a service forge assertions. `make run` and the tests generate their
# own. Optional here so that `migrate` runs without keys; the apps refuse to
# start without theirs (service_keys, gateway_signer).
SigningKey = Annotated[
    SecretStr | None,
    Field(
        default=None,
        description="This process's own private key (PEM, P-256: ES256), for the assertions "
        "it signs. Each process has its own; never shared.",
    ),
]
PublicKeys = Annotated[
    dict[str, list[str]] | None,
    Field(
        default=None,
        validation_alias=AliasChoices(PUBLIC_KEYS_ENV, "assertion_public_keys"),
        repr=False,  # public, but five PEMs drown the rest of a settings repr
        description='JSON: {"<issuer>": ["<public key PEM>", ...]} for spp-gateway and each '
        "service (spp-sites, spp-feedback...); the same value in every process. Several keys "
        "per issuer are accepted at once (rotation).",
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

    # A value that fails validation is not repeated in the error: it may be a key.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    service_name: str = "service"
    # May hold a password: SecretStr keeps it out of reprs and logs.
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./.var/service.db")
    database_echo: bool = False
    database_pool_size: int = 10
    signing_key: SigningKey
    assertion_public_keys: PublicKeys
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


class MissingKey(RuntimeError):
    """A process was started without a key it needs (the message says which)."""


def _pem(key: SecretStr | None, env: str) -> str:
    if key is None:
        raise MissingKey(
            f"{env} is not set: give this process its own private key "
            "(`openssl ecparam -name prime256v1 -genkey -noout`; `make run` generates one)."
        )
    return key.get_secret_value()


S = TypeVar("S", bound=BaseSettings)


def settings_dependency(cls: type[S]) -> Callable[[Request], Awaitable[S]]:
    """The dependency giving the app's settings (built in its factory, so a
    test's own settings are the ones its routes see), typed as ``cls``.

    Each service declares its alias once, beside its settings class::

        SettingsDep = Annotated[SitesSettings, Depends(settings_dependency(SitesSettings))]
    """

    async def dependency(request: Request) -> S:
        settings = request.app.state.settings
        if not isinstance(settings, cls):
            raise TypeError(f"the app holds {type(settings).__name__}, not {cls.__name__}")
        return settings

    return dependency


def service_signer(settings: ServiceSettings) -> ServiceSigner:
    """What the service signs its own calls to the others with, in its web
    process (``app.state.signer``) or its worker (a job that pushes to
    another service gives it to its :class:`~spp_shared.kit.http_client.ServiceClient`)."""
    env = signing_key_env(settings.service_name)
    return ServiceSigner(settings.service_name, _pem(settings.signing_key, env), setting=env)


def service_keys(settings: ServiceSettings) -> tuple[ServiceSigner, AssertionVerifier]:
    """The service's own signer and its verifier; raises :class:`MissingKey` or
    :class:`~spp_shared.kit.keys.InvalidKey` when they cannot work."""
    env = signing_key_env(settings.service_name)
    signer = service_signer(settings)
    if not settings.assertion_public_keys:
        raise MissingKey(
            f"{PUBLIC_KEYS_ENV} is not set: give every process the public keys of the gateway "
            "and of each service (`make run` generates them)."
        )
    verifier = AssertionVerifier(settings.assertion_public_keys, setting=PUBLIC_KEYS_ENV)
    if GATEWAY_ISSUER not in verifier.issuers:
        raise MissingKey(
            f"{PUBLIC_KEYS_ENV} lists no key for {GATEWAY_ISSUER}: every call through the "
            "gateway would be refused."
        )
    own = service_issuer(settings.service_name)
    if not verifier.trusts(own, signer.kid):
        raise MissingKey(
            f"{PUBLIC_KEYS_ENV} does not list the public key of {env} under {own}: the other "
            "services would refuse this one's calls."
        )
    return signer, verifier


def gateway_signer(key: SecretStr | None) -> AssertionSigner:
    """The gateway's signer of its callers' assertions."""
    env = signing_key_env("gateway")
    return AssertionSigner(GATEWAY_ISSUER, _pem(key, env), setting=env)
