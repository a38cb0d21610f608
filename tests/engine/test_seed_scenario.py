"""The headline: every WhatsApp key starts failing mid-run, the campaign pauses itself with
all_keys_failed and loses no lead; rotate one key, resume, and it finishes with every lead
contacted exactly once, counted at the (fake) provider."""

from __future__ import annotations

import asyncio

import httpx

from drumbeat.bootstrap import build_adapters
from drumbeat.engine.worker import Worker
from tests.factory import add_leads

LEADS = 300
CONCURRENCY = 8


def run_worker(ctx) -> None:
    async def main():
        async with httpx.AsyncClient(timeout=5) as client:
            await Worker(ctx, build_adapters(client), concurrency=CONCURRENCY, tick_seconds=0.05).drain()

    asyncio.run(main())


def test_all_keys_fail_mid_run_then_rotate_and_resume(ctx, client, owner, whatsapp_server):
    api, h = "/api/v1", owner["headers"]
    keys = []
    for token in ("tok-1", "tok-2", "tok-3"):
        created = client.post(f"{api}/integrations", headers=h, json={
            "channel": "whatsapp", "provider": "whatsapp_cloud", "label": token,
            "credentials": {"access_token": token}, "config": {"phone_number_id": "1001",
                                                               "base_url": f"{whatsapp_server.base_url}/v23.0"}})
        assert created.status_code == 201, created.text
        keys.append(created.json()["id"])
    campaign = client.post(f"{api}/campaigns", headers=h, json={
        "name": "Seed", "steps": [{"channel": "whatsapp", "template": {"body": "Hi {{first_name}}"}}]}).json()
    add_leads(ctx, campaign["id"], LEADS)
    assert client.post(f"{api}/campaigns/{campaign['id']}/start", headers=h).status_code == 200

    whatsapp_server.fail_all(code=190, after=60)  # token expired for every key, after 60 sends
    run_worker(ctx)

    view = client.get(f"{api}/campaigns/{campaign['id']}", headers=h).json()
    assert view["status"] == "paused" and view["paused_reason"] == "all_keys_failed"
    assert view["paused_reason_text"].startswith("Every API key of the channel failed")
    assert sorted(k["integration_id"] for k in view["pause_details"]["keys"]) == sorted(keys)
    assert {k["code"] for k in view["pause_details"]["keys"]} == {"whatsapp:190"}
    accepted = whatsapp_server.accepted()
    assert accepted == 60
    assert view["progress"]["completed"] == 60
    assert view["progress"]["not_contacted"] == LEADS - 60  # nobody lost
    assert view["progress"]["failed"] == 0 and view["breakdown"]["failed"] == 0  # nobody charged
    refused = len(whatsapp_server.calls()) - accepted
    assert refused <= len(keys) + CONCURRENCY  # one per key, plus what was already in flight

    # The operator rotates one key; the old tokens stay dead at the provider.
    whatsapp_server.restore_all()
    for token in ("tok-1", "tok-2", "tok-3"):
        whatsapp_server.fail_key(token, code=190)
    rotated = client.patch(f"{api}/integrations/{keys[0]}", headers=h,
                           json={"credentials": {"access_token": "tok-new"}})
    assert rotated.status_code == 200 and "tok-new" not in rotated.text
    resumed = client.post(f"{api}/campaigns/{campaign['id']}/resume", headers=h)
    assert resumed.status_code == 200 and resumed.json()["status"] == "sending"
    run_worker(ctx)

    view = client.get(f"{api}/campaigns/{campaign['id']}", headers=h).json()
    assert view["status"] == "completed" and view["progress"]["completed"] == LEADS
    leads = client.get(f"{api}/campaigns/{campaign['id']}/leads?limit=500", headers=h).json()["items"]
    assert len(leads) == LEADS
    assert all(whatsapp_server.accepted(to=lead["phone"]) == 1 for lead in leads)  # exactly once each
    timeline = [(e["action"], e["actor"]["type"]) for e in
                client.get(f"{api}/campaigns/{campaign['id']}/timeline", headers=h).json()["items"]]
    assert ("auto_pause", "system") in timeline and ("resume", "user") in timeline


def test_a_rejected_template_pauses_and_after_editing_it_the_campaign_finishes_without_double_contact(
        ctx, client, owner, whatsapp_server):
    api, h = "/api/v1", owner["headers"]
    client.post(f"{api}/integrations", headers=h, json={
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "main",
        "credentials": {"access_token": "tok-1"},
        "config": {"phone_number_id": "1001", "base_url": f"{whatsapp_server.base_url}/v23.0"}})
    step = {"channel": "whatsapp", "template": {"name": "spring_v1", "language": "en", "body": "Hi"}}
    campaign = client.post(f"{api}/campaigns", headers=h, json={"name": "Templates", "steps": [step]}).json()
    add_leads(ctx, campaign["id"], 100)
    client.post(f"{api}/campaigns/{campaign['id']}/start", headers=h)
    whatsapp_server.fail_template("spring_v1", code=132001, after=30)  # Meta disables the template mid-run
    run_worker(ctx)

    view = client.get(f"{api}/campaigns/{campaign['id']}", headers=h).json()
    assert view["status"] == "paused" and view["paused_reason"] == "template_rejected"
    assert view["pause_details"]["error_code"] == "whatsapp:132001"
    assert view["progress"]["completed"] == 30 and view["progress"]["failed"] == 0

    step["template"]["name"] = "spring_v2"  # the fix: point the step at an approved template
    edited = client.patch(f"{api}/campaigns/{campaign['id']}", headers=h, json={"steps": [step]})
    assert edited.status_code == 200, edited.text
    assert client.post(f"{api}/campaigns/{campaign['id']}/resume", headers=h).status_code == 200
    run_worker(ctx)

    view = client.get(f"{api}/campaigns/{campaign['id']}", headers=h).json()
    assert view["status"] == "completed" and view["progress"]["completed"] == 100
    leads = client.get(f"{api}/campaigns/{campaign['id']}/leads?limit=500", headers=h).json()["items"]
    assert all(whatsapp_server.accepted(to=lead["phone"]) == 1 for lead in leads)
