"""Read models for the dashboard pages, and signing in to them.

The API's campaign object (campaigns.campaign_views) is complete: about ten queries for a
page of them, and a few more per sending campaign (when it sends next). The list page shows
less, so it reads one page of campaigns, their maintained lead counts in one query and the
status counts in another.
"""

from __future__ import annotations

from sqlalchemy import func, select

from drumbeat.domain.leads import TERMINAL_LEAD_STATES
from drumbeat.domain.lifecycle import Status
from drumbeat.services.context import Context, Principal
from drumbeat.services.passwords import verify_password
from drumbeat.store.counts import lead_states, lead_total_sql
from drumbeat.store.tables import campaigns, key_failures, users

STATUSES = [s.value for s in Status]
SORT_KEYS = ("created_at", "name", "status", "percent")


# --- signing in ---------------------------------------------------------------------------

def sign_in_with_password(ctx: Context, email: str, password: str) -> Principal | None:
    """The user whose password matches. An email may exist in several workspaces; each
    candidate's hash is checked (scrypt is slow on purpose; there are few candidates)."""
    with ctx.db.begin() as conn:
        rows = list(conn.execute(select(users).where(func.lower(users.c.email) == email.strip().lower())
                                 .order_by(users.c.created_at)).mappings())
    for row in rows:
        if verify_password(password, row["password_hash"]):
            return Principal(row["id"], row["workspace_id"], row["role"], row["email"])
    if not rows:
        verify_password(password, _DUMMY_HASH)  # same cost whether or not the email exists
    return None


_DUMMY_HASH = ("scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")


def principal_for_user(ctx: Context, user_id: str) -> Principal | None:
    """The user a session names, read on every request so a changed role counts at once."""
    with ctx.db.begin() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
    return Principal(row["id"], row["workspace_id"], row["role"], row["email"]) if row else None


def user_emails(ctx: Context, principal: Principal, user_ids: set[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    with ctx.db.begin() as conn:
        rows = conn.execute(select(users.c.id, users.c.email).where(
            users.c.workspace_id == principal.workspace_id, users.c.id.in_(user_ids)))
        return {i: e for i, e in rows}


def campaign_names(ctx: Context, principal: Principal, campaign_ids: set[str]) -> dict[str, str]:
    """id -> name of the workspace's campaigns among these (one query; others left out)."""
    if not campaign_ids:
        return {}
    with ctx.db.begin() as conn:
        rows = conn.execute(select(campaigns.c.id, campaigns.c.name).where(
            campaigns.c.workspace_id == principal.workspace_id, campaigns.c.id.in_(campaign_ids)))
        return {i: n for i, n in rows}


# --- the campaign list -----------------------------------------------------------------

def campaign_page(ctx: Context, principal: Principal, *, status: str | None = None, q: str | None = None,
                  sort: str = "created_at", order: str = "desc", page: int = 1, per_page: int = 50) -> dict:
    """One page of campaign rows, the counts per status (under the same search) and the total."""
    c = campaigns.c
    where = [c.workspace_id == principal.workspace_id]
    if q:
        where.append(func.lower(c.name).contains(q.lower(), autoescape=True))
    with ctx.db.begin() as conn:
        by_status = {s: n for s, n in conn.execute(select(c.status, func.count()).where(*where).group_by(c.status))}
        if status:
            where.append(c.status == status)
        if sort == "percent":
            done, total = lead_total_sql(c.id, TERMINAL_LEAD_STATES), lead_total_sql(c.id)
            key = func.coalesce((done * 1.0) / func.nullif(total, 0), 0)
        else:
            key = {"created_at": c.created_at, "name": c.name, "status": c.status}[sort]
        query = (select(c.id, c.name, c.status, c.paused_reason, c.paused_at, c.created_at, c.started_at)
                 .where(*where).order_by(key.desc() if order == "desc" else key.asc(), c.id)
                 .offset((page - 1) * per_page).limit(per_page))
        rows = [dict(r) for r in conn.execute(query).mappings()]
        counts = lead_states(conn, [r["id"] for r in rows])
    for row in rows:
        states = counts[row["id"]]
        total_leads = sum(states.values())
        terminal = sum(states.get(s, 0) for s in TERMINAL_LEAD_STATES)
        row["total_leads"] = total_leads
        row["canceled_leads"] = states.get("canceled", 0)  # part of the terminal share; the list says so
        row["percent"] = round(100.0 * terminal / total_leads, 2) if total_leads else 0.0
    matching = by_status.get(status, 0) if status else sum(by_status.values())
    return {"items": rows, "status_counts": {s: by_status.get(s, 0) for s in STATUSES},
            "all_count": sum(by_status.values()), "total": matching,
            "pages": max(1, -(-matching // per_page)), "page": page}


# --- integrations -----------------------------------------------------------------------

def key_failures_in_current_runs(ctx: Context, principal: Principal) -> dict[str, list[dict]]:
    """Integration id -> the unfinished campaigns whose current run marked it failed."""
    kf, c = key_failures.c, campaigns.c
    query = (select(kf.integration_id, kf.error_code, kf.error_message, kf.at, c.id, c.name)
             .join(campaigns, (c.id == kf.campaign_id) & (c.run == kf.run))
             .where(c.workspace_id == principal.workspace_id,
                    c.status.in_([Status.SENDING, Status.PAUSED, Status.SCHEDULED]))
             .order_by(kf.at))
    out: dict[str, list[dict]] = {}
    with ctx.db.begin() as conn:
        for r in conn.execute(query).mappings():
            out.setdefault(r["integration_id"], []).append(
                {"campaign_id": r["id"], "campaign_name": r["name"], "error_code": r["error_code"],
                 "error_message": r["error_message"], "at": r["at"]})
    return out
