"""The worker sends every lead through its steps exactly once, and stops when told."""

import asyncio

from sqlalchemy import func, select

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.store.tables import attempts, leads
from tests.factory import add_leads, new_campaign, sandbox_key, workspace

TWO_STEPS = [
    {"channel": "whatsapp", "template": {"body": "Hi {{first_name}}"}, "delay_seconds": 0},
    {"channel": "email", "template": {"subject": "Hello", "body": "Hi again {{first_name}}"}, "delay_seconds": 0},
]


def accepted_per_lead_step(ctx):
    with ctx.db.connect() as conn:
        return conn.execute(select(attempts.c.lead_id, attempts.c.step, func.count())
                            .where(attempts.c.status == "sent")
                            .group_by(attempts.c.lead_id, attempts.c.step)).all()


def test_a_two_step_campaign_contacts_every_lead_once_per_step_and_completes(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp")
    sandbox_key(ctx, p, "email")
    cid = new_campaign(ctx, p, steps=TWO_STEPS)
    add_leads(ctx, cid, 300)
    svc.start(ctx, p, cid)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=16).drain())
    rows = accepted_per_lead_step(ctx)
    assert len(rows) == 600 and all(n == 1 for _, _, n in rows)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed"
    assert view["progress"]["completed"] == 300 and view["progress"]["percent"] == 100.0
    assert view["breakdown"]["sent"] == 600


def test_nothing_is_claimed_while_the_campaign_is_paused_and_resume_continues(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp")
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 100)
    svc.start(ctx, p, cid)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=10)

    async def scenario():
        await worker.step()  # one batch of 10 goes out
        svc.pause(ctx, p, cid)
        for _ in range(5):
            await worker.step()
        with ctx.db.connect() as conn:
            started = conn.execute(select(func.count()).select_from(attempts)).scalar_one()
            waiting = conn.execute(select(func.count()).select_from(leads)
                                   .where(leads.c.state == "not_contacted")).scalar_one()
        assert started == 10 and waiting == 90
        svc.resume(ctx, p, cid)
        await worker.drain()

    asyncio.run(scenario())
    rows = accepted_per_lead_step(ctx)
    assert len(rows) == 100 and all(n == 1 for _, _, n in rows)
    assert svc.get_campaign(ctx, p, cid)["status"] == "completed"
