"""DEVELOPMENT ONLY: a fake OIDC provider that mints agents' tokens on request.

NEVER deploy this. ``POST /token`` signs a token for whatever identity it is
asked for, with no login and no client authentication: anyone who can reach
it can sign in as any agent. It exists so ``make run`` and the README tour can
exercise the gateway's OIDC sign-in without a ProConnect account. It listens
on 127.0.0.1 by default, and its RSA key is generated at start and lives only
in memory, so its tokens die with the process.

    python deploy/local/dev_oidc.py --port 8009
    curl -s -X POST localhost:8009/token -d '{"sub": "agent-1", "email": "a@caf.fr"}'
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEFAULT_TTL = 3600
MAX_TTL = 86400
OPTIONAL_CLAIMS = ("email", "siret", "uid")


def sign_token(
    key: rsa.RSAPrivateKey,
    kid: str,
    issuer: str,
    audience: str,
    claims: Mapping[str, Any],
    ttl: int,
    now: float | None = None,
) -> str:
    """An RS256 JWT with ``claims`` (None values dropped) plus iss, aud, iat, exp."""
    issued = int(time.time() if now is None else now)
    payload = {name: value for name, value in claims.items() if value is not None}
    payload.update(iss=issuer, aud=audience, iat=issued, exp=issued + ttl)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """The public half as a JWK, its kid the RFC 7638 thumbprint."""
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    members = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest())
    return {**jwk, "kid": thumbprint.rstrip(b"=").decode(), "use": "sig", "alg": "RS256"}


def _bad_request(description: str) -> web.Response:
    return web.json_response(
        {"error": "invalid_request", "error_description": description}, status=400
    )


def create_provider_app(
    issuer: str, audience: str, key: rsa.RSAPrivateKey | None = None
) -> web.Application:
    """The provider's web app; generates an RSA 2048 key when none is given."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = public_jwk(key)
    base = issuer.rstrip("/")
    discovery = {
        "issuer": issuer,
        "jwks_uri": base + "/jwks.json",
        "token_endpoint": base + "/token",
        "id_token_signing_alg_values_supported": ["RS256"],
    }

    async def openid_configuration(_: web.Request) -> web.Response:
        return web.json_response(discovery)

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    async def token(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _bad_request("body must be JSON")
        if not isinstance(body, dict):
            return _bad_request("body must be a JSON object")
        sub = body.get("sub")
        if not isinstance(sub, str) or not sub:
            return _bad_request("sub is required")
        ttl = body.get("ttl", DEFAULT_TTL)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 < ttl <= MAX_TTL:
            return _bad_request(f"ttl must be an integer in 1..{MAX_TTL}")
        claims: dict[str, Any] = {"sub": sub}
        for name in OPTIONAL_CLAIMS:
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                return _bad_request(f"{name} must be a string")
            claims[name] = value
        signed = sign_token(key, jwk["kid"], issuer, audience, claims, ttl)
        return web.json_response(
            {"access_token": signed, "id_token": signed, "token_type": "Bearer", "expires_in": ttl}
        )

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", openid_configuration)
    app.router.add_get("/jwks.json", jwks)
    app.router.add_post("/token", token)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DEVELOPMENT-ONLY OIDC provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8009)
    parser.add_argument("--issuer", help="default: http://HOST:PORT")
    parser.add_argument("--audience", default="spp-local")
    args = parser.parse_args(argv)
    issuer = args.issuer or f"http://{args.host}:{args.port}"
    print(
        "dev_oidc: DEVELOPMENT ONLY, mints tokens for anyone who asks; never deploy it.",
        file=sys.stderr,
    )
    web.run_app(create_provider_app(issuer, args.audience), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
