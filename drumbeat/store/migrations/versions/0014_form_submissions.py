"""form_submissions: each dashboard form's one-time nonce, recorded with its effect (issue 19);
integrations.credentials_updated_at: when a key's secrets last changed

Revision ID: 0014
Revises: 0012

A form that creates or acts carries a fresh nonce; its first post inserts the nonce in the
transaction of the effect, so a second post of the same form (a double click, a reload, a
second tab) finds it and leads to the first one's result instead of acting again. Rows are
purged a day after use. `credentials_updated_at` lets the integration page tell a key that
failed from one replaced since (null: not changed since it was added).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: Union[str, Sequence[str], None] = "0013"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "form_submissions",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("workspace_id", sa.String(32), nullable=False),
        sa.Column("result_url", sa.Text()),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_form_submissions_used_at", "form_submissions", ["used_at"])
    with op.batch_alter_table("integrations") as batch:
        batch.add_column(sa.Column("credentials_updated_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("credentials_updated_at")
    op.drop_index("ix_form_submissions_used_at", table_name="form_submissions")
    op.drop_table("form_submissions")
