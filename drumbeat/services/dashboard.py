"""Read models for the dashboard pages, and signing in to them.

The API's campaign object (campaigns.campaign_views) is complete: about ten queries for a
page of them. The list page shows less, so it reads one page of campaigns, their maintained
counts in one query, their steps in another, the status counts in a third, and when the
sending and scheduled ones send next as the campaign object says it (campaigns.next_sends,
a few statements for the whole page).
"""

from __future__ import annotations

from sqlalchemy import func, select, update

from drumbeat.channels.errors import key_mark_kind
from drumbeat.domain.leads import TERMINAL_LEAD_STATES, LeadState
from drumbeat.domain.lifecycle import Status
from drumbeat.services import campaigns as campaign_service
from drumbeat.services.context import Context, Principal
from drumbeat.services.passwords import dummy_hash, hash_password, needs_rehash, verify_password
from drumbeat.store.campaigns import steps_of
from drumbeat.store.counts import lead_total_sql, metrics_of
from drumbeat.store.tables import campaigns, integrations, key_failures, users

STATUSES = [s.value for s in Status]
SORT_KEYS = ("created_at", "name", "status", "percent")


# --- signing in ---------------------------------------------------------------------------

def sign_in_with_password(ctx: Context, email: str, password: str) -> Principal | None:
    """The user whose password matches. An email may exist in several workspaces; each
    candidate's hash is checked (Argon2id is slow on purpose; there are few candidates).
    A matching hash made with older parameters (scrypt, or a weaker Argon2id profile) is
    replaced with a new Argon2id hash at once (services.passwords)."""
    with ctx.db.begin() as conn:
        rows = list(conn.execute(select(users).where(func.lower(users.c.email) == email.strip().lower())
                                 .order_by(users.c.created_at)).mappings())
    for row in rows:
        if verify_password(password, row["password_hash"]):
            if needs_rehash(row["password_hash"]):
                new_hash = hash_password(password)  # outside the transaction: it takes a while
                with ctx.db.begin() as conn:  # only if no one changed it meanwhile
                    conn.execute(update(users).where(users.c.id == row["id"],
                                                     users.c.password_hash == row["password_hash"])
                                 .values(password_hash=new_hash))
            return Principal(row["id"], row["workspace_id"], row["role"], row["email"])
    if not any(row["password_hash"] for row in rows):
        # Same cost whether or not the email exists, or has a password at all.
        verify_password(password, dummy_hash())
    return None


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
    """One page of campaign rows, the counts per status (under the same search) and the total.
    Each row: its columns, lead counts and percent, `channels` (its steps', in order, once
    each), `replies` (leads that replied) and `next_send_at`, `next_send_reason`."""
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
        query = (select(campaigns).where(*where).order_by(key.desc() if order == "desc" else key.asc(), c.id)
                 .offset((page - 1) * per_page).limit(per_page))
        rows = [dict(r) for r in conn.execute(query).mappings()]
        ids = [r["id"] for r in rows]
        metrics = metrics_of(conn, ids)
        steps = steps_of(conn, ids)
        waiting = [r for r in rows if r["status"] in (Status.SENDING, Status.SCHEDULED)]
        now = ctx.clock()
        caps = campaign_service.caps_of(conn, waiting, now)
        sends = campaign_service.next_sends(conn, waiting, now, steps, caps, metrics)
    for row in rows:
        states = {k[len("lead:"):]: n for k, n in metrics[row["id"]].items() if k.startswith("lead:")}
        row["channels"] = list(dict.fromkeys(step["channel"] for step in steps[row["id"]]))
        row["replies"] = states.get(LeadState.REPLIED, 0)
        row["next_send_at"], row["next_send_reason"] = sends.get(row["id"], (None, None))
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

def key_failures_in_current_runs(ctx: Context, principal: Principal,
                                 integration_id: str | None = None) -> dict[str, list[dict]]:
    """Integration id -> the unfinished campaigns whose current run marked it failed (of one
    integration, when given)."""
    kf, c = key_failures.c, campaigns.c
    query = (select(kf.integration_id, kf.error_code, kf.error_message, kf.at, c.id, c.name, c.status,
                    c.paused_reason)
             .join(campaigns, (c.id == kf.campaign_id) & (c.run == kf.run))
             .where(c.workspace_id == principal.workspace_id,
                    c.status.in_([Status.SENDING, Status.PAUSED, Status.SCHEDULED]))
             .order_by(kf.at))
    if integration_id is not None:
        query = query.where(kf.integration_id == integration_id)
    out: dict[str, list[dict]] = {}
    with ctx.db.begin() as conn:
        for r in conn.execute(query).mappings():
            out.setdefault(r["integration_id"], []).append(
                {"campaign_id": r["id"], "campaign_name": r["name"], "error_code": r["error_code"],
                 "error_message": r["error_message"], "at": r["at"], "status": r["status"],
                 "paused_reason": r["paused_reason"],
                 # account: a billing or account failure a passing connection test does not clear
                 "kind": key_mark_kind(r["error_code"]).value})
    return out


def key_trouble(ctx: Context, principal: Principal, integration_id: str) -> dict | None:
    """What the integration page says about a failed key: its failures in the current runs of
    unfinished campaigns, and when its secrets last changed (after the last failure: the owner
    has answered it). None when the key failed nowhere."""
    failures = key_failures_in_current_runs(ctx, principal, integration_id).get(integration_id)
    if not failures:
        return None
    with ctx.db.begin() as conn:
        updated = conn.execute(select(integrations.c.credentials_updated_at).where(
            integrations.c.id == integration_id, integrations.c.workspace_id == principal.workspace_id)).scalar()
    return {"failures": failures, "credentials_updated_at": updated,
            "answered": updated is not None and updated > max(f["at"] for f in failures)}
