"""Rows behind the test send: its timeline entries, which are also its rate limit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from drumbeat.store.tables import campaigns, timeline, workspaces

TEST_SEND = "test_send"  # the timeline action


def lock_workspace(conn: Connection, workspace_id: str) -> None:
    """Serialise the workspace's test sends (count, then record) across API processes.
    SQLite needs no row lock: its writers already take the database's at BEGIN."""
    conn.execute(select(workspaces.c.id).where(workspaces.c.id == workspace_id).with_for_update())


def recent_test_sends(conn: Connection, workspace_id: str, since: datetime) -> list[datetime]:
    """When each test send of the workspace's campaigns since `since` was made, oldest first."""
    query = (select(timeline.c.at).join(campaigns, campaigns.c.id == timeline.c.campaign_id)
             .where(campaigns.c.workspace_id == workspace_id, timeline.c.action == TEST_SEND,
                    timeline.c.at >= since)
             .order_by(timeline.c.at))
    return list(conn.execute(query).scalars())


def set_entry_details(conn: Connection, entry_id: int, details: dict) -> None:
    conn.execute(update(timeline).where(timeline.c.id == entry_id).values(details=details))
