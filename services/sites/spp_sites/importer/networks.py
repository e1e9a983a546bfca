"""Network names of the exports to network codes; networks the import creates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from spp_shared.contracts.types import check_visible_name, normalize_network_code, slugify_network
from spp_sites.models import Network
from spp_sites.text import fold

NAME_LENGTH: Final[int] = Network.__table__.c.name.type.length  # type: ignore[attr-defined]
# Names resolved are remembered up to this many (a file names a few dozen
# networks; one naming a new one on every row must not grow the memo).
MEMO_SIZE: Final = 4096


@dataclass
class PlannedNetwork:
    code: str
    name: str


@dataclass
class NetworkResolver:
    """Resolves a code, an alias (case/accent-insensitive) or a name's slug.

    Names it cannot resolve may be planned for creation (by programme admins);
    the engine writes planned networks before the sites that use them.
    """

    codes: set[str] = field(default_factory=set)
    by_alias: dict[str, str] = field(default_factory=dict)
    pending: list[PlannedNetwork] = field(default_factory=list)
    _memo: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, networks: Iterable[Network]) -> NetworkResolver:
        resolver = cls()
        for n in networks:
            resolver._know(n.code, [n.name, *(n.aliases or [])])
        return resolver

    def _know(self, code: str, names: Iterable[str]) -> None:
        self.codes.add(code)
        for name in names:
            self.by_alias.setdefault(fold(name), code)

    def resolve(self, name: str) -> str | None:
        if name in self._memo:
            return self._memo[name]
        code: str | None = None
        if name in self.codes:
            code = name
        else:
            code = self.by_alias.get(fold(name))
            if code is None:
                try:
                    slug = slugify_network(name)
                except ValueError:
                    slug = ""
                code = slug if slug in self.codes else None
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[name] = code
        return code

    def plan(self, name: str) -> str:
        """Plan the creation of a network named ``name``; returns its code."""
        check_visible_name(name)
        code = slugify_network(name)
        normalize_network_code(code)
        self.pending.append(PlannedNetwork(code=code, name=name.strip()[:NAME_LENGTH]))
        self._know(code, [name])
        self._memo[name] = code
        return code

    def take_pending(self) -> list[PlannedNetwork]:
        pending, self.pending = self.pending, []
        return pending
