"""Replies (API.md v1.1, Learning what works): inbound messages kept with what they said,
the workspace's inbox (newest first, filtered, marked handled) and a lead's conversation.

Which lead a reply is: the one whose message it quotes (WhatsApp's context id, an email's
message id), else the lead with that address this integration wrote to last. A message
that matches neither is kept only as an ignored provider event, never attached to a
guess. What a person wrote is never logged; pages escape it like every text.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from drumbeat.channels.inbound import ReplyEvent, normalize_profile
from drumbeat.domain.audit import UPDATED
from drumbeat.domain.channels import Channel
from drumbeat.domain.exceptions import NotFound, ValidationFailed
from drumbeat.services import audit
from drumbeat.services.context import Context, Principal
from drumbeat.services.leads import parse_cursor
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import replies as store

CHANNELS = tuple(c.value for c in Channel)
MAX_TEXT = 10_000  # characters kept of one message (an email body may be long)


def storable(value: str | None, limit: int = MAX_TEXT) -> str | None:
    """Text as both databases keep it: no NUL (PostgreSQL refuses it in text and JSON), no
    lone surrogate (not UTF-8), at most `limit` characters; None for nothing left."""
    if value is None:
        return None
    text = str(value).replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:limit]
    return text or None


def record_inbound(conn: Connection, *, workspace_id: str | None, integration_id: str, channel: str,
                   event: ReplyEvent, kind: str, now: datetime) -> dict | None:
    """Keep one inbound message in the caller's transaction. Returns the lead it belongs to
    ({"lead_id", "campaign_id", "reply_id"}; reply_id None for a webhook delivered again),
    or None when it matched no lead (then kept as an ignored provider event)."""
    quoted, inbound_id = storable(event.message_id, 200), storable(event.inbound_id, 200)
    found = store.quoted_attempt(conn, integration_id, quoted) if quoted else None
    if found is None:
        same_profile = ((lambda url: normalize_profile(url) == event.address) if event.field == "linkedin_url"
                        else None)
        lead = store.latest_lead_written_to(conn, integration_id, event.field, event.address,
                                            same_profile) if event.address else None
        if lead is not None:
            found = {**lead, **(store.last_attempt(conn, lead["lead_id"]) or {"attempt_id": None, "step": None})}
    if found is None or (workspace_id is not None and
                         store.workspace_of_campaign(conn, found["campaign_id"]) != workspace_id):
        store.insert_ignored(conn, workspace_id=workspace_id, integration_id=integration_id, channel=channel,
                             field=event.field, address=event.address, provider_message_id=inbound_id,
                             reason="unknown_lead", at=now)
        return None
    media = {storable(k, 40) or "?": storable(v, 2000) for k, v in event.media.items()} if event.media else None
    reply_id = store.insert_reply(conn, {
        "workspace_id": workspace_id or store.workspace_of_campaign(conn, found["campaign_id"]),
        "campaign_id": found["campaign_id"], "lead_id": found["lead_id"], "attempt_id": found["attempt_id"],
        "step": found["step"], "channel": channel, "integration_id": integration_id,
        "provider_message_id": inbound_id, "kind": kind, "text": storable(event.text), "media": media, "at": now,
        "handled": False})
    return {"lead_id": found["lead_id"], "campaign_id": found["campaign_id"], "reply_id": reply_id}


# --- the inbox --------------------------------------------------------------------------

def reply_view(row: dict) -> dict:
    return {"id": str(row["id"]), "campaign_id": row["campaign_id"], "lead_id": str(row["lead_id"]),
            "channel": row["channel"], "text": row["text"], "at": row["at"], "handled": bool(row["handled"]),
            "kind": row["kind"], "step": row["step"], "media": row["media"], "handled_at": row["handled_at"]}


def _parse_handled(handled: bool | str | None) -> bool | None:
    if handled is None or isinstance(handled, bool):
        return handled
    if handled.lower() in ("true", "1", "yes"):
        return True
    if handled.lower() in ("false", "0", "no"):
        return False
    raise ValidationFailed([{"field": "handled", "message": "must be true or false"}])


def list_replies(ctx: Context, principal: Principal, *, campaign_id: str | None = None, channel: str | None = None,
                 handled: bool | str | None = None, limit: int = 50, cursor: str | None = None,
                 with_names: bool = False) -> dict:
    """A page of the workspace's replies, newest first. A campaign of another workspace is
    404, as one that does not exist. `with_names` adds the lead's name and addresses and
    the campaign's name to each item (`lead`, `campaign_name`: the dashboard's)."""
    before = parse_cursor(cursor)
    if channel is not None and channel not in CHANNELS:
        raise ValidationFailed([{"field": "channel", "message": "must be one of " + ", ".join(CHANNELS)}])
    wanted = _parse_handled(handled)
    with ctx.db.begin() as conn:
        if campaign_id is not None and campaign_store.get_campaign(conn, principal.workspace_id, campaign_id) is None:
            raise NotFound("campaign not found", {"id": campaign_id})
        rows = store.list_replies(conn, principal.workspace_id, campaign_id=campaign_id, channel=channel,
                                  handled=wanted, before_id=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{**reply_view(r), **(_names(r) if with_names else {})} for r in rows]
    return {"items": items, "next_cursor": str(rows[-1]["id"]) if more else None}


def _names(row: dict) -> dict:
    return {"campaign_name": row["campaign_name"], "lead": {k: row[k] for k in (
        "first_name", "last_name", "phone", "email", "linkedin_url")} | {"state": row["lead_state"]}}


def _reply_id(reply_id: str) -> int:
    if not (reply_id.isascii() and reply_id.isdigit() and len(reply_id) <= 18):
        raise NotFound("reply not found", {"id": reply_id})
    return int(reply_id)


def get_reply(ctx: Context, principal: Principal, reply_id: str) -> dict:
    with ctx.db.begin() as conn:
        row = store.get_reply(conn, principal.workspace_id, _reply_id(reply_id))
    if row is None:
        raise NotFound("reply not found", {"id": reply_id})
    return {**reply_view(row), **_names(row)}


def mark_handled(ctx: Context, principal: Principal, reply_id: str) -> dict:
    """Mark one reply handled (operators and owners; the route checks the role). Marking it
    again changes nothing and writes no second audit entry."""
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = store.get_reply(conn, principal.workspace_id, _reply_id(reply_id))
        if row is None:
            raise NotFound("reply not found", {"id": reply_id})
        if store.mark_handled(conn, row["id"], user_id=principal.user_id, now=now):
            audit.record(conn, principal.workspace_id, principal, UPDATED, "reply", str(row["id"]), {
                "changes": {"handled": {"from": False, "to": True}}, "campaign_id": row["campaign_id"],
                "campaign_name": row["campaign_name"], "lead_id": str(row["lead_id"])}, now)
        row = store.get_reply(conn, principal.workspace_id, row["id"])
    return reply_view(row)
