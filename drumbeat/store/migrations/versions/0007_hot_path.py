"""leads.ix_leads_awaiting: the invitations waiting for acceptance, found without a scan

Revision ID: 0007
Revises: 0006

Each worker tick expires the invitations not accepted in time; without an index of its
own that update scanned every due lead of the campaign (30-50 ms a tick at 100,000 leads).
The index is tiny (only leads that wait) and `awaiting` is not touched by leasing, which
stays a HOT update.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # The predicate repeats ix_leads_due's state condition: a planner without statistics
    # (a freshly imported campaign) then still prefers this much smaller index.
    waiting = sa.text("awaiting IS NOT NULL AND state IN ('not_contacted', 'in_progress')")
    op.create_index("ix_leads_awaiting", "leads", ["campaign_id", "next_action_at"],
                    postgresql_where=waiting, sqlite_where=waiting)


def downgrade() -> None:
    op.drop_index("ix_leads_awaiting", table_name="leads")
