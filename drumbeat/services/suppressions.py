"""The workspace's suppression list: addresses that must never be contacted (API.md,
DESIGN.md §9).

`suppress` is the one consent path: a manual add, a STOP reply, a provider's opt-out
answer, an unsubscribe link and a hard bounce all go through it. Adding an address opts
out every unfinished lead of the workspace that has it, and later imports enrol it as
`opted_out` (services.leads)."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from drumbeat.domain.audit import CREATED, DELETED
from drumbeat.domain.channels import ADDRESS_FIELD, Channel
from drumbeat.domain.consent import REASON_TEXTS, SuppressionReason, search_needle
from drumbeat.domain.exceptions import NotFound, ValidationFailed
from drumbeat.domain.spreadsheet import read_cell, safe_row
from drumbeat.services import audit
from drumbeat.services.context import Actor, Context, Principal
from drumbeat.services.leads import (
    BATCH_SIZE,
    DEFAULT_CHARSET,
    MAX_REJECTED_KEPT,
    csv_records,
    is_clean_text,
    normalize_email,
    normalize_phone,
    parse_cursor,
    sniff_delimiter,
    text_lines,
)
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import consent as consent_store
from drumbeat.store import leads as store

log = structlog.get_logger(__name__)
EXPORT_HEADER = ("phone", "email", "reason", "created_at")
REASONS = tuple(r.value for r in SuppressionReason)


def suppression_view(row: dict) -> dict:
    source = {"campaign_id": row.get("source_campaign_id"), "lead_id": row.get("source_lead_id"),
              "channel": row.get("source_channel")}
    source = {k: str(v) for k, v in source.items() if v is not None}
    return {"id": str(row["id"]), "phone": row["phone"], "email": row["email"],
            "reason": row.get("reason") or SuppressionReason.MANUAL.value, "source": source,
            "created_at": row["created_at"]}


_E164 = re.compile(r"\+[1-9][0-9]{5,14}")


def _normalized(phone: str | None, email: str | None) -> tuple[str | None, str | None]:
    if (phone is None) == (email is None):
        raise ValueError("give exactly one of phone or email")
    if email is not None:
        return None, normalize_email(email)
    try:
        return normalize_phone(phone), None
    except ValueError:
        # A provider's E.164 sender or a lead's stored number that today's numbering plan
        # data does not know: whoever says stop from it is suppressed all the same.
        if _E164.fullmatch(phone.strip()):
            return phone.strip(), None
        raise


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


def given_address(data: dict) -> tuple[str | None, str | None]:
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
    phone, email = given_address(data)
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


def list_suppressions(ctx: Context, principal: Principal, *, limit: int = 50, cursor: str | None = None,
                      q: str | None = None, reason: str | None = None) -> dict:
    """A keyset page of the list, oldest first; `q`: part of a phone or email, written as
    one would type it (search_needle); `reason`: one SuppressionReason."""
    after = parse_cursor(cursor)
    if reason is not None and reason not in REASONS:
        raise ValidationFailed([{"field": "reason", "message": f"must be one of {', '.join(REASONS)}"}])
    needle = search_needle(q) if q else None
    with ctx.db.begin() as conn:
        rows = store.list_suppressions(conn, principal.workspace_id, after_id=after, limit=limit + 1,
                                       needle=needle, reason=reason)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [suppression_view(r) for r in rows], "next_cursor": str(rows[-1]["id"]) if more else None}


def get_suppression(ctx: Context, principal: Principal, suppression_id: str) -> dict | None:
    """One entry of the workspace (None for no such entry here)."""
    if not (suppression_id.isascii() and suppression_id.isdigit() and len(suppression_id) <= 18):
        return None
    with ctx.db.begin() as conn:
        row = store.get_suppression(conn, principal.workspace_id, int(suppression_id))
    return suppression_view(row) if row else None


def delete_suppression(ctx: Context, principal: Principal, suppression_id: str) -> None:
    """An owner takes an address off the list (404 for no such entry in this workspace).
    Its leads stay opted out: deleting consent's record does not re-enrol anyone."""
    if not (suppression_id.isascii() and suppression_id.isdigit() and len(suppression_id) <= 18):
        raise NotFound("suppression not found", {"id": suppression_id})
    with ctx.db.begin() as conn:
        found = store.delete_suppression(conn, principal.workspace_id, int(suppression_id))
        if found is None:
            raise NotFound("suppression not found", {"id": suppression_id})
        view = suppression_view(found)
        audit.record(conn, principal.workspace_id, principal, DELETED, "suppression", view["id"],
                     {k: view[k] for k in ("phone", "email", "reason", "source") if view[k]}, ctx.clock())


def opted_out_by_reason(ctx: Context, principal: Principal, campaign_id: str) -> dict[str | None, int]:
    """A campaign's opted-out leads by the reason of the entry that holds them (None: the
    entry was deleted since), in one query; 404 for another workspace's campaign."""
    with ctx.db.begin() as conn:
        if campaign_store.get_campaign(conn, principal.workspace_id, campaign_id) is None:
            raise NotFound("campaign not found", {"id": campaign_id})
        return store.opted_out_by_reason(conn, principal.workspace_id, campaign_id)


# --- CSV import and export ----------------------------------------------------------------

