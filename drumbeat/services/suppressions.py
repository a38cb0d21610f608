"""The workspace's suppression list: addresses that must never be contacted (API.md).

Adding an address opts out every unfinished lead of the workspace that has it, and
later imports enrol it as `opted_out` (services.leads)."""

from __future__ import annotations

from drumbeat.domain.audit import CREATED
from drumbeat.domain.exceptions import ValidationFailed
from drumbeat.services import audit
from drumbeat.services.context import Context, Principal
from drumbeat.services.leads import normalize_email, normalize_phone, parse_cursor
from drumbeat.store import leads as store


def suppression_view(row: dict) -> dict:
    return {"id": str(row["id"]), "phone": row["phone"], "email": row["email"], "created_at": row["created_at"]}


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
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = store.find_suppression(conn, principal.workspace_id, phone=phone, email=email)
        if row is None:
            row = store.insert_suppression(conn, principal.workspace_id, phone=phone, email=email, now=now)
            audit.record(conn, principal.workspace_id, principal, CREATED, "suppression", row["id"],
                         {"phone": phone} if phone else {"email": email}, now)
        opted_out = store.opt_out_matching(conn, principal.workspace_id, phone=phone, email=email, now=now)
    return {**suppression_view(row), "leads_opted_out": opted_out}


def list_suppressions(ctx: Context, principal: Principal, *, limit: int = 50, cursor: str | None = None) -> dict:
    after = parse_cursor(cursor)
    with ctx.db.begin() as conn:
        rows = store.list_suppressions(conn, principal.workspace_id, after_id=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [suppression_view(r) for r in rows], "next_cursor": str(rows[-1]["id"]) if more else None}
