"""The campaign's leads as export rows, a keyset page at a time (by id): each page is one
statement in its own short transaction, so an export of millions of leads holds neither
memory nor a long snapshot."""

from __future__ import annotations

from sqlalchemy import Connection, case, func, select

from drumbeat.store.tables import attempts, leads, replies, suppressions


def export_page(conn: Connection, workspace_id: str, campaign_id: str, *, after_id: int | None,
                limit: int) -> list[dict]:
    """Leads with id > after_id, by id: their fields, the status of their last attempt,
    when they first replied and, for opted-out leads, the reason of the entry that holds
    them (their phone's, else their email's)."""
    last_status = (select(attempts.c.status).where(attempts.c.lead_id == leads.c.id)
                   .order_by(attempts.c.id.desc()).limit(1).scalar_subquery())
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
                    last_status.label("last_status"), replied_at.label("replied_at"),
                    opted_out_reason.label("opted_out_reason"))
             .where(leads.c.campaign_id == campaign_id))
    if after_id is not None:
        query = query.where(leads.c.id > after_id)
    return [dict(r) for r in conn.execute(query.order_by(leads.c.id).limit(limit)).mappings()]
