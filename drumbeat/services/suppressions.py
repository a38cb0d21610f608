"""The workspace's suppression list: addresses that must never be contacted (API.md,
DESIGN.md §9).

`suppress` is the one consent path: a manual add, a STOP reply, a provider's opt-out
answer, an unsubscribe link and a hard bounce all go through it. Adding an address opts
out every unfinished lead of the workspace that has it, and later imports enrol it as
`opted_out` (services.leads)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from drumbeat.domain.audit import CREATED, DELETED
from drumbeat.domain.channels import ADDRESS_FIELD, Channel
from drumbeat.domain.consent import REASON_TEXTS, SuppressionReason
from drumbeat.domain.exceptions import ValidationFailed
from drumbeat.services import audit
from drumbeat.services.context import Actor, Context, Principal
from drumbeat.services.leads import normalize_email, normalize_phone, parse_cursor
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import consent as consent_store
from drumbeat.store import leads as store


def suppression_view(row: dict) -> dict:
    source = {"campaign_id": row.get("source_campaign_id"), "lead_id": row.get("source_lead_id"),
              "channel": row.get("source_channel")}
    source = {k: str(v) for k, v in source.items() if v is not None}
    return {"id": str(row["id"]), "phone": row["phone"], "email": row["email"],
            "reason": row.get("reason") or SuppressionReason.MANUAL.value, "source": source,
            "created_at": row["created_at"]}


def _normalized(phone: str | None, email: str | None) -> tuple[str | None, str | None]:
    if (phone is None) == (email is None):
        raise ValueError("give exactly one of phone or email")
    return (normalize_phone(phone), None) if phone is not None else (None, normalize_email(email))


def suppress(conn: Connection, workspace_id: str, *, phone: str | None = None, email: str | None = None,
             reason: str, source: dict | None = None, now: datetime,
             actor: Principal | Actor | None = None) -> tuple[dict, int]:
    """Put one address (phone or email; normalized here) on the workspace's list, inside the
    caller's transaction, and opt out every unfinished lead of the workspace that has it.
    Idempotent: an existing entry is kept as it is (its first reason and source stand).
    `source`: {"campaign_id"?, "lead_id"?, "channel"?}. Returns (entry, leads opted out);
    the lead state counts follow through the leads table's triggers (store.counts). A new
    entry is in the audit log, made by `actor` (default: the system, named by the reason)."""
    reason = SuppressionReason(reason).value
    phone, email = _normalized(phone, email)
    row = store.find_suppression(conn, workspace_id, phone=phone, email=email)
    if row is None:
        row = store.insert_suppression(conn, workspace_id, phone=phone, email=email, now=now, reason=reason,
                                       source=source)
        if row is None:  # a concurrent transaction inserted it first
            row = store.find_suppression(conn, workspace_id, phone=phone, email=email)
        else:
            audit.record(conn, workspace_id, actor or Actor.system(reason), CREATED, "suppression", row["id"],
                         {**({"phone": phone} if phone else {"email": email}), "reason": reason,
                          **({"source": source} if source else {})}, now)
    opted_out = store.opt_out_matching(conn, workspace_id, phone=phone, email=email, now=now)
    return row, opted_out


def suppress_refused_address(conn: Connection, *, workspace_id: str, campaign_id: str, lead: dict, channel: str,
                             opt_out: bool, hard_bounce: bool, now: datetime) -> bool:
    """A provider's answer to a send that says the person opted out (`twilio:21610`,
    `whatsapp:131050`) or the address does not exist (an SMTP 5.1.x hard bounce): the
    address is suppressed workspace-wide, not only that lead failed or opted out."""
    reason = SuppressionReason.PROVIDER_OPT_OUT if opt_out else SuppressionReason.BOUNCE if hard_bounce else None
    field = ADDRESS_FIELD.get(Channel(channel))
    address = lead.get(field) if field in ("phone", "email") else None
    if reason is None or not address:
        return False
    source = {"campaign_id": campaign_id, "lead_id": lead["id"], "channel": channel}
    try:
        suppress(conn, workspace_id, **{field: address}, reason=reason, source=source, now=now)
    except ValueError:
        return False  # an address no lead can have any more (the rules changed since import)
    return True


def lift_stop_keyword(conn: Connection, workspace_id: str, *, phone: str | None = None, email: str | None = None,
                      now: datetime) -> bool:
    """The person opted back in (START): their `stop_keyword` entry leaves the list. An entry
    with any other reason (manual, bounce, provider opt-out, ...) stays: only who made it
    may lift it. Returns whether an entry was removed. Leads stay as they are."""
    phone, email = _normalized(phone, email)
    row = store.find_suppression(conn, workspace_id, phone=phone, email=email)
    removed = store.delete_suppressions(conn, workspace_id, phone=phone, email=email,
                                        reasons=[SuppressionReason.STOP_KEYWORD.value]) > 0
    if removed and row is not None:  # the list forgets it; the audit log keeps it (API.md v1.1)
        audit.record(conn, workspace_id, Actor.system("opt_in"), DELETED, "suppression", row["id"],
                     {**({"phone": phone} if phone else {"email": email}), "reason": row.get("reason"),
                      "opted_in": True}, now)
    return removed


def _address(data: dict) -> tuple[str | None, str | None]:
    given = {k: v for k, v in data.items() if k in ("phone", "email") and v not in (None, "")}
    unknown = [k for k in data if k not in ("phone", "email")]
    if unknown:
        raise ValidationFailed([{"field": k, "message": "unknown field"} for k in unknown])
    if len(given) != 1:
        raise ValidationFailed([{"field": "phone", "message": "give exactly one of phone or email"}])
    (name, value), = given.items()
    if not isinstance(value, str):
        raise ValidationFailed([{"field": name, "message": "must be a string"}])
    try:
        normalized = normalize_phone(value) if name == "phone" else normalize_email(value)
    except ValueError as exc:
        raise ValidationFailed([{"field": name, "message": str(exc)}]) from None
    return (normalized, None) if name == "phone" else (None, normalized)


def add_suppression(ctx: Context, principal: Principal, data: dict) -> dict:
    """Idempotent: suppressing an address twice keeps one entry (and opts out again)."""
    phone, email = _address(data)
    with ctx.db.begin() as conn:
        row, opted_out = suppress(conn, principal.workspace_id, phone=phone, email=email,
                                  reason=SuppressionReason.MANUAL, now=ctx.clock(), actor=principal)
    return {**suppression_view(row), "leads_opted_out": opted_out}


def opt_out_story(ctx: Context, principal: Principal, lead: dict) -> dict:
    """Why a lead is (or would be) opted out, for its page: every suppression entry of its
    phone or email with the reason in words, where it came from, and, for a STOP, the
    message the person sent. `entries` is empty when its addresses are not suppressed
    (an opted-out lead whose STOP a START lifted)."""
    with ctx.db.begin() as conn:
        rows = store.suppressions_of(conn, principal.workspace_id, phone=lead.get("phone"), email=lead.get("email"))
        entries = []
        for row in rows:
            campaign = (campaign_store.get_campaign_by_id(conn, row["source_campaign_id"])
                        if row["source_campaign_id"] else None)
            stop = (consent_store.latest_opt_out(conn, principal.workspace_id, lead_id=row["source_lead_id"],
                                                 phone=row["phone"])
                    if row["reason"] == SuppressionReason.STOP_KEYWORD else None)
            entries.append({**suppression_view(row), "reason_text": REASON_TEXTS[SuppressionReason(row["reason"])],
                            "campaign_name": campaign["name"] if campaign and
                            campaign["workspace_id"] == principal.workspace_id else None,
                            "message": stop["text"] if stop else None})
    return {"entries": entries, "lifted": lead.get("state") == "opted_out" and not entries}


def list_suppressions(ctx: Context, principal: Principal, *, limit: int = 50, cursor: str | None = None) -> dict:
    after = parse_cursor(cursor)
    with ctx.db.begin() as conn:
        rows = store.list_suppressions(conn, principal.workspace_id, after_id=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [suppression_view(r) for r in rows], "next_cursor": str(rows[-1]["id"]) if more else None}
