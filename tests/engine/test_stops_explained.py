"""Every stop explained in the API (issue 19): the keys behind an all_keys_failed stop in
pause_details.keys and the holds' details, the key- and campaign-level answers of the
current run in errors[] (with their scope), a plain sentence with its fix for each pause
and hold, and next_send_reason "rate" while rate_per_second paces the sends."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
from sqlalchemy import update

from drumbeat.bootstrap import build_adapters
from drumbeat.channels.sandbox import MESSAGES, SandboxAdapter
from drumbeat.domain.errors import ErrorClass
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.store.tables import integrations
from tests.factory import add_leads, new_campaign, sandbox_key, workspace


def drain(ctx) -> None:
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=4, tick_seconds=3600).drain())


def scoped(view: dict, scope: str) -> list[dict]:
    return [e for e in view["errors"] if e["scope"] == scope]


def test_a_campaign_whose_every_key_fails_names_each_key_its_code_and_message_and_the_fix(ctx):
    p = workspace(ctx)
    keys = {sandbox_key(ctx, p, label=label, fail="key"): label for label in ("Acme WA", "Backup WA")}
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 20)
    svc.start(ctx, p, cid)
    drain(ctx)

    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "all_keys_failed"
    named = {k["integration_id"]: k for k in view["pause_details"]["keys"]}
    assert set(named) == set(keys)
    for key_id, key in named.items():
        assert key["label"] == keys[key_id]
        assert key["code"] == "sandbox:key" and key["message"] == MESSAGES[ErrorClass.KEY]
        assert datetime.fromisoformat(key["at"]) <= ctx.clock()
    [hold] = view["holds"]
    assert hold["reason"] == "all_keys_failed" and hold["details"]["keys"] == view["pause_details"]["keys"]

    explanation = view["pause_explanation"]
    assert explanation["text"].startswith("Every WhatsApp key failed: ")
    assert all(f"'{label}' answered sandbox:key" in explanation["text"] for label in keys.values())
    assert explanation["fix"] == {"action": "update_key", "integration_id": view["pause_details"]["keys"][0]
                                  ["integration_id"]}
    assert hold["explanation"] == explanation

    [key_errors] = scoped(view, "key")
    assert key_errors["code"] == "sandbox:key" and key_errors["message"] == MESSAGES[ErrorClass.KEY]
    assert key_errors["count"] >= len(keys) and key_errors["sample_lead_ids"]
    assert not scoped(view, "lead") and view["breakdown"]["failed"] == 0  # no lead was charged

    with ctx.db.begin() as conn:  # the operator fixes the keys; resume starts a new run
        conn.execute(update(integrations).where(integrations.c.id.in_(list(keys))).values(config={}))
    resumed = svc.resume(ctx, p, cid)
    assert resumed["status"] == "sending" and not scoped(resumed, "key")
    assert resumed["pause_explanation"] is None and resumed["holds"] == []


def test_a_revoked_whatsapp_token_is_named_with_its_code_190_and_the_provider_s_message(
        ctx, client, owner, whatsapp_server):
    api, h = "/api/v1", owner["headers"]
    created = client.post(f"{api}/integrations", headers=h, json={
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "Acme WA",
        "credentials": {"access_token": "tok-secret-1"},
        "config": {"phone_number_id": "1001", "base_url": f"{whatsapp_server.base_url}/v23.0"}})
    assert created.status_code == 201, created.text
    key_id = created.json()["id"]
    campaign = client.post(f"{api}/campaigns", headers=h, json={
        "name": "Revoked", "steps": [{"channel": "whatsapp", "template": {"body": "Hi"}}]}).json()
    add_leads(ctx, campaign["id"], 10)
    assert client.post(f"{api}/campaigns/{campaign['id']}/start", headers=h).status_code == 200
    whatsapp_server.fail_key("tok-secret-1", code=190)

    async def work():
        async with httpx.AsyncClient(timeout=5) as http:
            await Worker(ctx, build_adapters(http), concurrency=2, tick_seconds=0.05).drain()

    asyncio.run(work())
    answer = client.get(f"{api}/campaigns/{campaign['id']}", headers=h)
    view = answer.json()
    assert view["paused_reason"] == "all_keys_failed"
    [key] = view["pause_details"]["keys"]
    assert key["integration_id"] == key_id and key["label"] == "Acme WA" and key["code"] == "whatsapp:190"
    assert "access token" in key["message"]
    assert "'Acme WA' answered whatsapp:190 (" in view["pause_explanation"]["text"]
    assert view["pause_explanation"]["fix"] == {"action": "update_key", "integration_id": key_id}
    assert view["holds"][0]["explanation"] == view["pause_explanation"]
    [key_errors] = [e for e in view["errors"] if e["scope"] == "key"]
    assert key_errors["code"] == "whatsapp:190"
    assert "tok-secret-1" not in answer.text  # the provider's message is masked


def test_a_rejected_template_shows_as_a_campaign_level_error_of_the_run(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p, label="templates gone", fail="campaign")
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 10)
    svc.start(ctx, p, cid)
    drain(ctx)

    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "failed"  # nobody was contacted yet
    [campaign_errors] = scoped(view, "campaign")
    assert campaign_errors["code"] == "sandbox:campaign" and campaign_errors["message"] == MESSAGES[ErrorClass.CAMPAIGN]
    assert campaign_errors["count"] >= 1 and len(campaign_errors["sample_lead_ids"]) == campaign_errors["count"]
    assert not scoped(view, "key") and not scoped(view, "lead")


def test_lead_failures_keep_scope_lead(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p, fail="lead")
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 5)
    svc.start(ctx, p, cid)
    drain(ctx)

    view = svc.get_campaign(ctx, p, cid)
    assert [(e["scope"], e["code"], e["count"]) for e in view["errors"]] == [("lead", "sandbox:lead", 5)]


def test_a_campaign_paced_by_its_rate_says_it_waits_for_the_rate(clocked_ctx, clock):
    c = clocked_ctx
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, limits={"daily_cap": None, "weekly_cap": None, "rate_per_second": 0.5, "ramp": None})
    svc.start(c, p, cid)
    add_leads(c, cid, 5)  # all due at once (imported while sending: not re-clamped)
    before = svc.get_campaign(c, p, cid)
    assert before["next_send_at"] == clock() and before["next_send_reason"] is None

    drain(c)  # one send: the rate books the next two seconds
    view = svc.get_campaign(c, p, cid)
    assert view["progress"]["completed"] == 1
    assert view["next_send_reason"] == "rate" and view["next_send_at"] == clock() + timedelta(seconds=2)

    clock.advance(seconds=2)
    now = svc.get_campaign(c, p, cid)
    assert now["next_send_at"] == clock() and now["next_send_reason"] is None
