"""provider_messages: the attempt of each provider message id, so that recording an
accepted answer rewrites the attempt row in place

Revision ID: 0008
Revises: 0007

Every attempt row is written twice: inserted `sending` before the call, updated with the
answer after it. The answer changed two indexed columns (status, provider_message_id), so
PostgreSQL wrote a new row version with an entry in each of the table's six indexes. Now
no index of attempts holds either column: the message id lookup moves to its own narrow
table, and the one use of (campaign_id, status) — has anybody been contacted — reads the
maintained counts. With free room in the page (fillfactor 50, as for leads: a batch
updates every row of its pages at once) the update is HOT and touches no index. The
fillfactor applies to pages written from now on. provider_messages has no foreign key:
its per-row check (a lookup and a lock of the attempt just updated) cost as much as the
HOT update saved, and attempts are never deleted (a lookup joins them anyway).

The insert checked two foreign keys per row; the one to campaigns (a lookup and a lock
of the same campaign row, a third of the insert's time) proves nothing the one to leads
does not: the lead belongs to the campaign, and deleting it deletes its attempts. It goes
on PostgreSQL; SQLite keeps it (dropping it there rebuilds the table, and with it the
count triggers, for a check that costs SQLite little).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "provider_messages",
        sa.Column("attempt_id", BigId, nullable=False),
        sa.Column("provider_message_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("attempt_id", name=op.f("pk_provider_messages")),
    )
    op.execute("INSERT INTO provider_messages (attempt_id, provider_message_id)"
               " SELECT id, provider_message_id FROM attempts WHERE provider_message_id IS NOT NULL")
    op.create_index("ix_provider_messages_provider_message_id", "provider_messages", ["provider_message_id"])
    op.drop_index("ix_attempts_provider_message", table_name="attempts")
    op.drop_index("ix_attempts_campaign_status", table_name="attempts")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE attempts SET (fillfactor = 50)")
        op.drop_constraint("fk_attempts_campaign_id_campaigns", "attempts", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key("fk_attempts_campaign_id_campaigns", "attempts", "campaigns", ["campaign_id"], ["id"],
                              ondelete="CASCADE")
        op.execute("ALTER TABLE attempts RESET (fillfactor)")
    op.create_index("ix_attempts_campaign_status", "attempts", ["campaign_id", "status"])
    op.create_index("ix_attempts_provider_message", "attempts", ["provider_message_id"])
    op.drop_index("ix_provider_messages_provider_message_id", table_name="provider_messages")
    op.drop_table("provider_messages")
