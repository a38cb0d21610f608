"""Aggregates for operations metrics: each one indexed query, read at scrape time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from drumbeat.store import claims
from drumbeat.store.tables import campaigns, holds, leads


def campaigns_by_status(conn: Connection) -> list[tuple[str, str | None, int]]:
    """(status, paused_reason, count) over every workspace."""
    query = (select(campaigns.c.status, campaigns.c.paused_reason, func.count())
             .group_by(campaigns.c.status, campaigns.c.paused_reason))
    return [(s, r, n) for s, r, n in conn.execute(query)]


def holds_by_reason(conn: Connection) -> list[tuple[str, str, int]]:
    """(channel, reason, count) of channels held right now."""
    query = select(holds.c.channel, holds.c.reason, func.count()).group_by(holds.c.channel, holds.c.reason)
    return [(c, r, n) for c, r, n in conn.execute(query)]


def due_leads(conn: Connection, now: datetime) -> list[tuple[str, int]]:
    """(campaign id, leads due now) for sending campaigns: the engine's queue depth, what a
    claim would take (parked leads wait for the re-clamp, not for a worker)."""
    query = (select(leads.c.campaign_id, func.count())
             .join(campaigns, campaigns.c.id == leads.c.campaign_id)
             .where(campaigns.c.status == "sending", *claims.claimable(now))
             .group_by(leads.c.campaign_id))
    return [(c, n) for c, n in conn.execute(query)]
