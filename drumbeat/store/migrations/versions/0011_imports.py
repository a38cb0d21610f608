"""imports and import_rejections: every rejected row of a CSV lead import, downloadable

Revision ID: 0011
Revises: 0010

The import answer lists the first rejected rows only; GET /imports/{id}/rejected.csv
streams all of them from here (the cells as read and the reasons). Rows are kept 7 days
(the sweeper deletes older imports: services.leads.prune_imports).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("columns", Json, nullable=False),
        sa.Column("counts", Json),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_imports_workspace_id_workspaces")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE",
                                name=op.f("fk_imports_campaign_id_campaigns")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_index(op.f("ix_imports_created_at"), "imports", ["created_at"])
    op.create_table(
        "import_rejections",
        sa.Column("import_id", sa.String(length=32), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("cells", Json, nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["imports.id"], ondelete="CASCADE",
                                name=op.f("fk_import_rejections_import_id_imports")),
        sa.PrimaryKeyConstraint("import_id", "row", name=op.f("pk_import_rejections")),
    )


def downgrade() -> None:
    op.drop_table("import_rejections")
    op.drop_index(op.f("ix_imports_created_at"), table_name="imports")
    op.drop_table("imports")
