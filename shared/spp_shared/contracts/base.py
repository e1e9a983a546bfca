"""What every service's contract is built from: strict request models and
single-line text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from spp_shared.contracts.types import check_single_line

# No control characters in single-line text: PostgreSQL refuses NUL outright,
# and a newline in a name breaks every CSV export downstream. Query text
# compared with stored columns is held to it too (NUL in a filter: a 500).
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"


class Strict(BaseModel):
    """Request models refuse unknown fields: nothing is silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class _SingleLine(StringConstraints):
    """String constraints, then :func:`check_single_line` (pydantic expands both)."""

    def __iter__(self) -> Iterator[Any]:
        yield from super().__iter__()
        yield AfterValidator(check_single_line)


def single_line(max_length: int) -> StringConstraints:
    """Stripped, non-empty, single-line text of at most ``max_length`` characters.

    The one definition of single-line text in the contracts: no control
    character (its pattern), no bidirectional control and no line or
    paragraph separator (:func:`check_single_line`, Trojan Source).
    """
    return _SingleLine(
        strip_whitespace=True, min_length=1, max_length=max_length, pattern=NO_CONTROL_CHARACTERS
    )