def _entries_of_row(columns: dict[str, int], cells: list[str]) -> tuple[list[dict], list[dict]]:
    """One CSV row -> (its entries {"phone"|"email", "reason"}, []) or ([], its errors)."""
    def cell(name: str) -> str:
        index = columns.get(name)
        return read_cell(cells[index].strip()) if index is not None and index < len(cells) else ""

    errors: list[dict] = []
    entries: list[dict] = []
    reason = cell("reason").lower() or SuppressionReason.IMPORT.value
    if not is_clean_text(reason) or reason not in REASONS:
        errors.append({"field": "reason", "message": f"must be one of {', '.join(REASONS)}"})
    for name, normalize in (("phone", normalize_phone), ("email", normalize_email)):
        value = cell(name)
        if not value:
            continue
        if not is_clean_text(value):
            errors.append({"field": name, "message": "contains a NUL character or invalid UTF-8"})
            continue
        try:
            entries.append({name: normalize(value), "reason": reason})
        except ValueError as exc:
            errors.append({"field": name, "message": str(exc)})
    if not entries and not errors:
        errors.append({"field": "row", "message": "give a phone or an email"})
    return ([], errors) if errors else (entries, [])


class _Batch:
    """Valid entries, written BATCH_SIZE at a time, each batch its own transaction."""

    def __init__(self, ctx: Context, workspace_id: str) -> None:
        self.ctx, self.workspace_id = ctx, workspace_id
        self.entries: dict[tuple[str, str], dict] = {}  # (kind, address) -> entry: one per address
        self.seen = 0
        self.accepted = self.opted_out = 0

    def add(self, entry: dict) -> None:
        kind = "phone" if "phone" in entry else "email"
        self.seen += 1
        self.entries.setdefault((kind, entry[kind]), entry)
        if len(self.entries) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        if not self.entries:
            return
        entries = list(self.entries.values())
        for attempt in range(3):
            try:
                with self.ctx.db.begin() as conn:
                    accepted = store.insert_suppressions(conn, self.workspace_id, entries, self.ctx.clock())
                    # As suppress() does: every unfinished lead with an address on the list opts
                    # out, for an address that was already there too.
                    opted_out = store.opt_out_addresses(
                        conn, self.workspace_id, phones=[e["phone"] for e in entries if "phone" in e],
                        emails=[e["email"] for e in entries if "email" in e], now=self.ctx.clock())
                break
            except DBAPIError as exc:
                # Two imports of overlapping addresses (in file order) can deadlock on the
                # unique index; PostgreSQL rolls one back, and the batch is safe to redo.
                if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == 2:
                    raise
        self.accepted += accepted
        self.opted_out += opted_out
        self.entries = {}


def import_csv(ctx: Context, principal: Principal, chunks: Iterable[bytes], charset: str = DEFAULT_CHARSET) -> dict:
    """A CSV with a `phone` and/or an `email` column and an optional `reason` (else
    `import`), read as it arrives (the lead import's decoding and delimiter sniffing); other
    columns (`created_at` of an export) are ignored. A row may give a phone and an email:
    both go on the list. A bad row is rejected with its row number (data rows count from 1)
    and the rest imported. `accepted` counts addresses added; `duplicates` those already
    on the list or given again in the file."""
    try:
        codecs.lookup(charset)
    except LookupError:
        raise ValidationFailed([{"field": "content-type", "message": f"unknown charset {charset!r}"}]) from None
    lines = text_lines(chunks, charset)
    header_line = next(lines, "")
    rows = csv_records(chain([header_line], lines), sniff_delimiter(header_line))
    first = next(rows, None)
    if first is None or first[2] or not first[1]:
        raise ValidationFailed([{"field": "body", "message": first[2] if first and first[2] else
                                 "the CSV needs a header row on its first line"}])
    columns: dict[str, int] = {}
    for index, name in enumerate(first[1]):
        columns.setdefault(name.strip().lower(), index)
    if "phone" not in columns and "email" not in columns:
        raise ValidationFailed([{"field": "header", "message": "the CSV needs a phone or an email column"}])
    batch = _Batch(ctx, principal.workspace_id)
    rejected: list[dict] = []
    rejected_total = 0
    for number, cells, problem in rows:
        if not cells and problem is None:
            continue  # a blank line
        entries, errors = ([], [{"field": "row", "message": problem}]) if problem else _entries_of_row(columns, cells)
        if errors:
            rejected_total += 1
            if len(rejected) < MAX_REJECTED_KEPT:
                rejected.append({"row": number, "errors": errors})
            continue
        for entry in entries:
            batch.add(entry)
    batch.flush()
    if batch.accepted:  # one entry for the import, not one per address
        with ctx.db.begin() as conn:
            audit.record(conn, principal.workspace_id, principal, CREATED, "suppression", "import",
                         {"reason": "import", "accepted": batch.accepted, "rejected": rejected_total}, ctx.clock())
    return {"accepted": batch.accepted, "duplicates": batch.seen - batch.accepted, "rejected": rejected,
            "rejected_total": rejected_total, "leads_opted_out": batch.opted_out}


def export_csv(ctx: Context, principal: Principal) -> Iterator[str]:
    """The whole list as CSV text in pieces (`phone`, `email`, `reason`, `created_at`),
    read a page at a time by id; cells made safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(safe_row(EXPORT_HEADER))
    after = None
    while True:
        with ctx.db.begin() as conn:
            page = store.list_suppressions(conn, principal.workspace_id, after_id=after, limit=BATCH_SIZE)
        for row in page:
            created = row["created_at"].isoformat().replace("+00:00", "Z")
            writer.writerow(safe_row([row["phone"], row["email"], row["reason"], created]))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(page) < BATCH_SIZE:
            return
        after = page[-1]["id"]
