"""Crash recovery reads: the attempts a dead worker left in `sending`, with what decides
whether they may be sent again (the provider and config of their integration, the
campaign's status), and taking their leads over for a re-send (DESIGN.md §3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from drumbeat.store.claims import LEAD_FIELDS
from drumbeat.store.tables import attempts, campaigns, integrations, leads


def unfinished_attempts(conn: Connection, attempt_ids: list[int]) -> list[dict]:
    if not attempt_ids:
        return []
    rows = conn.execute(
        select(attempts.c.id, attempts.c.lead_id, attempts.c.campaign_id, attempts.c.step,
               attempts.c.integration_id, attempts.c.idempotency_key, integrations.c.provider,
               integrations.c.config, integrations.c.health, integrations.c.enabled,
               campaigns.c.status.label("campaign_status"))
        .join(integrations, integrations.c.id == attempts.c.integration_id)
        .join(campaigns, campaigns.c.id == attempts.c.campaign_id)
        .where(attempts.c.id.in_(attempt_ids), attempts.c.status == "sending")).mappings()
    return [dict(r) for r in rows]


def take_over(conn: Connection, lead_ids: list[int], owner: str, expires_at: datetime, now: datetime) -> list[dict]:
    """Lease the leads to `owner` (their old lease expired) and return them."""
    if not lead_ids:
        return []
    rows = conn.execute(update(leads).where(leads.c.id.in_(lead_ids))
                        .values(lease_owner=owner, lease_expires_at=expires_at, updated_at=now)
                        .returning(*LEAD_FIELDS)).mappings()
    return [dict(r) for r in rows]
