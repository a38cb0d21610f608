"""Lead rows: per-campaign queries that services and the engine share."""

from __future__ import annotations

from sqlalchemy import Connection, distinct, select

from drumbeat.domain.leads import WORKABLE_LEAD_STATES
from drumbeat.store.tables import leads


def current_steps(conn: Connection, campaign_id: str) -> set[int]:
    """The steps that the campaign's workable leads are waiting to do."""
    rows = conn.execute(select(distinct(leads.c.current_step)).where(
        leads.c.campaign_id == campaign_id, leads.c.state.in_(WORKABLE_LEAD_STATES)))
    return {r[0] for r in rows}


def copy_leads(conn: Connection, source_id: str, target_id: str, now) -> None:
    """Duplicate with leads: fresh copies, not yet contacted (opted-out stay opted out)."""
    from sqlalchemy import case, insert, literal

    cols = ["phone", "email", "linkedin_url", "first_name", "last_name", "timezone", "attributes"]
    src = select(
        literal(target_id), *[leads.c[c] for c in cols],
        case((leads.c.state == "opted_out", "opted_out"), else_="not_contacted"),
        literal(0), literal(now, type_=leads.c.next_action_at.type), literal(0), literal(0),
        literal(now, type_=leads.c.created_at.type), literal(now, type_=leads.c.updated_at.type),
    ).where(leads.c.campaign_id == source_id)
    conn.execute(insert(leads).from_select(
        ["campaign_id", *cols, "state", "current_step", "next_action_at", "retries", "attempt_no",
         "created_at", "updated_at"], src))
