"""webhook delivery limits: a delivery is given up after its last try

Revision ID: 0020
Revises: 0018

- `webhook_deliveries.state` may be `failed`: the delivery had its
  domain.backoff.MAX_WEBHOOK_TRIES tries and none was answered 2xx; `failed_at` says when.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: Union[str, Sequence[str], None] = "0018"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("failed_at", sa.DateTime(timezone=True)))
        batch.drop_constraint(op.f("ck_webhook_deliveries_state"), type_="check")
        batch.create_check_constraint(op.f("ck_webhook_deliveries_state"), "state IN ('pending', 'delivered', 'failed')")


def downgrade() -> None:
    # A failed delivery goes back to pending with its tries spent: the old code tries it again.
    op.execute("UPDATE webhook_deliveries SET state = 'pending' WHERE state = 'failed'")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint(op.f("ck_webhook_deliveries_state"), type_="check")
        batch.create_check_constraint(op.f("ck_webhook_deliveries_state"), "state IN ('pending', 'delivered')")
        batch.drop_column("failed_at")
