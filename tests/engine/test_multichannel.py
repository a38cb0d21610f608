"""Holds are per channel: a campaign keeps sending on its other channels and pauses only
when nothing else can run (DESIGN.md §4)."""

import asyncio

from sqlalchemy import func, select

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.store.tables import attempts
from tests.factory import add_leads, new_campaign, sandbox_key, workspace

EMAIL_THEN_WHATSAPP = [
    {"channel": "email", "template": {"subject": "Hi", "body": "Hi {{first_name}}"}, "delay_seconds": 0},
    {"channel": "whatsapp", "template": {"body": "Ping {{first_name}}"}, "delay_seconds": 0},
]


def sent_by_channel(ctx) -> dict[str, int]:
    with ctx.db.connect() as conn:
        return dict(conn.execute(select(attempts.c.channel, func.count()).where(attempts.c.status == "sent")
                                 .group_by(attempts.c.channel)).all())


def test_email_goes_on_while_whatsapp_is_held_and_the_campaign_pauses_when_nothing_else_can_run(clocked_ctx, clock):
    ctx = clocked_ctx
    p = workspace(ctx)
    sandbox_key(ctx, p, "email")
    for i in range(2):
        sandbox_key(ctx, p, "whatsapp", label=f"wa{i}", fail="key")
    cid = new_campaign(ctx, p, steps=EMAIL_THEN_WHATSAPP)
    add_leads(ctx, cid, 20)
    add_leads(ctx, cid, 20, start=20, now=clock.now.replace(hour=11))  # a second wave, due in an hour
    svc.start(ctx, p, cid)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=4)

    asyncio.run(worker.drain())
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "sending"  # the second wave still has email to send
    assert [(h["channel"], h["reason"]) for h in view["holds"]] == [("whatsapp", "all_keys_failed")]
    assert sent_by_channel(ctx) == {"email": 20}

    clock.advance(hours=1)
    asyncio.run(worker.drain())
    view = svc.get_campaign(ctx, p, cid)
    assert sent_by_channel(ctx) == {"email": 40}
    assert view["status"] == "paused" and view["paused_reason"] == "all_keys_failed"
    assert view["pause_details"]["channel"] == "whatsapp"
    assert view["progress"]["in_progress"] == 40 and view["progress"]["failed"] == 0
