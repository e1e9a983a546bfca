"""Per-request cost of the identity assertion: sign (gateway) and verify (service).

Prints µs per call for today's ES256 signer and verifier (kit/identity.py)
beside what they replaced (HS256 through ``jwt.encode`` / ``jwt.decode``),
PyJWT's own paths for the same ES256 token (a PEM given per call, a key
object per call, the prepared ``PyJWS`` with a key object), EdDSA (Ed25519)
for the choice of ADR 0002, and the bare signature operations as the floor.
Each figure is the best of ``--repeat`` runs of ``--number`` calls: on a
shared machine the minimum is the least disturbed. ``make bench`` runs the
others; this one runs alone in a few seconds:

    .venv/bin/python bench/identity_bench.py
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import get_default_algorithms
from jwt.api_jws import PyJWS

from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import (
    AUDIENCE,
    GATEWAY_ISSUER,
    AssertionSigner,
    AssertionVerifier,
    Principal,
    PrincipalKind,
)
from spp_shared.kit.keys import generate_private_key_pem, load_private_key, public_key_pem

# A network manager's API key reading one site: a typical assertion.
PRINCIPAL = Principal(
    subject="api_key:01JC4Z8Q0V3D6M2N5P7R9T1W3Y",
    kind=PrincipalKind.api_key,
    roles=[Role.network_manager],
    scopes=["sites:read", "sites:update"],
    network="caf",
)
METHOD, PATH = "GET", "/v1/sites/01JC4Z8Q0V3D6M2N5P7R9T1W3Y"
RID = "5f0c1b7e9a2d4c6e8f0a1b2c3d4e5f60"
HS_KEY = "bench-hs256-key-" + "k" * 32


def claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": GATEWAY_ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "sub": PRINCIPAL.subject,
        "kind": PRINCIPAL.kind.value,
        "roles": [r.value for r in PRINCIPAL.roles],
        "scopes": PRINCIPAL.scopes,
        "network": PRINCIPAL.network,
        "sites": PRINCIPAL.sites,
        "rid": RID,
        "method": METHOD,
        "path": PATH,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs; the best is shown")
    args = parser.parse_args()

    def best(fn: Callable[[], object]) -> float:
        fn()
        runs = timeit.repeat(fn, number=args.number, repeat=args.repeat)
        return min(runs) / args.number * 1e6

    body = claims()
    payload = json.dumps(body, separators=(",", ":")).encode()

    # HS256, as before issue 8
    hs256 = get_default_algorithms()["HS256"]
    hs_prepared = hs256.prepare_key(HS_KEY)
    hs_jws = PyJWS(algorithms=["HS256"])
    hs_token = jwt.encode(body, HS_KEY, algorithm="HS256")

    # ES256, today's
    pem = generate_private_key_pem()
    key = load_private_key(pem, "bench")
    public_pem = public_key_pem(key)
    public = key.public_key()
    signer = AssertionSigner(GATEWAY_ISSUER, pem, setting="bench", ttl=3600)
    verifier = AssertionVerifier({GATEWAY_ISSUER: [public_pem]}, setting="bench")
    es_jws = PyJWS(algorithms=["ES256"])
    headers = {"kid": signer.kid}
    token = signer.sign(PRINCIPAL, method=METHOD, path=PATH, request_id=RID)
    signing_input = token.rpartition(".")[0].encode()

    # EdDSA, for comparison
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_public = ed_key.public_key()
    ed_jws = PyJWS(algorithms=["EdDSA"])
    ed_token = ed_jws.encode(payload, ed_key, algorithm="EdDSA", headers=headers)
    ecdsa = ec.ECDSA(hashes.SHA256())
    der = key.sign(signing_input, ecdsa)
    ed_signature = ed_key.sign(signing_input)
    assert (
        public_pem
        == public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    )

    rows: list[tuple[str, str, Callable[[], object]]] = [
        (
            "sign",
            "HS256 jwt.encode, key as text (the gateway before)",
            lambda: jwt.encode(body, HS_KEY, algorithm="HS256"),
        ),
        (
            "sign",
            "HS256 PyJWS, prepared key",
            lambda: hs_jws.encode(payload, hs_prepared, algorithm="HS256"),
        ),
        (
            "sign",
            "ES256 jwt.encode, PEM each call",
            lambda: jwt.encode(body, pem, algorithm="ES256", headers=headers),
        ),
        (
            "sign",
            "ES256 jwt.encode, key object",
            lambda: jwt.encode(body, key, algorithm="ES256", headers=headers),
        ),
        (
            "sign",
            "ES256 PyJWS, prepared key",
            lambda: es_jws.encode(payload, key, algorithm="ES256", headers=headers),
        ),
        (
            "sign",
            "ES256 AssertionSigner.sign (the gateway now)",
            lambda: signer.sign(PRINCIPAL, method=METHOD, path=PATH, request_id=RID),
        ),
        (
            "sign",
            "EdDSA PyJWS, prepared key",
            lambda: ed_jws.encode(payload, ed_key, algorithm="EdDSA", headers=headers),
        ),
        ("sign", "floor: ECDSA P-256 sign alone", lambda: key.sign(signing_input, ecdsa)),
        ("sign", "floor: Ed25519 sign alone", lambda: ed_key.sign(signing_input)),
        (
            "verify",
            "HS256 jwt.decode, key as text (the services before)",
            lambda: jwt.decode(
                hs_token, HS_KEY, algorithms=["HS256"], audience=AUDIENCE, issuer=GATEWAY_ISSUER
            ),
        ),
        (
            "verify",
            "ES256 jwt.decode, PEM each call",
            lambda: jwt.decode(
                token, public_pem, algorithms=["ES256"], audience=AUDIENCE, issuer=GATEWAY_ISSUER
            ),
        ),
        (
            "verify",
            "ES256 jwt.decode, key object",
            lambda: jwt.decode(
                token, public, algorithms=["ES256"], audience=AUDIENCE, issuer=GATEWAY_ISSUER
            ),
        ),
        (
            "verify",
            "ES256 PyJWS.decode_complete, key object (no claim checks)",
            lambda: es_jws.decode_complete(token, public, algorithms=["ES256"]),
        ),
        (
            "verify",
            "ES256 AssertionVerifier.verify (the services now)",
            lambda: verifier.verify(token, method=METHOD, path=PATH, request_id=RID),
        ),
        (
            "verify",
            "EdDSA PyJWS.decode_complete, key object (no claim checks)",
            lambda: ed_jws.decode_complete(ed_token, ed_public, algorithms=["EdDSA"]),
        ),
        (
            "verify",
            "floor: ECDSA P-256 verify alone",
            lambda: public.verify(der, signing_input, ecdsa),
        ),
        (
            "verify",
            "floor: Ed25519 verify alone",
            lambda: ed_public.verify(ed_signature, signing_input),
        ),
    ]
    print(f"µs per call, best of {args.repeat} x {args.number}; token {len(token)} bytes")
    for what, label, fn in rows:
        print(f"{what:<7}{best(fn):>8.1f}  {label}")


if __name__ == "__main__":
    main()
