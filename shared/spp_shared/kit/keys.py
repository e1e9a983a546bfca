"""The keys of the identity assertion: ES256 (ECDSA on P-256), PEM text.

Each process holds one private key, its own; every process holds the
public keys of every issuer. A key's id (``kid``) is not configured: it is
the RFC 7638 thumbprint of the public key, so an operator lists public keys
and cannot give two keys one id, or one key the wrong id. Errors never
quote a key: a private key must not end up in a log.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ALGORITHM = "ES256"
# The public keys of every issuer, the same value in every process.
PUBLIC_KEYS_ENV = "SPP_ASSERTION_PUBLIC_KEYS"


def signing_key_env(process: str) -> str:
    """A process's own private key: ``SPP_GATEWAY_SIGNING_KEY``, ``SPP_SITES_SIGNING_KEY``..."""
    return f"SPP_{process.upper()}_SIGNING_KEY"


def issuer(process: str) -> str:
    """What a process signs as: ``spp-gateway``, ``spp-sites``..."""
    return f"spp-{process}"


class InvalidKey(ValueError):
    """A configured key cannot be used; the message names the setting, not the key."""


def generate_private_key_pem() -> str:
    """A new private key, PKCS#8 PEM (what ``openssl genpkey`` writes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_private_key(pem: str, setting: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidKey(
            f"{setting} is not an unencrypted PEM private key (P-256, for ES256)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidKey(f"{setting} must be a P-256 (prime256v1) key: the assertion is ES256")
    return key


def load_public_key(pem: str, setting: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidKey(f"{setting} holds a value that is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidKey(f"{setting} holds a key that is not P-256: the assertion is ES256")
    return key


def public_key_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def key_id(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key."""
    jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def load_public_keys(
    keys: Mapping[str, Sequence[str]], setting: str
) -> dict[str, tuple[str, ec.EllipticCurvePublicKey]]:
    """``{issuer: [PEM, ...]}`` -> ``{kid: (issuer, key)}``.

    A key belongs to one issuer: the same public key under two issuers is
    refused, since a token names its issuer and the key must vouch for it.
    """
    by_kid: dict[str, tuple[str, ec.EllipticCurvePublicKey]] = {}
    for issuer, pems in keys.items():
        for pem in pems:
            key = load_public_key(pem, f"{setting} ({issuer})")
            kid = key_id(key)
            known = by_kid.get(kid)
            if known is not None and known[0] != issuer:
                raise InvalidKey(
                    f"{setting} lists one public key for two issuers ({known[0]}, {issuer})"
                )
            by_kid[kid] = (issuer, key)
    return by_kid


def platform_keys_env(processes: Sequence[str]) -> dict[str, str]:
    """A new key for each of ``processes`` (``gateway``, ``sites``...), as the
    environment of a whole platform on one machine (`make run`, the tests):
    each process's private key and the public map they all read."""
    env: dict[str, str] = {}
    public: dict[str, list[str]] = {}
    for process in processes:
        pem = generate_private_key_pem()
        env[signing_key_env(process)] = pem
        public[issuer(process)] = [public_key_pem(load_private_key(pem, process))]
    env[PUBLIC_KEYS_ENV] = json.dumps(public)
    return env
