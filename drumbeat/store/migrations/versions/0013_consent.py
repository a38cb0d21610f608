"""Consent: suppressions keep why and where (reason, source) and a keyed hash of the
address; consent_events keep every STOP and START; workspaces get their consent settings

Revision ID: 0013
Revises: 0012

The address hash needs the secret key, which a migration does not have: existing rows get
reason `manual` and a null hash here, and bootstrap fills the hashes in right after
migrating (store.leads.hash_unhashed_suppressions). A null hash never blocks a match:
lookups go by address or hash.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: Union[str, Sequence[str], None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
REASONS = "reason IN ('manual', 'stop_keyword', 'provider_opt_out', 'unsubscribe_link', 'bounce', 'import')"


def upgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.add_column(sa.Column("reason", sa.String(length=20), nullable=False, server_default="manual"))
        batch.add_column(sa.Column("source_campaign_id", sa.String(length=32)))
        batch.add_column(sa.Column("source_lead_id", BigId))
        batch.add_column(sa.Column("source_channel", sa.String(length=20)))
        batch.add_column(sa.Column("address_hash", sa.String(length=64)))
        batch.create_check_constraint(op.f("ck_suppressions_reason"), REASONS)
    op.create_index("ux_suppressions_address_hash", "suppressions", ["workspace_id", "address_hash"], unique=True)
    op.create_table(
        "consent_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=20)),
        sa.Column("address", sa.String(length=320)),
        sa.Column("lead_id", BigId),
        sa.Column("integration_id", sa.String(length=32)),
        sa.Column("text", sa.Text()),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('opt_out', 'opt_in')", name=op.f("ck_consent_events_kind")),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_consent_events_workspace_id_workspaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index("ix_consent_events_address", "consent_events", ["workspace_id", "address"])
    op.create_index("ix_consent_events_lead", "consent_events", ["lead_id"])
    # Plain ALTER TABLE (no batch copy on SQLite): every table refers to workspaces.
    op.add_column("workspaces", sa.Column("opt_out_words", Json, nullable=False, server_default=sa.text("'[]'")))
    op.add_column("workspaces", sa.Column("opt_in_words", Json, nullable=False, server_default=sa.text("'[]'")))
    op.add_column("workspaces", sa.Column("contact_cap", Json))
    op.add_column("workspaces", sa.Column("auto_replies", Json, nullable=False,
                                          server_default=sa.text("'{\"stop\": null, \"help\": null}'")))


def downgrade() -> None:
    for name in ("auto_replies", "contact_cap", "opt_in_words", "opt_out_words"):
        op.drop_column("workspaces", name)
    op.drop_index("ix_consent_events_lead", table_name="consent_events")
    op.drop_index("ix_consent_events_address", table_name="consent_events")
    op.drop_table("consent_events")
    op.drop_index("ux_suppressions_address_hash", table_name="suppressions")
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_constraint(op.f("ck_suppressions_reason"), type_="check")
        for name in ("address_hash", "source_channel", "source_lead_id", "source_campaign_id", "reason"):
            batch.drop_column(name)
