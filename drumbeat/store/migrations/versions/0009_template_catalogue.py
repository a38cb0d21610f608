"""template_catalogue: each WhatsApp integration's copy of Meta's message templates, and the
messaging limit Meta reports for the integration's number

Revision ID: 0009
Revises: 0008

A sync replaces an integration's rows whole; a template status webhook updates one row.
`provider_daily_limit` is the provider's own cap on the number's daily sends (Meta's
messaging-limit tier), kept apart from the operator's `daily_cap`: the worker holds a key
to the lower of the two.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "template_catalogue",
        sa.Column("integration_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=40)),
        sa.Column("parameter_format", sa.String(length=20)),
        sa.Column("components", Json, nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE",
                                name=op.f("fk_template_catalogue_integration_id_integrations")),
        sa.PrimaryKeyConstraint("integration_id", "name", "language", name=op.f("pk_template_catalogue")),
    )
    # Plain ADD COLUMN on both engines (no table rebuild on SQLite).
    op.add_column("integrations", sa.Column("provider_daily_limit", sa.Integer(), nullable=True))
    op.add_column("integrations", sa.Column("messaging_quality", Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("messaging_quality")
        batch.drop_column("provider_daily_limit")
    op.drop_table("template_catalogue")
