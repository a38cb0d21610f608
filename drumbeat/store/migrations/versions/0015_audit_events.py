"""audit_events: who created, changed or deleted what in a workspace, and every campaign action

Revision ID: 0015
Revises: 0012

Written in the same transaction as the change it records (services.audit.record,
store.campaigns.add_timeline), so a change rolled back leaves no entry. Read newest first
per workspace (GET /api/v1/audit), optionally for one object type or one user.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: Union[str, Sequence[str], None] = "0014"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=10), nullable=False),
        sa.Column("actor_id", sa.String(length=64)),
        sa.Column("user_id", sa.String(length=32)),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("object_type", sa.String(length=20), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("details", Json, nullable=False),
        sa.CheckConstraint("actor_type IN ('user', 'token', 'system')", name=op.f("ck_audit_events_actor_type")),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_audit_events_workspace_id_workspaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_newest", "audit_events", ["workspace_id", "id"])
    op.create_index("ix_audit_events_object_type", "audit_events", ["workspace_id", "object_type", "id"])
    op.create_index("ix_audit_events_user", "audit_events", ["workspace_id", "user_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_user", table_name="audit_events")
    op.drop_index("ix_audit_events_object_type", table_name="audit_events")
    op.drop_index("ix_audit_events_newest", table_name="audit_events")
    op.drop_table("audit_events")
