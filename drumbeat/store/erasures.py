"""The writes of an erasure (domain.erasure), each one statement over the workspace."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, or_, select, update

from drumbeat.domain.erasure import ERASED_LEAD_FIELDS
from drumbeat.store.leads import suppression_hash
from drumbeat.store.tables import attempts, campaigns, consent_events, leads, replies, suppressions


def leads_with(conn: Connection, workspace_id: str, *, phone: str | None, email: str | None) -> list[int]:
    match = leads.c.phone == phone if phone else leads.c.email == email
    in_workspace = leads.c.campaign_id.in_(select(campaigns.c.id).where(campaigns.c.workspace_id == workspace_id))
    return list(conn.execute(select(leads.c.id).where(in_workspace, match).order_by(leads.c.id)).scalars())


def erase_leads(conn: Connection, lead_ids: list[int], now: datetime) -> None:
    """Personal fields replaced, the providers' error texts of their attempts blanked (a
    refusal may quote the address) and what they wrote in replies forgotten; states, steps,
    codes and when they replied stay."""
    for start in range(0, len(lead_ids), 1000):
        chunk = lead_ids[start:start + 1000]
        conn.execute(update(leads).where(leads.c.id.in_(chunk)).values(**ERASED_LEAD_FIELDS, updated_at=now))
        conn.execute(update(attempts).where(attempts.c.lead_id.in_(chunk), attempts.c.error_message.is_not(None))
                     .values(error_message=None))
        conn.execute(update(replies).where(replies.c.lead_id.in_(chunk)).values(text=None, media=None))


def blank_consent_events(conn: Connection, workspace_id: str, lead_ids: list[int], *, address: str) -> int:
    """The person's STOP and START events keep what happened and when, not who or what they wrote."""
    c = consent_events.c
    result = conn.execute(update(consent_events).where(
        c.workspace_id == workspace_id, or_(c.address == address, c.lead_id.in_(lead_ids)))
        .values(address=None, text=None))
    return result.rowcount


def keep_only_hash(conn: Connection, workspace_id: str, *, phone: str | None, email: str | None) -> int:
    """The address's suppression entry forgets the address itself; its keyed hash stays."""
    s = suppressions.c
    hashed = suppression_hash(conn, phone=phone, email=email)
    result = conn.execute(update(suppressions).where(
        s.workspace_id == workspace_id, or_(s.address_hash == hashed, s.phone == phone if phone else s.email == email))
        .values(phone=None, email=None, address_hash=hashed))
    return result.rowcount
