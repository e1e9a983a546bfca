"""What the conformance suite sends, to whom, and what it got back.

A :class:`Call` is one request, described for any app: who calls
(:data:`Caller`), which instance (the app on its database, or the same app
built on a database it cannot reach), and the request itself. Each
:class:`App` sends a call once and keeps the answer, so every test asking
for it shares one round trip, and the OpenAPI test can walk every answer an
app gave (calls.py lists them all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import ASSERTION_HEADER, AssertionSigner, Principal, PrincipalKind
from spp_shared.kit.keys import signing_key_env
from tests.support import (
    GATEWAY_SIGNER,
    TEST_KEYS_ENV,
    AsGateway,
    ServedApp,
    assertion_headers,
    expired_assertion_headers,
    foreign_assertion_headers,
)

SERVICES = ("sites", "feedback", "indicators", "labelling")
GATEWAY = "gateway"
APPS = (GATEWAY, *SERVICES)

BOOTSTRAP_TOKEN = "conformance-bootstrap-token-0123456789abcdef"
OPS_TOKEN = "conformance-metrics-token-0123456789abcdef"

ADMIN = Principal(
    subject="conformance-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
)


def service_signer_as_admin() -> AssertionSigner:
    """The feedback service's own key, made to sign anything it likes."""
    return AssertionSigner("spp-feedback", TEST_KEYS_ENV[signing_key_env("feedback")], setting="f")


# Who sends a call. At a service: ``none`` sends no assertion, ``anonymous``
# and ``admin`` what the gateway would sign for them, ``garbage``,
# ``expired``, ``foreign`` (signed with a key the platform does not hold),
# ``replayed`` (the gateway's, for another request) and ``service-key`` (an
# admin signed with the feedback service's own key) assertions a service
# must refuse. At the gateway: ``none`` and
# ``anonymous`` send no credential, ``admin`` the bootstrap token, ``ops``
# the operations token, ``wrong`` a bearer token nobody issued, and
# ``forged`` an anonymous request carrying an admin's assertion signed with
# the platform's own key (what only the gateway may send).
Caller = Literal[
    "none",
    "anonymous",
    "admin",
    "garbage",
    "expired",
    "foreign",
    "replayed",
    "service-key",
    "ops",
    "wrong",
    "forged",
]

# ``main``: the app on its migrated database; the others: the same app built
# on a database it cannot use: one that cannot be reached (a SQLite path that
# cannot be opened, a PostgreSQL port where nothing listens), or an empty one
# (a SQLite path mistyped: a new file, no schema).
Instance = Literal["main", "unreachable-sqlite", "unreachable-postgresql", "empty-sqlite"]
NOT_READY: tuple[Instance, ...] = ("unreachable-sqlite", "unreachable-postgresql", "empty-sqlite")


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # with its query string
    caller: Caller = "anonymous"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    instance: Instance = "main"

    def __str__(self) -> str:
        where = "" if self.instance == "main" else f" [{self.instance}]"
        return f"{self.method} {self.path} as {self.caller}{where}"


def _service_headers(caller: Caller) -> tuple[dict[str, str], httpx.Auth | None]:
    match caller:
        case "none":
            return {}, None
        case "anonymous":
            return {}, AsGateway()
        case "admin":
            return assertion_headers(ADMIN), AsGateway()
        case "garbage":
            return {ASSERTION_HEADER: "not-a-jwt"}, AsGateway()
        case "expired":
            return expired_assertion_headers(ADMIN), AsGateway()
        case "foreign":
            return foreign_assertion_headers(ADMIN), AsGateway()
        case "replayed":
            # The gateway's own, for an admin, but for another request.
            other = GATEWAY_SIGNER.sign(ADMIN, method="GET", path="/v1/somewhere-else")
            return {ASSERTION_HEADER: other}, AsGateway()
        case "service-key":
            # What a compromised feedback service could sign: an admin, with its key.
            return assertion_headers(ADMIN, service_signer_as_admin()), AsGateway()
    raise ValueError(f"a service has no caller {caller!r}")


def _gateway_headers(caller: Caller) -> tuple[dict[str, str], httpx.Auth | None]:
    match caller:
        case "none" | "anonymous":
            return {}, None
        case "admin":
            return {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}, None
        case "ops":
            return {"Authorization": f"Bearer {OPS_TOKEN}"}, None
        case "wrong":
            return {"Authorization": "Bearer not-a-token-anyone-issued"}, None
        case "forged":
            # Signed as the gateway signs for the request it is sent with.
            return assertion_headers(ADMIN), AsGateway()
    raise ValueError(f"the gateway has no caller {caller!r}")


@dataclass(frozen=True)
class Answer:
    call: Call
    status: int
    content_type: str  # without parameters, "" for none
    response: httpx.Response


class App:
    """One app under test: its served instances and the answers it gave."""

    def __init__(self, name: str, instances: Mapping[Instance, Callable[[], ServedApp]]) -> None:
        self.name = name
        self.answers: dict[Call, Answer] = {}
        # Served on first use: most tests need only the main instance.
        self._instances = instances
        self._served: dict[Instance, ServedApp] = {}
        self._clients: dict[Instance, httpx.Client] = {}

    def __repr__(self) -> str:
        return self.name

    @property
    def is_gateway(self) -> bool:
        return self.name == GATEWAY

    def answer(self, call: Call) -> Answer:
        """The answer to ``call`` (sent the first time it is asked for)."""
        if call not in self.answers:
            self.answers[call] = self._send(call)
        return self.answers[call]

    def send(self, call: Call) -> httpx.Response:
        """Send ``call`` again (for what changes between two calls: metrics)."""
        answer = self._send(call)
        self.answers.setdefault(call, answer)
        return answer.response

    def url(self, instance: Instance = "main") -> str:
        self._client(instance)
        return self._served[instance].url

    def stop_serving(self) -> None:
        """Ask every instance to stop (``close`` waits for them)."""
        for served in self._served.values():
            served.server.should_exit = True

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        for served in self._served.values():
            served.stop()

    def _client(self, instance: Instance) -> httpx.Client:
        if instance not in self._clients:
            self._served[instance] = self._instances[instance]()
            self._clients[instance] = httpx.Client(base_url=self._served[instance].url, timeout=10)
        return self._clients[instance]

    def _send(self, call: Call) -> Answer:
        headers, auth = (_gateway_headers if self.is_gateway else _service_headers)(call.caller)
        headers.update(call.headers)
        response = self._client(call.instance).request(
            call.method, call.path, headers=headers, content=call.body, auth=auth
        )
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        return Answer(call, response.status_code, media, response)
