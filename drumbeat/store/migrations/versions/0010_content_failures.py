"""leads failed before any send for their message's content: an index for the samples of
the campaign's errors

Revision ID: 0010
Revises: 0009

A lead whose message cannot leave (a variable without value, an SMS over ten segments, a
WhatsApp parameter Meta refuses) ends failed with a `drumbeat:*` code and no attempt; the
campaign view shows the first few of each code. Partial, so it holds only those leads and
costs the engine's other writes nothing.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PREDICATE = "state = 'failed' AND last_error LIKE 'drumbeat:%'"


def upgrade() -> None:
    op.create_index("ix_leads_content_failures", "leads", ["campaign_id", "last_error", "id"],
                    postgresql_where=sa.text(PREDICATE), sqlite_where=sa.text(PREDICATE))


def downgrade() -> None:
    op.drop_index("ix_leads_content_failures", table_name="leads")
