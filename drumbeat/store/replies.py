"""Replies kept (table replies) and inbound messages no lead matched (ignored_inbound)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from drumbeat.domain.consent import address_hash
from drumbeat.store.secrets import address_key
from drumbeat.store.tables import attempts, campaigns, ignored_inbound, leads, provider_messages, replies


def quoted_attempt(conn: Connection, integration_id: str, message_id: str) -> dict | None:
    """The attempt of ours a reply quotes (WhatsApp's context id, an email's In-Reply-To):
    {"attempt_id", "lead_id", "campaign_id", "step"}, or None when it is not this
    integration's message."""
    row = conn.execute(
        select(attempts.c.id.label("attempt_id"), attempts.c.lead_id, attempts.c.campaign_id, attempts.c.step)
        .join(provider_messages, provider_messages.c.attempt_id == attempts.c.id)
        .where(provider_messages.c.provider_message_id == message_id, attempts.c.integration_id == integration_id)
        .limit(1)).mappings().first()
    return dict(row) if row else None


def latest_lead_written_to(conn: Connection, integration_id: str, field: str, address: str,
                           same_profile=None) -> dict | None:
    """The lead with `field` = address that this integration wrote to last, in any state:
    {"lead_id", "campaign_id"}, or None. `same_profile(url)` decides for LinkedIn URLs
    (written several ways), else addresses compare without case."""
    column = leads.c[field]
    match = (func.lower(column) == address.lower() if same_profile is None
             else func.lower(column).contains(address.lower(), autoescape=True))
    query = (select(leads.c.id, leads.c.campaign_id, column, attempts.c.id.label("attempt_id"))
             .join(attempts, attempts.c.lead_id == leads.c.id)
             .where(attempts.c.integration_id == integration_id, match)
             .order_by(attempts.c.id.desc()).limit(50))
    for row in conn.execute(query).mappings():
        if same_profile is None or same_profile(row[field]):
            return {"lead_id": row["id"], "campaign_id": row["campaign_id"]}
    return None


def last_attempt(conn: Connection, lead_id: int) -> dict | None:
    """The lead's last attempt: {"attempt_id", "step"}, or None before any."""
    row = conn.execute(select(attempts.c.id.label("attempt_id"), attempts.c.step)
                       .where(attempts.c.lead_id == lead_id).order_by(attempts.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def workspace_of_campaign(conn: Connection, campaign_id: str) -> str | None:
    return conn.execute(select(campaigns.c.workspace_id).where(campaigns.c.id == campaign_id)).scalar()


def insert_reply(conn: Connection, values: dict) -> int | None:
    """Keep one inbound message; None when the provider's id of it is already kept (a
    webhook delivered again): the unique index decides, so two racing deliveries keep one."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(replies).values(**values)
            .on_conflict_do_nothing(index_elements=["integration_id", "provider_message_id"],
                                    index_where=replies.c.provider_message_id.is_not(None))
            .returning(replies.c.id))
    return conn.execute(stmt).scalar_one_or_none()


def insert_ignored(conn: Connection, *, workspace_id: str | None, integration_id: str, channel: str, field: str,
                   address: str, provider_message_id: str | None, reason: str, at: datetime) -> None:
    hashed = None
    if field in ("phone", "email") and address:
        try:
            hashed = address_hash(address_key(conn), **{field: address})
        except (RuntimeError, UnicodeEncodeError):  # no key bound; not text an address can be
            hashed = None
    conn.execute(insert(ignored_inbound).values(
        workspace_id=workspace_id, integration_id=integration_id, channel=channel, reason=reason,
        address_hash=hashed, provider_message_id=provider_message_id, at=at))


LISTED = (replies, campaigns.c.name.label("campaign_name"), leads.c.first_name, leads.c.last_name, leads.c.phone,
          leads.c.email, leads.c.linkedin_url, leads.c.state.label("lead_state"))


def list_replies(conn: Connection, workspace_id: str, *, campaign_id: str | None, channel: str | None,
                 handled: bool | None, before_id: int | None, limit: int) -> list[dict]:
    """Newest first (by id: the order they were kept), with the lead's name and addresses
    and the campaign's name; `before_id` is the last id of the previous page."""
    query = (select(*LISTED).join(leads, leads.c.id == replies.c.lead_id)
             .join(campaigns, campaigns.c.id == replies.c.campaign_id)
             .where(replies.c.workspace_id == workspace_id))
    if campaign_id is not None:
        query = query.where(replies.c.campaign_id == campaign_id)
    if channel is not None:
        query = query.where(replies.c.channel == channel)
    if handled is not None:
        query = query.where(replies.c.handled == handled)
    if before_id is not None:
        query = query.where(replies.c.id < before_id)
    return [dict(r) for r in conn.execute(query.order_by(replies.c.id.desc()).limit(limit)).mappings()]


def get_reply(conn: Connection, workspace_id: str, reply_id: int) -> dict | None:
    row = conn.execute(select(*LISTED).join(leads, leads.c.id == replies.c.lead_id)
                       .join(campaigns, campaigns.c.id == replies.c.campaign_id)
                       .where(replies.c.id == reply_id, replies.c.workspace_id == workspace_id)).mappings().first()
    return dict(row) if row else None


def mark_handled(conn: Connection, reply_id: int, *, user_id: str | None, now: datetime) -> bool:
    """True when it changed (a reply already handled stays as it was handled)."""
    result = conn.execute(update(replies).where(replies.c.id == reply_id, replies.c.handled.is_(False))
                          .values(handled=True, handled_at=now, handled_by=user_id))
    return result.rowcount > 0


def lead_replies(conn: Connection, lead_id: int) -> list[dict]:
    rows = conn.execute(select(replies).where(replies.c.lead_id == lead_id).order_by(replies.c.id))
    return [dict(r) for r in rows.mappings()]

