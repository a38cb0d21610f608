"""replies: inbound messages kept, and the inbound messages no lead matched

Revision ID: 0021
Revises: 0018

- `replies`: every inbound message from a lead (SMS, WhatsApp text, button, interactive
  or media, email reply, LinkedIn message), with its text and, for media, the provider's
  reference; linked to the lead, its campaign and the step of the attempt it answers.
  `kind` says what consent made of it (`reply`, `opt_out`, `opt_in`); `handled` is the
  inbox's mark. The provider's id of the inbound message is unique per integration, so a
  webhook delivered twice keeps one row.
- `ignored_inbound`: an inbound message that matched no lead the integration wrote to,
  kept as a provider event only (no text, the sender as a keyed hash): never attached to
  a guessed lead.
- `ix_leads_campaign_id`: a campaign's leads in id order, so the leads export (and the
  unfiltered lead list) reads each keyset page from the index instead of sorting every
  remaining lead of the campaign per page.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: Union[str, Sequence[str], None] = "0018"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("lead_id", BigId, nullable=False),
        sa.Column("attempt_id", BigId),
        sa.Column("step", sa.Integer()),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("integration_id", sa.String(length=32)),
        sa.Column("provider_message_id", sa.String(length=200)),
        sa.Column("kind", sa.String(length=10), nullable=False, server_default="reply"),
        sa.Column("text", sa.Text()),
        sa.Column("media", Json),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("handled_at", sa.DateTime(timezone=True)),
        sa.Column("handled_by", sa.String(length=32)),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], name=op.f("fk_replies_workspace_id_workspaces")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_replies_campaign_id_campaigns"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_replies_lead_id_leads"), ondelete="CASCADE"),
        sa.CheckConstraint("kind IN ('reply', 'opt_out', 'opt_in')", name=op.f("ck_replies_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
    )
    op.create_index("ix_replies_newest", "replies", ["workspace_id", "id"])
    op.create_index("ix_replies_campaign", "replies", ["campaign_id", "id"])
    op.create_index("ix_replies_lead", "replies", ["lead_id", "id"])
    op.create_index("ux_replies_provider_message", "replies", ["integration_id", "provider_message_id"], unique=True,
                    postgresql_where=sa.text("provider_message_id IS NOT NULL"),
                    sqlite_where=sa.text("provider_message_id IS NOT NULL"))
    op.create_table(
        "ignored_inbound",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32)),
        sa.Column("integration_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("address_hash", sa.String(length=64)),
        sa.Column("provider_message_id", sa.String(length=200)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ignored_inbound")),
    )
    op.create_index("ix_ignored_inbound_at", "ignored_inbound", ["at"])
    op.create_index("ix_leads_campaign_id", "leads", ["campaign_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_leads_campaign_id", table_name="leads")
    op.drop_index("ix_ignored_inbound_at", table_name="ignored_inbound")
    op.drop_table("ignored_inbound")
    op.drop_index("ux_replies_provider_message", table_name="replies")
    op.drop_index("ix_replies_lead", table_name="replies")
    op.drop_index("ix_replies_campaign", table_name="replies")
    op.drop_index("ix_replies_newest", table_name="replies")
    op.drop_table("replies")
