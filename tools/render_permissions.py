"""Write docs/permissions.md from every service's actions (`make docs`)."""

from __future__ import annotations

from pathlib import Path

from spp_shared.contracts.access import ACTIONS
from spp_shared.kit.permissions import render_markdown

DOC = Path(__file__).parents[1] / "docs" / "permissions.md"

INTRO = """# Permission matrix

Rendered by `make docs` from the actions each service declares in its
contract (`SitesAction` in `shared/spp_shared/contracts/sites.py`,
`IndicatorsAction` in `contracts/indicators.py`, the gateway's
`GatewayAction` in `contracts/access.py`, and `JobsAction` in
`contracts/jobs.py` for the jobs list every service serves); edit the code,
not this table.
`tests/test_permission_matrix.py` makes one real request per cell (and one on
another network's object for scoped cells), and checks that every endpoint
declares exactly one of these actions, one of its own service's.

Who is calling is established by the gateway (bootstrap token, API key, agent
OIDC token, or nobody); the services read it from the signed assertion and
decide. A cell gives the scope of the grant:

- `any`: every object.
- `network`: objects of the caller's network (the key's or the agent mapping's
  `network`). A CAF head-office key reaches CAF sites and no others: 403.
- `site`: the caller's own sites (the `sites` list of its key or mapping), or
  every site of its network when it has a network and no site list.
- `own`: the caller's own submission (private token; feedback service).
- `·`: refused: 401 for anonymous callers, 403 for signed-in ones.

A public cell holds for everyone. An API key's `scopes`, when it has any,
narrow what its roles allow to the actions listed (403 naming the scope).
Roles: `public` is everyone; `citizen_author` holds a private token for its own
submission; `agent` works at a site (or a network); `network_manager` is a
head office; `moderator` moderates feedback; `certifier` audits label
applications; `programme_admin` is the DITP; `service` is a platform service
calling another on its own behalf.

"""

RULES = """
## Rules the services add at the object

- Sites: an agent may change only `opening_hours`, `contact` and
  `accessibility` of its own site; any other field is refused (403 naming the
  fields), never silently ignored. Moving a site to another network needs the
  grant on both networks.
- Import: rows naming a network the caller does not manage are rejected rows
  (field `network`); only a caller who may create networks (programme admin)
  creates the networks a file names.
- API keys and agent mappings: a caller cannot grant more than it holds. A
  key narrowed by scopes (even a programme admin's) cannot create or rotate a
  key, nor map an agent, reaching further than itself (403
  `grant-beyond-caller`); only unscoped admins (bootstrap token, command
  line, unscoped keys and agents) grant the programme admin role.
- Refusals are problem+json 403: every object served today (sites,
  networks) is public, so naming it leaks nothing. Objects whose existence is
  private (a citizen's own submission, with the feedback service) will answer
  404 to callers who may not see them.
"""


def render() -> str:
    return INTRO + render_markdown(ACTIONS.values()) + RULES


def main() -> None:
    DOC.write_text(render())


if __name__ == "__main__":
    main()
