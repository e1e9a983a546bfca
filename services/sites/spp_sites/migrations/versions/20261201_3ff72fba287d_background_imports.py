"""background imports (async=true): the imports and their stored uploads

Revision ID: 3ff72fba287d
Revises: 17ef8a5916c3
Create Date: 2026-12-01 08:56:42.352907
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3ff72fba287d"
down_revision: str | None = "17ef8a5916c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_imports",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("container", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_imports")),
    )
    op.create_table(
        "ingest_uploads",
        sa.Column("import_id", sa.String(length=26), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["ingest_imports.id"],
            name=op.f("fk_ingest_uploads_import_id_ingest_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "seq", name=op.f("pk_ingest_uploads")),
    )


def downgrade() -> None:
    op.drop_table("ingest_uploads")
    op.drop_table("ingest_imports")
