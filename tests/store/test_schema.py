"""The database itself refuses a paused campaign without a reason (and the reverse)."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from drumbeat.store.tables import campaigns, workspaces

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _campaign(conn, status="draft", reason=None):
    conn.execute(insert(workspaces).values(id="w1", name="w", created_at=NOW))
    conn.execute(insert(campaigns).values(
        id="c1", workspace_id="w1", name="c", status=status, paused_reason=reason, pause_details={},
        schedule={}, limits={}, failure_policy={}, created_at=NOW))


def test_paused_without_a_reason_is_refused_by_the_database(ctx):
    with pytest.raises(IntegrityError), ctx.db.begin() as conn:
        _campaign(conn, status="paused", reason=None)


def test_a_reason_on_a_campaign_that_is_not_paused_is_refused(ctx):
    with pytest.raises(IntegrityError), ctx.db.begin() as conn:
        _campaign(conn, status="sending", reason="manual")


def test_an_unknown_pause_reason_is_refused(ctx):
    with ctx.db.begin() as conn:
        _campaign(conn)
    with pytest.raises(IntegrityError), ctx.db.begin() as conn:
        conn.execute(update(campaigns).values(status="paused", paused_reason="tired"))


def test_paused_with_a_known_reason_is_accepted(ctx):
    with ctx.db.begin() as conn:
        _campaign(conn)
        conn.execute(update(campaigns).values(status="paused", paused_reason="all_keys_failed"))
