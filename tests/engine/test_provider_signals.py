"""What a provider's answer says beyond the error class: an account that is gone holds the
channel as account_disconnected; a recipient who unsubscribed is opted out, not failed."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import insert, select

from drumbeat.bootstrap import build_adapters
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import integrations as integration_service
from drumbeat.store.tables import integrations, leads, suppressions
from tests.factory import add_leads, new_campaign, workspace


def run_worker(ctx, concurrency=4) -> None:
    async def main():
        async with httpx.AsyncClient(timeout=5) as client:
            await Worker(ctx, build_adapters(client), concurrency=concurrency, tick_seconds=0.05).drain()

    asyncio.run(main())


def test_a_disconnected_linkedin_account_holds_the_channel_as_account_disconnected(ctx, unipile_server):
    p = workspace(ctx)
    key = integration_service.create_integration(ctx, p, {
        "channel": "linkedin", "provider": "unipile", "label": "Jo's account", "credentials": {"api_key": "uk-1"},
        "config": {"account_id": "acc-1", "base_url": unipile_server.base_url}, "daily_cap": None})["id"]
    cid = new_campaign(ctx, p, steps=[{"channel": "linkedin", "template": {"action": "message", "body": "Hi"},
                                       "delay_seconds": 0}])
    with ctx.db.begin() as conn:
        conn.execute(insert(leads), [{"campaign_id": cid, "linkedin_url": f"https://www.linkedin.com/in/p{i}",
                                      "attributes": {}, "state": "not_contacted", "next_action_at": ctx.clock(),
                                      "created_at": ctx.clock(), "updated_at": ctx.clock()} for i in range(10)])
    svc.start(ctx, p, cid)
    unipile_server.fail_key("uk-1", code="disconnected_account", after=3)
    run_worker(ctx)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "account_disconnected"
    with ctx.db.connect() as conn:
        assert conn.execute(select(integrations.c.health).where(integrations.c.id == key)).scalar() == "disconnected"
    assert view["progress"]["completed"] == 3 and view["progress"]["not_contacted"] == 7


def test_a_recipient_who_unsubscribed_is_opted_out_and_not_counted_as_a_failure(ctx, twilio_server):
    p = workspace(ctx)
    integration_service.create_integration(ctx, p, {
        "channel": "sms", "provider": "twilio", "label": "sms", "credentials": {"account_sid": "AC1",
                                                                                 "auth_token": "tok"},
        "config": {"from": "+15005550006", "base_url": twilio_server.base_url}, "daily_cap": None})
    cid = new_campaign(ctx, p, steps=[{"channel": "sms", "template": {"body": "Hi"}, "delay_seconds": 0}])
    add_leads(ctx, cid, 5)
    twilio_server.fail_recipient("+15550000002", code=21610)
    svc.start(ctx, p, cid)
    run_worker(ctx)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed"
    assert view["progress"]["opted_out"] == 1 and view["progress"]["completed"] == 4
    assert view["breakdown"]["failed"] == 0
    with ctx.db.connect() as conn:  # and the number is suppressed for the whole workspace
        entry = conn.execute(select(suppressions.c.phone, suppressions.c.reason)).one()
    assert tuple(entry) == ("+15550000002", "provider_opt_out")
