"""consent_events: every STOP and START received (DESIGN.md §9), kept even when the sender
is no lead; the lead page shows the one that opted a lead out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, or_, select

from drumbeat.store.tables import consent_events


def insert_consent_event(conn: Connection, workspace_id: str, *, kind: str, channel: str | None,
                         address: str | None, lead_id: int | None, integration_id: str | None, text: str | None,
                         at: datetime) -> int:
    return conn.execute(insert(consent_events).values(
        workspace_id=workspace_id, kind=kind, channel=channel, address=address, lead_id=lead_id,
        integration_id=integration_id, text=text, at=at).returning(consent_events.c.id)).scalar_one()


def latest_opt_out(conn: Connection, workspace_id: str, *, lead_id: int | None, phone: str | None) -> dict | None:
    """The last opt-out message of this lead or sent from this number."""
    e = consent_events.c
    matches = ([e.lead_id == lead_id] if lead_id is not None else []) + ([e.address == phone] if phone else [])
    if not matches:
        return None
    row = conn.execute(select(consent_events).where(e.workspace_id == workspace_id, e.kind == "opt_out", or_(*matches))
                       .order_by(e.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None
