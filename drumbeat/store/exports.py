"""The campaign's leads as export rows, a keyset page at a time (by id): each page is two
statements in its own short transaction, so an export of millions of leads holds neither
memory nor a long snapshot."""

from __future__ import annotations

from sqlalchemy import Connection, case, func, select

from drumbeat.store.tables import attempts, leads, replies, suppressions


def export_page(conn: Connection, workspace_id: str, campaign_id: str, *, after_id: int | None,
                limit: int) -> list[dict]:
    """Leads with id > after_id, by id: their fields, the status of their last attempt,
    when they first replied and, for opted-out leads, the reason of the entry that holds
    them (their phone's, else their email's)."""
    first_reply = (select(func.min(replies.c.at)).where(replies.c.lead_id == leads.c.id, replies.c.kind == "reply")
                   .scalar_subquery())

    def reason_of(column, address):
        return (select(suppressions.c.reason).where(suppressions.c.workspace_id == workspace_id,
                                                    suppressions.c[column] == address)
                .order_by(suppressions.c.id).limit(1).scalar_subquery())

    # Leads that replied before replies were kept (migration 0021) show when they changed state.
    replied_at = func.coalesce(first_reply, case((leads.c.state == "replied", leads.c.updated_at), else_=None))
    opted_out_reason = case((leads.c.state == "opted_out",
                             func.coalesce(reason_of("phone", leads.c.phone), reason_of("email", leads.c.email))),
                            else_=None)
    query = (select(leads.c.id, leads.c.phone, leads.c.email, leads.c.linkedin_url, leads.c.first_name,
                    leads.c.last_name, leads.c.state, leads.c.current_step, leads.c.last_error,
                    replied_at.label("replied_at"),
                    opted_out_reason.label("opted_out_reason"))
             .where(leads.c.campaign_id == campaign_id))
    if after_id is not None:
        query = query.where(leads.c.id > after_id)
    rows = [dict(r) for r in conn.execute(query.order_by(leads.c.id).limit(limit)).mappings()]
    last = last_attempts(conn, [r["id"] for r in rows])
    for row in rows:
        row["last_status"] = last.get(row["id"], {}).get("status")
    return rows


def last_attempts(conn: Connection, lead_ids: list[int]) -> dict[int, dict]:
    """The last attempt ({"status"}) of each of these leads that has one. One statement for
    the page, not a subquery per lead: with only ix_attempts_lead (lead_id) to go by,
    PostgreSQL answers "the lead's newest attempt" by walking the attempts' primary key
    backwards, through every attempt of every lead, for each lead without one."""
    if not lead_ids:
        return {}
    found: dict[int, tuple[int, dict]] = {}
    query = select(attempts.c.lead_id, attempts.c.id, attempts.c.status).where(attempts.c.lead_id.in_(lead_ids))
    for lead_id, attempt_id, status in conn.execute(query):
        if lead_id not in found or attempt_id > found[lead_id][0]:
            found[lead_id] = (attempt_id, {"status": status})
    return {lead_id: values for lead_id, (_, values) in found.items()}
