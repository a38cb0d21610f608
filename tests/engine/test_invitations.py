"""A LinkedIn message step after an invitation waits for acceptance, up to wait_seconds."""

import asyncio

from sqlalchemy import func, select

from drumbeat.channels.inbound import AcceptedEvent
from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services.receipts import CallbackIntegration, apply_events
from drumbeat.store import stats
from drumbeat.store.tables import attempts, leads
from tests.factory import new_campaign, sandbox_key, workspace

STEPS = [
    {"channel": "linkedin", "template": {"action": "invite", "body": "Hi {{first_name|there}}"}, "delay_seconds": 0},
    {"channel": "linkedin", "template": {"action": "message", "body": "Thanks!", "wait_seconds": 3600},
     "delay_seconds": 0},
]


def setup(ctx, clock):
    p = workspace(ctx)
    key = sandbox_key(ctx, p, "linkedin")
    cid = new_campaign(ctx, p, steps=STEPS)
    with ctx.db.begin() as conn:
        for i in range(2):
            conn.execute(leads.insert().values(campaign_id=cid, linkedin_url=f"https://www.linkedin.com/in/p{i}",
                                               attributes={}, state="not_contacted", next_action_at=clock(),
                                               created_at=clock(), updated_at=clock()))
    svc.start(ctx, p, cid)
    return ctx, clock, p, key, cid


def sends_per_step(ctx) -> dict[int, int]:
    with ctx.db.connect() as conn:
        return dict(conn.execute(select(attempts.c.step, func.count()).where(attempts.c.status == "sent")
                                 .group_by(attempts.c.step)).all())


def test_the_message_waits_until_the_invitation_is_accepted(clocked_ctx, clock):
    ctx, clock, p, key, cid = setup(clocked_ctx, clock)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()})
    asyncio.run(worker.drain())
    assert sends_per_step(ctx) == {0: 2}  # both invited; nobody messaged yet
    clock.advance(minutes=30)
    asyncio.run(worker.drain())
    assert sends_per_step(ctx) == {0: 2}
    changed = apply_events(ctx, CallbackIntegration(key, "sandbox", "linkedin", {}),
                           [AcceptedEvent("linkedin.com/in/p0")])
    assert changed["changed"] == 1
    asyncio.run(worker.drain())
    assert sends_per_step(ctx) == {0: 2, 1: 1}  # only the accepted one gets the message
    progress = svc.get_campaign(ctx, p, cid)["progress"]
    assert progress["completed"] == 1 and progress["in_progress"] == 1


def test_an_invitation_not_accepted_in_time_ends_the_sequence_without_a_message(clocked_ctx, clock):
    ctx, clock, p, key, cid = setup(clocked_ctx, clock)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, tick_seconds=0)
    asyncio.run(worker.drain())
    clock.advance(seconds=3601)
    with ctx.db.connect() as conn:  # waiting for the invitee, not for a worker: no queue
        assert stats.due_leads(conn, clock()) == []
    asyncio.run(worker.drain())
    assert sends_per_step(ctx) == {0: 2}
    view = svc.get_campaign(ctx, p, cid)
    assert view["progress"]["failed"] == 2 and view["status"] == "completed"
    with ctx.db.connect() as conn:
        assert set(conn.execute(select(leads.c.last_error)).scalars()) == {"linkedin:invitation_not_accepted"}
