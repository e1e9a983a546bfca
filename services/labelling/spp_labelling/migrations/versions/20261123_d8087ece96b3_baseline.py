"""baseline

Revision ID: d8087ece96b3
Revises:
Create Date: 2026-11-23 12:22:00.410935
"""

from collections.abc import Sequence

revision: str = "d8087ece96b3"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
