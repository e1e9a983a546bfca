"""The identity assertion: asymmetric keys, what each issuer may assert, and
the binding of each assertion to its request."""

from __future__ import annotations

import base64
import hmac
import json
import time

import jwt
import pytest

from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import (
    GATEWAY_ISSUER,
    AssertionSigner,
    AssertionVerifier,
    InvalidAssertion,
    Principal,
    PrincipalKind,
    service_principal,
)
from spp_shared.kit.keys import (
    InvalidKey,
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
    signing_key_env,
)
from tests.support import (
    GATEWAY_SIGNER,
    TEST_KEYS_ENV,
    TEST_PUBLIC_KEYS,
    TEST_VERIFIER,
    service_signer,
)

MANAGER = Principal(
    subject="key-caf-69",
    kind=PrincipalKind.api_key,
    roles=[Role.network_manager],
    scopes=["sites:write"],
    network="caf",
    sites=["01JC0000000000000000000000"],
    request_id="rid-1",
)
# What the feedback service holds: its own private key.
FEEDBACK_PEM = TEST_KEYS_ENV[signing_key_env("feedback")]
GET_SITE = {"method": "GET", "path": "/v1/sites/01JC0000000000000000000000"}


def sign(
    principal: Principal = MANAGER, signer: AssertionSigner = GATEWAY_SIGNER, **kw: object
) -> str:
    return signer.sign(principal, **(GET_SITE | kw))  # type: ignore[arg-type]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public(pem: str) -> str:
    return public_key_pem(load_private_key(pem, "test"))


def test_round_trip_keeps_every_claim() -> None:
    assert TEST_VERIFIER.verify(sign(), **GET_SITE) == MANAGER


def test_the_token_is_an_es256_jwt_naming_its_key() -> None:
    token = sign()
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": GATEWAY_SIGNER.kid, "typ": "JWT"}
    # Any JWT library verifies it with the gateway's public key alone.
    claims = jwt.decode(
        token,
        TEST_PUBLIC_KEYS[GATEWAY_ISSUER][0],
        algorithms=["ES256"],
        audience="spp-services",
        issuer=GATEWAY_ISSUER,
    )
    assert (claims["method"], claims["path"], claims["rid"]) == (
        "GET",
        GET_SITE["path"],
        "rid-1",
    )


def test_expired_assertion_is_refused() -> None:
    token = sign(ttl=5, now=time.time() - 60)
    with pytest.raises(InvalidAssertion, match="expired"):
        TEST_VERIFIER.verify(token, **GET_SITE)


def test_assertion_issued_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidAssertion, match="future"):
        TEST_VERIFIER.verify(sign(now=time.time() + 60), **GET_SITE)
    # A little clock skew between hosts is fine.
    assert TEST_VERIFIER.verify(sign(now=time.time() + 3), **GET_SITE) == MANAGER


def test_tampering_and_garbage_are_refused() -> None:
    header, payload, signature = sign().split(".")
    admin = json.loads(base64.urlsafe_b64decode(payload + "==")) | {"roles": ["programme_admin"]}
    forged = b64(json.dumps(admin).encode())
    for token in (
        f"{header}.{forged}.{signature}",
        f"{header}.{payload}x.{signature}",
        f"{header}.{payload}.{signature[:-4]}AAAA",
        f"{header}.{payload}.{signature}.{signature}",
        f"{header}.{payload}!.{signature}",
        "not-a-jwt",
        "",
    ):
        with pytest.raises(InvalidAssertion):
            TEST_VERIFIER.verify(token, **GET_SITE)


def test_unsigned_and_symmetric_algorithms_are_refused() -> None:
    none = (
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZXMiOlsicHJvZ3JhbW1lX2FkbWluIl19."
    )
    with pytest.raises(InvalidAssertion):
        TEST_VERIFIER.verify(none, **GET_SITE)
    # HS256 with the gateway's PUBLIC key as the HMAC secret: the classic
    # algorithm confusion. The verifier takes ES256 only.
    header, payload, _ = sign().split(".")
    header = b64(json.dumps({"alg": "HS256", "kid": GATEWAY_SIGNER.kid, "typ": "JWT"}).encode())
    mac = hmac.new(
        TEST_PUBLIC_KEYS[GATEWAY_ISSUER][0].encode(), f"{header}.{payload}".encode(), "sha256"
    )
    confused = f"{header}.{payload}.{b64(mac.digest())}"
    with pytest.raises(InvalidAssertion, match="ES256"):
        TEST_VERIFIER.verify(confused, **GET_SITE)


def test_unknown_key_id_is_refused() -> None:
    stranger = AssertionSigner(GATEWAY_ISSUER, generate_private_key_pem(), setting="test")
    with pytest.raises(InvalidAssertion, match="key this service does not know"):
        TEST_VERIFIER.verify(sign(signer=stranger), **GET_SITE)
    # Nor may a known kid be put on a stranger's signature.
    header, payload, _ = sign().split(".")
    _, _, signature = sign(signer=stranger).split(".")
    with pytest.raises(InvalidAssertion, match="could not be verified"):
        TEST_VERIFIER.verify(f"{header}.{payload}.{signature}", **GET_SITE)


