"""in-doubt settling: provider records settle crashed sends; the in_doubt_policy

Revision ID: 0019
Revises: 0018

- `campaigns.in_doubt_policy` ('ask' | 'retry_after_silence') and
  `campaigns.in_doubt_silence_seconds` (>= 1): what the sweeper does with an in-doubt
  attempt no provider record settled (API.md v1.1).
- `attempts.lease_expires_at`: the lease the attempt was sent under, kept when it goes in
  doubt (a Twilio look-up matches a message created inside it; the silence counts from it).
- `attempts.doubt_resolution`: how an in-doubt attempt was judged — `provider_status`,
  `lookup`, `retried` (once, by the policy) or `left` (for a person).
- `integrations.last_status_at`: when the provider last delivered a status callback (at most
  a minute behind): silence on an integration with none in the last hour proves nothing.
- `provider_events`: the provider events already applied, per integration, so the same
  status or inbound message delivered twice changes nothing the second time.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: Union[str, Sequence[str], None] = "0018"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Validated by the API (422); no CHECK here, which on SQLite would rebuild the table.
    op.add_column("campaigns", sa.Column("in_doubt_policy", sa.String(length=30), nullable=False,
                                         server_default="ask"))
    op.add_column("campaigns", sa.Column("in_doubt_silence_seconds", sa.Integer(), nullable=False,
                                         server_default="900"))
    op.add_column("attempts", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    op.add_column("attempts", sa.Column("doubt_resolution", sa.String(length=20)))
    op.add_column("integrations", sa.Column("last_status_at", sa.DateTime(timezone=True)))
    op.create_table(
        "provider_events",
        sa.Column("integration_id", sa.String(length=32), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("integration_id", "event_key", name=op.f("pk_provider_events")),
    )
    op.create_index("ix_provider_events_received_at", "provider_events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_events_received_at", table_name="provider_events")
    op.drop_table("provider_events")
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("last_status_at")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("doubt_resolution")
        batch.drop_column("lease_expires_at")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("in_doubt_silence_seconds")
        batch.drop_column("in_doubt_policy")
