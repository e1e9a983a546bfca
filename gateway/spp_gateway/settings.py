"""Gateway settings, read once when the app is built.

Everything is under ``SPP_GATEWAY_`` (the gateway's own private key is
``SPP_GATEWAY_SIGNING_KEY``) except ``SPP_BOOTSTRAP_TOKEN``, which keeps its
exact name.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from spp_gateway.policy import OriginList, RateLimitText, RedisURL
from spp_shared.kit.settings import SigningKey

MIN_BOOTSTRAP_TOKEN_LENGTH = 32


def _long_token(token: SecretStr | None) -> SecretStr | None:
    # It opens everything: too short a token could be guessed.
    if token is not None and len(token.get_secret_value()) < MIN_BOOTSTRAP_TOKEN_LENGTH:
        raise ValueError(
            f"SPP_BOOTSTRAP_TOKEN must be at least {MIN_BOOTSTRAP_TOKEN_LENGTH} characters"
        )
    return token


def _long_metrics_token(token: SecretStr | None) -> SecretStr | None:
    if token is not None and len(token.get_secret_value()) < MIN_BOOTSTRAP_TOKEN_LENGTH:
        raise ValueError(
            f"SPP_GATEWAY_METRICS_TOKEN must be at least {MIN_BOOTSTRAP_TOKEN_LENGTH} characters"
        )
    return token


class GatewaySettings(BaseSettings):
    # A value that fails validation is not repeated in the error: it may be a key.
    model_config = SettingsConfigDict(
        env_prefix="SPP_GATEWAY_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    sites_url: str = "http://127.0.0.1:8001"
    feedback_url: str = "http://127.0.0.1:8002"
    indicators_url: str = "http://127.0.0.1:8003"
    labelling_url: str = "http://127.0.0.1:8004"

    connect_timeout: float = Field(
        default=2.0, gt=0, description="Seconds to open a TCP connection to an upstream."
    )
    read_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds without a byte from the upstream before a 504.",
    )
    bulk_read_timeout: float = Field(
        default=900.0,
        gt=0,
        description="The same for bulk endpoints (paths ending in /import), which answer "
        "only when the whole file is done.",
    )
    pool_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a free pooled connection."
    )
    pool_size: int = Field(default=200, ge=1, description="Upstream connections, all services.")
    pool_size_per_host: int = Field(default=100, ge=1)
    keepalive_timeout: float = Field(default=30.0, gt=0)
    readiness_timeout: float = Field(default=2.0, gt=0)
    openapi_cache_seconds: float = Field(default=30.0, ge=0)
    public_url: str | None = Field(
        default=None,
        description="The platform's public address (https://api.example.gouv.fr), the "
        "merged OpenAPI's server; unset: '/', the address the document was read from.",
    )

    # --- rate limits and hardening
    redis_url: RedisURL = Field(
        default=None,
        description="Redis holding the rate-limit counters, shared by every gateway process "
        "(redis://host:6379/0); unset keeps them in this process's memory.",
    )
    redis_timeout: float = Field(
        default=0.25,
        gt=0,
        description="Seconds a rate-limit call to Redis may take; past it the request is "
        "let through (the limiter fails open).",
    )
    rate_limit_key_prefix: str = Field(
        default="spp:ratelimit",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9:_.-]+$",
        description="Prefix of the counters in Redis: one per platform (environment) sharing "
        "a Redis server, the same for every gateway replica of that platform.",
    )
    rate_limits_enabled: bool = Field(
        default=True, description="Off: no rate limiting and no RateLimit headers."
    )
    rate_limit_read: RateLimitText = Field(
        default="1200/minute",
        description="GET, HEAD and OPTIONS per authenticated caller ('n/period', several "
        "joined by ';', all enforced).",
    )
    rate_limit_read_anonymous: RateLimitText = Field(
        default="300/minute", description="The same per client IP for anonymous callers."
    )
    rate_limit_write: RateLimitText = Field(
        default="300/minute", description="Other methods, per authenticated caller."
    )
    rate_limit_write_anonymous: RateLimitText = Field(
        default="60/minute", description="The same per client IP for anonymous callers."
    )
    rate_limit_submission: RateLimitText = Field(
        default="60/minute",
        description="POST, PUT and PATCH on experiences, ratings and document reports, "
        "per authenticated caller.",
    )
    rate_limit_submission_anonymous: RateLimitText = Field(
        default="10/minute;20/hour", description="The same per client IP for anonymous callers."
    )
    rate_limit_bulk: RateLimitText = Field(
        default="30/hour", description="Imports (paths ending in /import), per caller."
    )
    rate_limit_bulk_anonymous: RateLimitText = Field(
        default="0/hour", description="The same for anonymous callers: 0 refuses them all."
    )
    rate_limit_admin: RateLimitText = Field(
        default="120/minute",
        description="API keys, agent mappings and audit events, per authenticated caller.",
    )
    rate_limit_admin_anonymous: RateLimitText = Field(
        default="10/minute",
        description="The same per client IP without credentials: low, but above 0 so a "
        "caller still gets the 401 that says what is missing.",
    )
    rate_limit_lookup: RateLimitText = Field(
        default="300/minute",
        description="Bulk reads (POST .../lookup, GET with a near query, GET .../export), per "
        "authenticated caller: one costs a service up to thousands of rows, a plain read one page.",
    )
    rate_limit_lookup_anonymous: RateLimitText = Field(
        default="60/minute",
        description="The same per client IP for anonymous callers (a person looking around "
        "a map sends one a second at most).",
    )
    body_limit_default: int = Field(
        default=1024 * 1024,
        ge=0,
        description="Request body bytes outside /v1 (the gateway's own endpoints).",
    )
    body_limit_read: int = Field(default=1024 * 1024, ge=0, description="Body bytes, read group.")
    body_limit_write: int = Field(default=1024 * 1024, ge=0, description="Body bytes, write group.")
    body_limit_submission: int = Field(
        default=64 * 1024, ge=0, description="Body bytes, public submissions."
    )
    body_limit_bulk: int = Field(
        default=512 * 1024 * 1024, ge=0, description="Body bytes, imports."
    )
    body_limit_admin: int = Field(default=64 * 1024, ge=0, description="Body bytes, admin group.")
    # --- request heads and bodies: how long the gateway waits for them, which it holds
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection may take to send a complete request head (from "
        "its opening, or from the first byte of a later request); then it is closed.",
    )
    max_buffered_body: int = Field(
        default=1024 * 1024,
        ge=0,
        description="Bodies of routes whose limit is at most this many bytes are read whole "
        "at the gateway before an upstream connection is taken; larger ones (imports) stream.",
    )
    body_idle_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a body that is read whole may stay silent between two reads; "
        "then 408.",
    )
    body_receive_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds to receive the whole of such a body, however it trickles; then 408.",
    )
    upload_idle_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a streamed upload may stay silent between two reads; then 408.",
    )
    upload_min_rate: int = Field(
        default=1024,
        ge=0,
        description="Bytes a second a streamed upload must average once it has run for "
        "SPP_GATEWAY_UPLOAD_IDLE_TIMEOUT seconds; below, 408 (a trickle of a byte every few "
        "seconds would hold an upload connection for ever). 0: no minimum.",
    )
    uploads_per_caller: int = Field(
        default=2,
        ge=1,
        description="Streamed uploads one caller may have in flight at once, per gateway "
        "process; one more answers 429.",
    )
    upload_pool_size: int = Field(
        default=20,
        ge=1,
        description="Upstream connections kept for streamed uploads, apart from the pool every "
        "other request uses, so uploads can never take that pool.",
    )
    max_header_bytes: int = Field(
        default=16384, ge=1024, description="All request header lines together; above: 431."
    )
    max_url_bytes: int = Field(
        default=8192, ge=256, description="Raw path plus query string; above: 414."
    )
    cors_origins: OriginList = Field(
        default_factory=list,
        description="Exact origins of the front-ends allowed to call the API from a browser "
        "(comma-separated or a JSON list); empty: no CORS headers at all.",
    )

    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True

    bootstrap_token: Annotated[SecretStr | None, AfterValidator(_long_token)] = Field(
        default=None,
        validation_alias=AliasChoices("SPP_BOOTSTRAP_TOKEN"),
        description="Static admin bearer token for first-run setup (32 characters or more, "
        "random); unset disables it.",
    )
    forwarded_allow_ips: str = Field(
        default="",
        description="Addresses whose X-Forwarded-For the gateway trusts (the load balancer's; "
        "comma-separated, '*' for all); empty: none, the connection's address is the client's. "
        "Anonymous rate limits count the client address this yields, so a trusted address "
        "chooses whom its callers' requests count against.",
    )

    # --- operations: who may read the metrics and the readiness details
    metrics_token: Annotated[SecretStr | None, AfterValidator(_long_metrics_token)] = Field(
        default=None,
        description="Bearer token of the operations tooling (Prometheus' scrape config): "
        "required for /metrics and for the details of /readyz (32 characters or more, random). "
        "Unset: /metrics answers 404 and /readyz only its status.",
    )

    # --- agent sign-in (OIDC, ProConnect-compatible); unset issuer disables it
    oidc_issuer: str | None = Field(
        default=None, description="Issuer of agents' tokens (iss), e.g. ProConnect's."
    )
    oidc_audience: str | None = Field(
        default=None, description="Audience the tokens must name (aud): the platform's client id."
    )
    oidc_jwks_url: str | None = Field(
        default=None,
        description="JWKS URL; unset: discovered from the issuer's openid-configuration.",
    )
    oidc_algorithms: list[str] = Field(
        default=["RS256", "ES256", "PS256"], description="Accepted signature algorithms."
    )
    oidc_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    # The gateway's private key, which signs its callers' assertions (ADR 0002).
    signing_key: SigningKey

    # --- the gateway's own database: API keys, agents' role mappings, audit log
    # May hold a password: SecretStr keeps it out of reprs and logs.
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./.var/gateway.db")
    database_pool_size: int = Field(default=10, ge=1)
    credential_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Reuse a looked-up API key or agent mapping for this long before reading "
        "the database again: how late a revocation reaches the OTHER gateway processes (the "
        "process that revokes forgets at once). 0: read on every request.",
    )
    last_used_resolution_seconds: float = Field(
        default=60.0,
        ge=0,
        description="An API key's last_used_at is written at most once per this many seconds.",
    )

    def upstream_urls(self) -> dict[str, str]:
        return {
            "sites": self.sites_url,
            "feedback": self.feedback_url,
            "indicators": self.indicators_url,
            "labelling": self.labelling_url,
        }