def test_two_gateway_keys_are_accepted_during_a_rotation() -> None:
    old_pem, new_pem = generate_private_key_pem(), generate_private_key_pem()
    old = AssertionSigner(GATEWAY_ISSUER, old_pem, setting="old")
    new = AssertionSigner(GATEWAY_ISSUER, new_pem, setting="new")
    both = AssertionVerifier({GATEWAY_ISSUER: [public(old_pem), public(new_pem)]}, setting="t")
    assert old.kid != new.kid
    for signer in (old, new):
        assert both.verify(sign(signer=signer), **GET_SITE) == MANAGER
    # Once the old key is removed from the list, its assertions stop.
    after = AssertionVerifier({GATEWAY_ISSUER: [public(new_pem)]}, setting="t")
    assert after.verify(sign(signer=new), **GET_SITE) == MANAGER
    with pytest.raises(InvalidAssertion, match="does not know"):
        after.verify(sign(signer=old), **GET_SITE)


def test_one_key_may_not_serve_two_issuers() -> None:
    pem = public(generate_private_key_pem())
    with pytest.raises(InvalidKey, match="two issuers"):
        AssertionVerifier({GATEWAY_ISSUER: [pem], "spp-sites": [pem]}, setting="KEYS")


def test_bad_key_settings_are_named_never_quoted() -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"
    with pytest.raises(InvalidKey, match="SPP_X_SIGNING_KEY") as err:
        AssertionSigner(GATEWAY_ISSUER, secret, setting="SPP_X_SIGNING_KEY")
    assert "c2VjcmV0" not in str(err.value)
    with pytest.raises(InvalidKey, match="not a PEM public key"):
        AssertionVerifier({GATEWAY_ISSUER: ["nope"]}, setting="KEYS")


# --- bound to its request ------------------------------------------------------------


def test_a_replay_for_another_method_or_path_is_refused() -> None:
    token = sign()
    assert TEST_VERIFIER.verify(token, **GET_SITE) == MANAGER
    for method, path in (
        ("DELETE", GET_SITE["path"]),
        ("PATCH", GET_SITE["path"]),
        ("POST", "/v1/sites"),
        ("GET", "/v1/sites/01JC0000000000000000000001"),
        ("GET", GET_SITE["path"] + "/"),
        ("get", GET_SITE["path"]),
    ):
        with pytest.raises(InvalidAssertion, match="another request"):
            TEST_VERIFIER.verify(token, method=method, path=path)


def test_head_and_get_are_different_requests() -> None:
    # A HEAD answers no body: its assertion must not read one with GET.
    head = sign(method="HEAD")
    with pytest.raises(InvalidAssertion, match="another request"):
        TEST_VERIFIER.verify(head, **GET_SITE)
    assert TEST_VERIFIER.verify(head, method="HEAD", path=GET_SITE["path"]) == MANAGER


def test_the_request_id_must_be_the_requests() -> None:
    token = sign(request_id="rid-7")
    assert TEST_VERIFIER.verify(token, **GET_SITE, request_id="rid-7").request_id == "rid-7"
    assert TEST_VERIFIER.verify(token, **GET_SITE).request_id == "rid-7"  # no X-Request-ID
    with pytest.raises(InvalidAssertion, match="another request"):
        TEST_VERIFIER.verify(token, **GET_SITE, request_id="rid-8")


# --- what a service's key may assert -----------------------------------------------------

AGENT = Principal(
    subject="agent:alice", kind=PrincipalKind.agent, roles=[Role.agent], network="caf"
)
ADMIN = Principal(
    subject="bootstrap-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
)


def test_a_service_key_asserts_its_own_service_identity() -> None:
    feedback = service_signer("feedback")
    token = feedback.sign(**GET_SITE, request_id="r-1")
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "spp-feedback"
    principal = TEST_VERIFIER.verify(token, **GET_SITE)
    assert principal.model_copy(update={"request_id": None}) == service_principal("feedback")


@pytest.mark.parametrize(
    "principal",
    [
        AGENT,
        ADMIN,
        MANAGER,
        # its own name, with more than the service role...
        service_principal("feedback").model_copy(update={"roles": [Role.service, Role.agent]}),
        service_principal("feedback").model_copy(update={"network": "caf"}),
        service_principal("feedback").model_copy(update={"scopes": ["sites:write"]}),
        service_principal("feedback").model_copy(update={"sites": ["01JC0000000000000000000000"]}),
        service_principal("feedback").model_copy(update={"kind": PrincipalKind.agent}),
        # ...or another service's name
        service_principal("sites"),
        service_principal("indicators"),
    ],
    ids=lambda p: f"{p.kind.value}:{p.subject}:{','.join(p.roles)}",
)
def test_a_service_key_cannot_assert_anyone_else(principal: Principal) -> None:
    for issuer in ("spp-feedback", GATEWAY_ISSUER, "spp-sites"):
        # Whatever issuer it claims: the key decides whose word it is.
        rogue = AssertionSigner(issuer, FEEDBACK_PEM, setting="feedback")
        with pytest.raises(InvalidAssertion):
            TEST_VERIFIER.verify(sign(principal, rogue), **GET_SITE)
