"""A resume that checks the keys (issue 21), against the local fake providers on SQLite and
PostgreSQL: a key marked failed in the last run is probed before the campaign may run
again; one still dead refuses the resume (409 `resume_blocked`, gate `key_pool`, the
probe's error) and nothing reaches the provider; one fixed at the provider, or given new
credentials, resumes and sends; an unreachable provider refuses within the probe's
timeout, saying so; a billing mark waits for a person."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time

import httpx
import pytest

from drumbeat.bootstrap import build_adapters
from drumbeat.domain.exceptions import ResumeBlocked
from drumbeat.engine.sweeper import Sweeper
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import integrations
from drumbeat.store import integrations as integration_store
from drumbeat.store.tables import campaigns, holds
from tests.factory import add_leads, new_campaign, workspace
from tests.fakes.providers import free_port

TOKEN, NEW_TOKEN = "EAAG-dead-token-0001", "EAAG-fresh-token-0002"
SID = "AC0123456789abcdef0123456789abcdef"
LEADS = 6


def drain(ctx) -> None:
    async def work():
        async with httpx.AsyncClient(timeout=5) as http:
            await Worker(ctx, build_adapters(http), concurrency=2, tick_seconds=0.05).drain()

    asyncio.run(work())


def whatsapp_key(ctx, p, base_url: str, token: str = TOKEN, label: str = "Acme WA") -> str:
    return integrations.create_integration(ctx, p, {
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": label, "credentials": {"access_token": token},
        "config": {"phone_number_id": "106540352242922", "base_url": f"{base_url}/v23.0"}})["id"]


def twilio_key(ctx, p, base_url: str) -> str:
    return integrations.create_integration(ctx, p, {
        "channel": "sms", "provider": "twilio", "label": "Acme SMS",
        "credentials": {"account_sid": SID, "auth_token": "twilio-auth-token-9f8e7d"},
        "config": {"from": "+15005550006", "base_url": base_url}})["id"]


WHATSAPP_STEP = [{"channel": "whatsapp", "template": {"body": "Hi {{first_name}}"}, "delay_seconds": 0}]
SMS_STEP = [{"channel": "sms", "template": {"body": "Hi {{first_name}}"}, "delay_seconds": 0}]


def paused_by_a_dead_key(ctx, p, fake, key: str, steps=WHATSAPP_STEP, code=190) -> str:
    """A campaign whose only key the provider refused mid-run: paused with all_keys_failed."""
    cid = new_campaign(ctx, p, steps=steps)
    add_leads(ctx, cid, LEADS)
    svc.start(ctx, p, cid)
    fake.fail_key(key, code=code)
    drain(ctx)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "all_keys_failed", view["status"]
    return cid


def refused_gates(ctx, p, cid) -> list[dict]:
    with pytest.raises(ResumeBlocked) as refused:
        svc.resume(ctx, p, cid)
    return refused.value.details["gates"]


def closed_key_pool(gates: list[dict]) -> dict:
    [gate] = [g for g in gates if g["gate"] == "key_pool" and not g["ok"]]
    return gate


def test_a_still_dead_key_refuses_the_resume_with_the_probe_s_error_and_nothing_is_sent(ctx, whatsapp_server):
    p = workspace(ctx)
    key = whatsapp_key(ctx, p, whatsapp_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    sends_before = len(whatsapp_server.calls())

    gate = closed_key_pool(refused_gates(ctx, p, cid))
    assert gate["channel"] == "whatsapp" and gate["integration_id"] == key
    assert gate["error"]["code"] == "whatsapp:190" and "access token" in gate["error"]["message"].lower()
    assert "'Acme WA' still fails its connection test: whatsapp:190" in gate["reason"]
    assert TOKEN not in str(gate)  # the provider's text, masked

    assert len(whatsapp_server.calls(kind="probe", sends_only=False)) == 1  # the key was probed once
    drain(ctx)
    assert len(whatsapp_server.calls()) == sends_before  # zero sends reached the provider
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "all_keys_failed"


def test_a_key_fixed_at_the_provider_resumes_and_the_campaign_sends(ctx, whatsapp_server):
    p = workspace(ctx)
    whatsapp_key(ctx, p, whatsapp_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    whatsapp_server.restore_key(TOKEN)

    resumed = svc.resume(ctx, p, cid)
    assert resumed["status"] == "sending" and resumed["holds"] == []
    drain(ctx)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed" and view["progress"]["completed"] == LEADS
    assert whatsapp_server.accepted(key=TOKEN) == LEADS
    [entry] = [e for e in svc.get_timeline(ctx, p, cid) if e["action"] == "resume"]
    assert entry["details"]["keys"][0]["cleared"] is True


def test_new_credentials_resume_and_the_campaign_sends_through_them(ctx, whatsapp_server):
    p = workspace(ctx)
    key = whatsapp_key(ctx, p, whatsapp_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    integrations.update_integration(ctx, p, key, {"credentials": {"access_token": NEW_TOKEN}})

    assert svc.resume(ctx, p, cid)["status"] == "sending"
    drain(ctx)
    assert svc.get_campaign(ctx, p, cid)["status"] == "completed"
    assert whatsapp_server.accepted(key=NEW_TOKEN) == LEADS and whatsapp_server.accepted(key=TOKEN) == 0


def test_a_dead_key_beside_a_good_one_stays_marked_in_the_new_run_and_sends_nothing(ctx, whatsapp_server):
    p = workspace(ctx)
    dead = whatsapp_key(ctx, p, whatsapp_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    dead_sends = len(whatsapp_server.calls(key=TOKEN))
    whatsapp_key(ctx, p, whatsapp_server.base_url, token=NEW_TOKEN, label="Backup WA")

    resumed = svc.resume(ctx, p, cid)
    assert resumed["status"] == "sending"
    with ctx.db.connect() as conn:
        run = svc.store.get_campaign_by_id(conn, cid)["run"]
        assert set(integration_store.failed_keys(conn, cid, run)) == {dead}  # its mark carried into the run
    drain(ctx)
    assert svc.get_campaign(ctx, p, cid)["status"] == "completed"
    assert len(whatsapp_server.calls(key=TOKEN)) == dead_sends  # never tried again in the new run
    assert whatsapp_server.accepted(key=NEW_TOKEN) == LEADS


def test_an_unreachable_provider_refuses_within_the_probe_timeout_saying_it_could_not_be_reached(ctx,
                                                                                                   whatsapp_server):
    p = workspace(ctx)
    key = whatsapp_key(ctx, p, whatsapp_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    integrations.update_integration(ctx, p, key, {"config": {"phone_number_id": "106540352242922",
                                                             "base_url": f"{closed}/v23.0"}})
    quick = dataclasses.replace(ctx, probe_timeout_seconds=2.0)

    began = time.monotonic()
    gate = closed_key_pool(refused_gates(quick, p, cid))
    assert time.monotonic() - began < 2.0 + 1.5  # within the probe's timeout (and the database's own time)
    assert gate["error"]["code"] == "whatsapp:connection"
    assert "could not be reached" in gate["reason"]


def test_a_provider_that_never_answers_refuses_once_the_probe_timeout_passes(ctx, whatsapp_server):
    p = workspace(ctx)
    key = whatsapp_key(ctx, p, whatsapp_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        integrations.update_integration(ctx, p, key, {"config": {"phone_number_id": "106540352242922",
                                                                 "base_url": f"http://127.0.0.1:{port}/v23.0"}})
        quick = dataclasses.replace(ctx, probe_timeout_seconds=1.0)
        began = time.monotonic()
        gate = closed_key_pool(refused_gates(quick, p, cid))
        took = time.monotonic() - began
    assert 1.0 <= took < 1.0 + 1.5
    assert gate["error"]["code"] == "whatsapp:timeout"
    assert "no answer within 1 s" in gate["reason"]


@pytest.mark.parametrize("code", [20005])
def test_a_billing_mark_is_not_cleared_by_a_passing_probe_until_a_person_answers_it(ctx, twilio_server, code):
    p = workspace(ctx)
    key = twilio_key(ctx, p, twilio_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, twilio_server, SID, steps=SMS_STEP, code=code)
    twilio_server.restore_key(SID)  # the account reads fine again: that proves nothing about billing
    sends_before = len(twilio_server.calls())

    gate = closed_key_pool(refused_gates(ctx, p, cid))
    assert gate["integration_id"] == key and gate["error"]["code"] == f"twilio:{code}"
    assert "billing or account error" in gate["reason"]
    assert len(twilio_server.calls(kind="probe", sends_only=False)) == 1  # probed, and it passed
    assert len(twilio_server.calls()) == sends_before

    # A person saves the credentials again: the answer the mark waited for.
    integrations.update_integration(ctx, p, key, {"credentials": {"auth_token": "twilio-auth-token-9f8e7d"}})
    assert svc.resume(ctx, p, cid)["status"] == "sending"
    drain(ctx)
    assert svc.get_campaign(ctx, p, cid)["status"] == "completed"


def test_the_sweeper_does_not_resume_through_a_key_that_still_fails(ctx, whatsapp_server):
    """A campaign paused as account_disconnected whose key was also marked failed: the
    account comes back, the sweeper probes the marked key before resuming, and leaves
    the campaign paused while the key is dead; once it is fixed, the sweeper resumes."""
    p = workspace(ctx)
    key = whatsapp_key(ctx, p, whatsapp_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    integrations.record_health_event(ctx, p, key, "disconnected")
    with ctx.db.begin() as conn:  # the account's disconnection is what the stop shows
        conn.execute(campaigns.update().where(campaigns.c.id == cid).values(paused_reason="account_disconnected"))
        conn.execute(holds.update().where(holds.c.campaign_id == cid).values(reason="account_disconnected"))
    integrations.record_health_event(ctx, p, key, "reconnected")

    sweeper = Sweeper(ctx, period_seconds=60)
    report = sweeper.sweep_once()
    assert report.resumed == []
    assert svc.get_campaign(ctx, p, cid)["status"] == "paused"
    assert len(whatsapp_server.calls(kind="probe", sends_only=False)) == 1

    whatsapp_server.restore_key(TOKEN)
    assert sweeper.sweep_once().resumed == [cid]
    drain(ctx)
    assert svc.get_campaign(ctx, p, cid)["status"] == "completed"


def test_the_keys_are_probed_at_once_so_two_silent_providers_cost_one_timeout(ctx, whatsapp_server):
    p = workspace(ctx)
    keys = [whatsapp_key(ctx, p, whatsapp_server.base_url, token=t, label=f"WA {i}")
            for i, t in enumerate((TOKEN, NEW_TOKEN))]
    whatsapp_server.fail_key(NEW_TOKEN, code=190)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}/v23.0"
        for key in keys:
            integrations.update_integration(ctx, p, key, {"config": {"phone_number_id": "106540352242922",
                                                                     "base_url": base}})
        quick = dataclasses.replace(ctx, probe_timeout_seconds=2.0)
        began = time.monotonic()
        gates = refused_gates(quick, p, cid)
        took = time.monotonic() - began
    closed = [g for g in gates if g["gate"] == "key_pool" and not g["ok"]]
    assert sorted(g["integration_id"] for g in closed) == sorted(keys)
    assert all(g["error"]["code"] == "whatsapp:timeout" for g in closed)
    assert took < 2 * 2.0  # one after the other would take two timeouts at least


def test_the_sweeper_keeps_a_sending_campaign_s_hold_while_its_only_key_is_marked_in_this_run(ctx,
                                                                                           whatsapp_server):
    """Mid-run, a key marked failed stays out (DESIGN.md §4): the sweeper's gate check counts
    the mark, lifts no hold for it and probes nothing (only a resume starts a new run)."""
    p = workspace(ctx)
    key = whatsapp_key(ctx, p, whatsapp_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    with ctx.db.begin() as conn:  # still sending, its WhatsApp channel held for the account
        conn.execute(campaigns.update().where(campaigns.c.id == cid)
                     .values(status="sending", paused_reason=None, paused_at=None))
        conn.execute(holds.update().where(holds.c.campaign_id == cid).values(reason="account_disconnected"))
    whatsapp_server.restore_key(TOKEN)
    integrations.record_health_event(ctx, p, key, "reconnected")

    Sweeper(ctx, period_seconds=60).sweep_once()
    view = svc.get_campaign(ctx, p, cid)
    assert [h["reason"] for h in view["holds"]] == ["account_disconnected"]
    assert whatsapp_server.calls(kind="probe", sends_only=False) == []
