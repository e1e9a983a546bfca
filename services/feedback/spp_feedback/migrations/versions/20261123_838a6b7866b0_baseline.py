"""baseline

Revision ID: 838a6b7866b0
Revises:
Create Date: 2026-11-23 12:21:59.534265
"""

from collections.abc import Sequence

revision: str = "838a6b7866b0"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
