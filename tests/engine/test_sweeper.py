"""The sweeper runs in one process at a time; crash recovery re-sends with the same
idempotency key where the provider deduplicates, else the lead is in doubt (DESIGN.md §3, §5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.clock import utcnow
from drumbeat.engine.sweeper import Sweeper
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.store.locks import exclusive
from drumbeat.store.tables import attempts, webhook_deliveries
from tests.factory import add_leads, new_campaign, sandbox_key, workspace


def test_only_one_process_holds_the_sweeper_lock_at_a_time(ctx):
    ttl = timedelta(seconds=30)
    with exclusive(ctx.db, "sweeper", "a", utcnow(), ttl) as first:
        with exclusive(ctx.db, "sweeper", "b", utcnow(), ttl) as second:
            assert first is True and second is False
            assert Sweeper(ctx, owner="c").sweep_once() is None  # another process is sweeping
    with exclusive(ctx.db, "sweeper", "b", utcnow(), ttl) as again:
        assert again is True


def crash_mid_send(ctx, adapter) -> tuple[Worker, list]:
    """A worker that claimed and started its attempts, then died before any answer."""
    dead = Worker(ctx, {"sandbox": adapter}, concurrency=5, lease_seconds=0.001)
    return dead, dead.claim()


def test_an_attempt_cut_off_by_a_crash_is_resent_with_the_same_key_where_the_provider_dedupes(ctx):
    from drumbeat.services import notifications

    p = workspace(ctx)
    notifications.create_webhook(ctx, p, "http://127.0.0.1:9/h", "secret-123", ["lead.in_doubt"])
    sandbox_key(ctx, p, "whatsapp", dedupe=True)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 5)
    svc.start(ctx, p, cid)
    _, jobs = crash_mid_send(ctx, SandboxAdapter())
    keys = sorted(j.claimed.idempotency_key for j in jobs)
    assert len(keys) == 5
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=5, tick_seconds=0.01).drain())
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed" and view["progress"]["in_doubt"] == 0
    with ctx.db.connect() as conn:
        rows = conn.execute(select(attempts.c.idempotency_key, attempts.c.status)).all()
        assert conn.execute(select(webhook_deliveries.c.id)).first() is None
    assert sorted(k for k, _ in rows) == keys and {s for _, s in rows} == {"sent"}


def test_without_dedupe_a_cut_off_attempt_leaves_its_lead_in_doubt_and_the_campaign_open(ctx):
    from drumbeat.services import notifications

    p = workspace(ctx)
    notifications.create_webhook(ctx, p, "http://127.0.0.1:9/h", "secret-123", ["lead.in_doubt"])
    sandbox_key(ctx, p, "whatsapp")
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 8)
    svc.start(ctx, p, cid)
    _, jobs = crash_mid_send(ctx, SandboxAdapter())
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=5, tick_seconds=0.01).drain())
    view = svc.get_campaign(ctx, p, cid)
    assert view["progress"]["in_doubt"] == 5 and view["progress"]["completed"] == 3
    assert view["status"] == "sending"  # never completes while leads are in doubt
    with ctx.db.connect() as conn:
        events = conn.execute(select(webhook_deliveries.c.event, webhook_deliveries.c.body)).all()
    assert [e for e, _ in events] == ["lead.in_doubt"]
    assert '"leads":5' in events[0][1]
