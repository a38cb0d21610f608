"""campaigns.parked_before: leads the re-clamp has not placed yet wait behind it

Revision ID: 0006
Revises: 0005

A resume places the sends of the window's next two openings and parks the rest (they
keep their old next action time, before this instant, and no worker claims them); the
sweeper places each later opening as it comes within reach.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("parked_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("parked_before")
