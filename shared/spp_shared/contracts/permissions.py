"""What the permission matrix is made of: roles, scopes, and actions that carry their row.

Each service owns its actions: an :class:`Action` enum in its contract module
(``contracts/sites.py``: :class:`~spp_shared.contracts.sites.SitesAction``),
each member naming what it allows and the roles granted it, at which scope.
They live in the contracts, not in the service's package, because the
gateway needs every service's rows without importing any service: it
validates the scopes of the credentials it issues, and refuses a grant that
would reach further than its creator's. ``contracts.access.PLATFORM`` lists
the enums that make up the platform's matrix; the check itself is in
``spp_shared.kit.permissions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Self

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema


class Role(StrEnum):
    public = "public"
    citizen_author = "citizen_author"
    agent = "agent"
    network_manager = "network_manager"
    moderator = "moderator"
    certifier = "certifier"
    programme_admin = "programme_admin"
    service = "service"


class Scope(StrEnum):
    """How far a grant reaches, widest first."""

    any = "any"
    network = "network"
    site = "site"
    own = "own"


# How far each scope reaches, for comparing grants.
WIDTH: Final = {Scope.any: 3, Scope.network: 2, Scope.site: 1, Scope.own: 0}

# The roles a programme actor can hold, in the matrix's column order;
# ``public`` is everyone, signed in or not.
ROLES: Final[tuple[Role, ...]] = (
    Role.public,
    Role.citizen_author,
    Role.agent,
    Role.network_manager,
    Role.moderator,
    Role.certifier,
    Role.programme_admin,
    Role.service,
)

ADMIN: Final[Mapping[Role, Scope]] = MappingProxyType({Role.programme_admin: Scope.any})
PUBLIC: Final[Mapping[Role, Scope]] = MappingProxyType({Role.public: Scope.any})
SIGNED_IN: Final[Mapping[Role, Scope]] = MappingProxyType(
    {role: Scope.any for role in ROLES if role not in (Role.public, Role.citizen_author)}
)


class Action(StrEnum):
    """Base of every service's actions (``resource:verb``), one row of the matrix each.

    A member is declared as ``name = "resource:verb", "what it allows", grants``,
    ``grants`` mapping roles to the scope of their grant; its value is the
    ``resource:verb`` string that routes declare and API key scopes name.
    """

    description: str
    grants: Mapping[Role, Scope]

    def __new__(cls, value: str, description: str, grants: Mapping[Role, Scope]) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        member.grants = MappingProxyType(dict(grants))
        return member


def by_value(enums: Iterable[type[Action]]) -> Mapping[str, Action]:
    """Every action of ``enums`` by its ``resource:verb``; a name used twice is an error."""
    found: dict[str, Action] = {}
    for enum in enums:
        for action in enum:
            if action.value in found:
                raise ValueError(f"'{action.value}' is an action of two services")
            found[action.value] = action
    return MappingProxyType(found)


class ActionOf:
    """A pydantic field type: an action of ``actions``, published as one enum ``name``.

    The platform's actions are several enums (one per service); a credential's
    scopes take any of them, validated in one place (one error naming the
    item) and published as the single ``Action`` schema clients know.
    """

    def __init__(self, actions: Mapping[str, Action], name: str, description: str) -> None:
        self.actions = actions
        self.name = name
        self.description = description

    def _parse(self, value: str) -> Action:
        return self.actions[value]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            self._parse,
            core_schema.literal_schema(
                list(self.actions),
                ref=self.name,
                metadata={
                    "pydantic_js_updates": {"title": self.name, "description": self.description}
                },
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )
