"""Builders for tests and benchmarks: workspaces, sandbox keys, campaigns, many leads fast."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from drumbeat.services import campaigns as campaign_service
from drumbeat.services.context import Context, Principal
from drumbeat.services.workspaces import init_workspace
from drumbeat.store import counts
from drumbeat.store import integrations as integration_store
from drumbeat.store.tables import attempts, campaign_counts, leads

ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def campaign_data(name: str = "Spring promo", steps: list[dict] | None = None, **overrides) -> dict:
    data = {
        "name": name,
        "steps": steps or [{"channel": "whatsapp", "template": {"name": "promo", "language": "en",
                                                               "body": "Hi {{first_name}}"}, "delay_seconds": 0}],
        "schedule": {"timezone": "UTC", "days": ALL_DAYS, "window_start": "00:00", "window_end": "24:00",
                     "randomize_within_window": False, "start_at": None},
        "limits": {"daily_cap": None, "weekly_cap": None, "rate_per_second": None, "ramp": None},
        "failure_policy": {"window": 50, "threshold": 0.5, "min_samples": 20},
        "integration_ids": None,
    }
    data.update(overrides)
    return data


def workspace(ctx: Context, name: str = "Acme") -> Principal:
    boot = init_workspace(ctx, name, f"owner@{name.lower()}.test")
    return Principal(boot["user_id"], boot["workspace_id"], "owner")


def sandbox_key(ctx: Context, principal: Principal, channel: str = "whatsapp", label: str = "key",
                **config) -> str:
    with ctx.db.begin() as conn:
        return integration_store.insert_integration(
            conn, principal.workspace_id,
            {"channel": channel, "provider": "sandbox", "label": label, "config": config},
            ctx.box.seal({}), ctx.clock())


def add_leads(ctx: Context, campaign_id: str, n: int, *, now: datetime | None = None, start: int = 0,
              batch: int = 10_000) -> None:
    """Insert n leads with distinct phones and emails directly (bypasses import validation)."""
    now = now or ctx.clock()
    with ctx.db.begin() as conn:
        for lo in range(start, start + n, batch):
            conn.execute(insert(leads), [
                {"campaign_id": campaign_id, "phone": f"+1555{i:07d}", "email": f"lead{i}@example.com",
                 "first_name": f"Lead{i}", "attributes": {}, "state": "not_contacted", "current_step": 0,
                 "next_action_at": now, "created_at": now, "updated_at": now}
                for i in range(lo, min(lo + batch, start + n))
            ])


def new_campaign(ctx: Context, principal: Principal, **kw) -> str:
    return campaign_service.create_campaign(ctx, principal, campaign_data(**kw))["id"]


def started_campaign(ctx: Context, leads: int, **key_config) -> tuple[Principal, str]:
    """A workspace with one sandbox WhatsApp key (scripted by `key_config`) and a started
    one-step campaign of `leads` leads: the set-up most engine tests share."""
    principal = workspace(ctx)
    sandbox_key(ctx, principal, **key_config)
    campaign_id = new_campaign(ctx, principal)
    add_leads(ctx, campaign_id, leads)
    campaign_service.start(ctx, principal, campaign_id)
    return principal, campaign_id


def recount(conn: Connection, campaign_id: str) -> dict[str, int]:
    """The campaign's metrics counted from the rows themselves, as tables.campaign_counts
    defines them: what the maintained counts must equal after every commit."""
    out: dict[str, int] = {}

    def add(metric: str) -> None:
        out[metric] = out.get(metric, 0) + 1

    for state, step in conn.execute(select(leads.c.state, leads.c.current_step)
                                    .where(leads.c.campaign_id == campaign_id)):
        add(f"lead:{state}")
        if state in ("not_contacted", "in_progress", "in_doubt"):
            add(f"step:{step}:{state}")
    for status, counted, code, created in conn.execute(
            select(attempts.c.status, attempts.c.counted_failure, attempts.c.error_code, attempts.c.created_at)
            .where(attempts.c.campaign_id == campaign_id)):
        add(f"attempt:{status}")
        if counted:
            add("counted_failure")
            add(f"error:{code or ''}")
        if status in ("sent", "delivered", "read"):
            add(counts.bucket(created))
    return out


def maintained(conn: Connection, campaign_id: str) -> dict[str, int]:
    """The maintained counts of a campaign, every metric (zeros left out)."""
    c = campaign_counts.c
    rows = conn.execute(select(c.metric, func.sum(c.n)).where(c.campaign_id == campaign_id).group_by(c.metric))
    return {metric: int(n) for metric, n in rows if n}
