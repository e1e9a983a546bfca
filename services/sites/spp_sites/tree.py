"""Rules of the structure tree (ADR 0016), as plain functions.

Structures form a tree by SP+ code: network → (région / département) → site.
A site's parent is in the site's own network, or is a node of the programme
itself (the DITP's network, above every network); and no change may make a
cycle. The API and the importer both ask :func:`parent_problem`; the
repository never links a parent that breaks the first rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from spp_shared.kit.errors import ValidationProblem

# The network of the programme's own structures (the DITP runs Services
# Publics+; docs/permissions.md: programme_admin is the DITP). Its nodes may
# be the parent of any network's structures.
PROGRAMME_NETWORK: Final = "ditp"


class InvalidParent(ValidationProblem):
    type_ = "invalid-parent"
    title = "This parent would break the structure tree"


@dataclass(frozen=True, slots=True)
class Node:
    """What the tree needs of a site: its network and its parent's SP+ code."""

    network: str
    parent: str | None


def may_parent(parent_network: str, child_network: str) -> bool:
    return parent_network in (child_network, PROGRAMME_NETWORK)


def parent_problem(
    code: str | None, node: Node, lookup: Callable[[str], Node | None]
) -> str | None:
    """Why the site holding ``code`` cannot be ``node``, or ``None``.

    ``lookup`` gives the other sites by SP+ code as they will be after the
    change (unknown codes: ``None``, a parent that may arrive later).
    """
    if node.parent is None:
        return None
    parent = lookup(node.parent)
    if parent is not None and not may_parent(parent.network, node.network):
        return (
            f"the parent {node.parent} belongs to the network '{parent.network}': a parent is "
            f"in the site's own network ('{node.network}') or the programme's "
            f"('{PROGRAMME_NETWORK}')"
        )
    if code is None:  # nothing can name a site without a code as its parent
        return None
    chain, seen = [code], set()
    step: str | None = node.parent
    while step is not None and step not in seen:
        chain.append(step)
        if step == code:
            return (
                f"this parent would make a cycle (each site, then its parent): {' → '.join(chain)}"
            )
        seen.add(step)
        above = lookup(step)
        step = above.parent if above is not None else None
    return None
