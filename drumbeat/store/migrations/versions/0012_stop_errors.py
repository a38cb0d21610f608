"""attempts.ix_attempts_stops: the key- and campaign-level answers of a campaign's run, for
the errors the campaign view shows of its current run

Revision ID: 0012
Revises: 0011

Key-level and campaign-level answers are few in a run (a key is out of the run after its
first, a rejected template holds the channel), but the run may have sent a million
messages: without this index the campaign list read every attempt of each campaign's
run to find them. Partial, so it holds only those answers; an accepted answer leaves
error_class null, so recording it stays a HOT update (migration 0008).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PREDICATE = "error_class IN ('key', 'campaign')"


def upgrade() -> None:
    op.create_index("ix_attempts_stops", "attempts", ["campaign_id", "run", "error_class", "error_code", "id"],
                    postgresql_where=sa.text(PREDICATE), sqlite_where=sa.text(PREDICATE))


def downgrade() -> None:
    op.drop_index("ix_attempts_stops", table_name="attempts")
