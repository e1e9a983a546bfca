"""The tree rules (:mod:`spp_sites.tree`) applied to an import, one batch at a time.

A batch's rows are checked against the registry as the import has left it so
far (earlier batches are written in the same transaction) and against the
rows of the batch planned before them, so a parent may come before or after
its children and a loop closed by the last row of a file is refused. One
recursive query a batch fetches every ancestor the batch's rows can reach;
nothing is kept from one batch to the next. A dry run writes no batch, so
there it sees the loops and foreign parents within a batch and against the
registry only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from spp_shared.kit.ingest import RowError
from spp_sites import repository as repo
from spp_sites.tree import Node, parent_problem

TREE_COLUMNS: Final = ("network_code", "sp_code", "parent_sp_code")


class BatchTree:
    def __init__(self, known: dict[str, Node]) -> None:
        self.known = known
        self.planned: dict[str, Node | None] = {}  # this batch's rows; None: a code given up

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        rows: Iterable[Mapping[str, Any]],
        found: Iterable[Mapping[str, Any]],
    ) -> BatchTree:
        """The ancestors of every parent the batch's ``rows`` or ``found`` sites name."""
        seeds = {r["parent_sp_code"] for r in (*rows, *found) if r.get("parent_sp_code")}
        ancestry = await repo.ancestry(session, sorted(seeds))
        return cls({code: Node(network, parent) for code, network, parent in ancestry})

    def _lookup(self, code: str) -> Node | None:
        return self.planned[code] if code in self.planned else self.known.get(code)

    def plan(self, merged: Mapping[str, Any], existing: Mapping[str, Any] | None) -> None:
        """Take ``merged`` (the row's site as it will be) into the tree, or raise
        :class:`RowError` naming ``parent_sp_code`` when it would break it."""
        if existing is not None and all(merged[c] == existing[c] for c in TREE_COLUMNS):
            return
        code, had = merged["sp_code"], existing["sp_code"] if existing is not None else None
        node = Node(merged["network_code"], merged["parent_sp_code"])
        problem = parent_problem(
            code, node, lambda c: None if c == had and c != code else self._lookup(c)
        )
        if problem is not None:
            raise RowError("parent_sp_code", problem)
        if had is not None and had != code:
            self.planned[had] = None
        if code is not None:
            self.planned[code] = node
