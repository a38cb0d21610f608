"""Queries behind delivery receipts, replies and accepted invitations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select, update

from drumbeat.domain.leads import AttemptStatus, LeadState
from drumbeat.store.tables import attempts, integrations, leads, provider_messages

# A reply or a failed receipt can still change these leads.
REPLYABLE = (LeadState.NOT_CONTACTED, LeadState.IN_PROGRESS, LeadState.IN_DOUBT, LeadState.COMPLETED)
UNFINISHED = (LeadState.NOT_CONTACTED, LeadState.IN_PROGRESS, LeadState.IN_DOUBT)


def get_integration(conn: Connection, integration_id: str):
    return conn.execute(select(integrations).where(integrations.c.id == integration_id)).mappings().first()


def attempt_by_message(conn: Connection, integration_id: str, message_id: str):
    query = (select(attempts.c.id, attempts.c.status, attempts.c.lead_id, attempts.c.campaign_id)
             .join(provider_messages, provider_messages.c.attempt_id == attempts.c.id)
             .where(provider_messages.c.provider_message_id == message_id, attempts.c.integration_id == integration_id)
             .with_for_update(of=attempts))
    return conn.execute(query).mappings().first()


def set_attempt_status(conn: Connection, attempt_id: int, status: str, now: datetime, *, error_code=None,
                       error_message=None) -> None:
    values = {"status": status, "updated_at": now}
    if status == AttemptStatus.FAILED:
        values.update(error_code=error_code, error_message=error_message, error_class="lead", counted_failure=True)
    conn.execute(update(attempts).where(attempts.c.id == attempt_id).values(**values))


def end_lead(conn: Connection, lead_ids: list[int], state: str, from_states, now: datetime,
             last_error: str | None = None) -> list[int]:
    """Move leads to a terminal state (replied, failed), releasing any lease: an outcome
    still in flight then leaves the lead alone. Returns the leads that changed."""
    if not lead_ids:
        return []
    values = {"state": state, "lease_owner": None, "lease_expires_at": None, "updated_at": now}
    if last_error is not None:
        values["last_error"] = last_error
    result = conn.execute(update(leads).where(leads.c.id.in_(lead_ids), leads.c.state.in_(from_states))
                          .values(**values).returning(leads.c.id))
    return [r[0] for r in result]


def leads_contacted_through(conn: Connection, integration_id: str, field: str, address: str,
                            states=REPLYABLE) -> list[int]:
    """Leads with `field` = address that this integration has sent to."""
    column = leads.c[field]
    match = func.lower(column) == address.lower() if field != "linkedin_url" else func.lower(column).contains(address)
    query = (select(leads.c.id, column).distinct()
             .join(attempts, attempts.c.lead_id == leads.c.id)
             .where(attempts.c.integration_id == integration_id, match, leads.c.state.in_(states)))
    return [(r[0], r[1]) for r in conn.execute(query)]


def lead_address(conn: Connection, lead_id: int) -> dict:
    """{"id", "phone", "email", "linkedin_url"} of a lead."""
    row = conn.execute(select(leads.c.id, leads.c.phone, leads.c.email, leads.c.linkedin_url)
                       .where(leads.c.id == lead_id)).mappings().one()
    return dict(row)


def latest_lead_contacted_through(conn: Connection, integration_id: str, field: str, address: str):
    """The lead with `field` = address that this integration wrote to last, in any state:
    {"id", "campaign_id"} or None."""
    query = (select(leads.c.id, leads.c.campaign_id).join(attempts, attempts.c.lead_id == leads.c.id)
             .where(attempts.c.integration_id == integration_id, func.lower(leads.c[field]) == address.lower())
             .order_by(attempts.c.id.desc()).limit(1))
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def lead_of_attempt_message(conn: Connection, message_id: str):
    return conn.execute(select(attempts.c.lead_id)
                        .join(provider_messages, provider_messages.c.attempt_id == attempts.c.id)
                        .where(provider_messages.c.provider_message_id == message_id)).scalar()
