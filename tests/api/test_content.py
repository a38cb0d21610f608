"""Preview and test send over HTTP: what a lead gets, shown exactly, and sent to the
operator's own address without touching leads, counters, caps, detectors or keys."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from drumbeat.app import create_app
from drumbeat.bootstrap import build_adapters
from drumbeat.channels.inbound import sign_sha256
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as campaign_service
from drumbeat.services import integrations as integration_service
from drumbeat.services.context import Principal
from drumbeat.store import tables
from drumbeat.store.tables import leads
from tests.fakes.providers import QUIET_SMTP

API = "/api/v1"
TOKEN = "EAAG-preview-token-1"
APP_SECRET = "meta-app-secret-preview"
TEMPLATE = {"name": "order_update", "language": "en", "body": "Hi {{first_name}}, order {{attributes.order}}",
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "{{first_name|there}}"}]},
                {"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"},
                                                {"type": "text", "text": "{{attributes.order}}"}]},
                {"type": "button", "sub_type": "url", "index": "0",
                 "parameters": [{"type": "text", "text": "{{attributes.order}}"}]}]}
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def principal(owner) -> Principal:
    return Principal(owner["user_id"], owner["workspace_id"], "owner")


def campaign(ctx, owner, steps, **limits) -> str:
    return campaign_service.create_campaign(ctx, principal(owner), {
        "name": "Content", "steps": steps, "integration_ids": None,
        "schedule": {"timezone": "UTC", "days": ALL_DAYS, "window_start": "00:00", "window_end": "24:00",
                     "randomize_within_window": False, "start_at": None},
        "limits": {"daily_cap": None, "weekly_cap": None, "rate_per_second": None, "ramp": None, **limits},
        "failure_policy": {"window": 50, "threshold": 0.5, "min_samples": 20}})["id"]


def lead(ctx, campaign_id, phone="+4915112345678", email=None, first_name="Ada", **attributes) -> str:
    now = datetime.now(UTC)
    with ctx.db.begin() as conn:
        return str(conn.execute(insert(leads).values(
            campaign_id=campaign_id, phone=phone, email=email, first_name=first_name, attributes=attributes,
            state="not_contacted", current_step=0, next_action_at=now, created_at=now,
            updated_at=now)).inserted_primary_key[0])


def key(ctx, owner, channel, provider, credentials=None, **config) -> str:
    return integration_service.create_integration(ctx, principal(owner), {
        "channel": channel, "provider": provider, "label": f"{channel} {provider}", "credentials": credentials or {},
        "config": config, "daily_cap": None})["id"]


def whatsapp_key(ctx, owner, server) -> str:
    return key(ctx, owner, "whatsapp", "whatsapp_cloud", {"access_token": TOKEN, "app_secret": APP_SECRET},
               phone_number_id="1065", base_url=f"{server.base_url}/v23.0")


def run_worker(ctx) -> None:
    async def main():
        async with httpx.AsyncClient(timeout=5) as http:
            await Worker(ctx, build_adapters(http), concurrency=4, tick_seconds=0.05).drain()

    asyncio.run(main())


def preview(client, owner, campaign_id, **params):
    return client.get(f"{API}/campaigns/{campaign_id}/preview", params=params, headers=owner["headers"])


def send_test(client, headers, campaign_id, to, step=0, **fields):
    return client.post(f"{API}/campaigns/{campaign_id}/test", json={"step": step, "to": to, **fields},
                       headers=headers)


def every_row_but_the_timeline(ctx) -> dict:
    """Every table that a send, a detector, a key mark, a hold or a notification could touch."""
    names = ["campaigns", "steps", "holds", "key_failures", "leads", "attempts", "provider_messages",
             "campaign_counts", "send_counters", "integrations", "webhook_deliveries", "email_notifications"]
    with ctx.db.connect() as conn:
        return {name: sorted((dict(r) for r in conn.execute(select(getattr(tables, name))).mappings()), key=repr)
                for name in names}


def user(client, owner, role) -> dict:
    response = client.post(f"{API}/users", json={"email": f"{role}@acme.test", "role": role}, headers=owner["headers"])
    return {"Authorization": f"Bearer {response.json()['token']}"}


# --- preview -------------------------------------------------------------------------------------

def test_the_whatsapp_preview_is_exactly_the_body_the_provider_receives_when_the_campaign_sends(
        ctx, client, owner, whatsapp_server):
    whatsapp_key(ctx, owner, whatsapp_server)
    cid = campaign(ctx, owner, [{"channel": "whatsapp", "template": TEMPLATE, "delay_seconds": 0}])
    lead(ctx, cid, first_name="Ada", order="A-17")
    second = lead(ctx, cid, phone="+4915112345679", first_name="Bo", order="B-2")

    shown = {p: preview(client, owner, cid, **({"lead_id": second} if p else {})).json() for p in (False, True)}
    campaign_service.start(ctx, principal(owner), cid)
    run_worker(ctx)

    for chosen, phone in ((False, "+4915112345678"), (True, "+4915112345679")):
        step = shown[chosen]["steps"][0]
        assert step["missing"] == [] and step["problem"] is None and step["sms"] is None
        [call] = whatsapp_server.calls(to=phone)
        assert call.body == step["rendered"]["payload"]
    assert shown[True]["lead_id"] == second
    assert shown[True]["steps"][0]["rendered"]["payload"]["template"]["components"][1]["parameters"] == [
        {"type": "text", "text": "Bo"}, {"type": "text", "text": "B-2"}]


@pytest.mark.parametrize("text, encoding, segments", [
    ("a" * 160, "GSM-7", 1), ("a" * 161, "GSM-7", 2), ("a" * 306, "GSM-7", 2), ("a" * 307, "GSM-7", 3),
    ("€" * 80, "GSM-7", 1), ("€" * 80 + "a", "GSM-7", 2),
    ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),  # 306 septets, but the escape pair is never split
    ("ж" * 70, "UCS-2", 1), ("ж" * 71, "UCS-2", 2), ("ж" * 134, "UCS-2", 2), ("ж" * 135, "UCS-2", 3),
    ("😀" * 35, "UCS-2", 1), ("😀" * 35 + "a", "UCS-2", 2),
    ("a" * 66 + "😀" + "a" * 66, "UCS-2", 3),  # 134 code units, but the surrogate pair is never split
], ids=lambda v: v if isinstance(v, str) and len(v) < 8 else None)
def test_the_sms_preview_counts_encoding_and_segments_as_carriers_do(ctx, client, owner, text, encoding, segments):
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "{{attributes.text}}"}}])
    lead(ctx, cid, text=text)

    step = preview(client, owner, cid).json()["steps"][0]

    assert step["rendered"] == {"text": text}
    assert (step["sms"]["encoding"], step["sms"]["segments"]) == (encoding, segments)
    assert step["problem"] is None


def test_an_sms_over_ten_segments_shows_the_problem_the_worker_would_fail_the_lead_with(ctx, client, owner):
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "{{attributes.text}}"}}])
    lead(ctx, cid, text="a" * 1531)

    step = preview(client, owner, cid).json()["steps"][0]

    assert step["sms"]["segments"] == 11 and step["problem"]["code"] == "drumbeat:message_too_long"


def test_the_email_preview_renders_subject_text_and_html_with_lead_values_escaped_in_html(ctx, client, owner):
    cid = campaign(ctx, owner, [{"channel": "email", "template": {
        "subject": "For {{first_name}}", "body": "Code {{attributes.code}}",
        "html": "<p>Code <b>{{attributes.code}}</b></p>"}}])
    lead(ctx, cid, email="ada@example.com", code="<A&1>")

    step = preview(client, owner, cid).json()["steps"][0]

    assert step["rendered"] == {"subject": "For Ada", "text": "Code <A&1>",
                                "html": "<p>Code <b>&lt;A&amp;1&gt;</b></p>"}
    assert step["sms"] is None and step["missing"] == []


def test_the_preview_names_missing_variables_per_step_and_applies_fallbacks(ctx, client, owner):
    cid = campaign(ctx, owner, [
        {"channel": "sms", "template": {"body": "Hi {{first_name}} {{last_name|friend}}, code {{attributes.code}}"}},
        {"channel": "linkedin", "template": {"action": "invite", "body": "Hello {{last_name|there}}"}},
        {"channel": "voice", "template": {"body": "Call for {{attributes.code}}", "language": "en-US"}}])
    lead(ctx, cid, first_name=None)

    steps = preview(client, owner, cid).json()["steps"]

    assert [s["missing"] for s in steps] == [["attributes.code", "first_name"], [], ["attributes.code"]]
    assert steps[0]["rendered"] == {"text": "Hi  friend, code "}
    assert steps[0]["problem"]["code"] == "drumbeat:missing_variable"
    assert steps[1]["rendered"] == {"action": "invite", "text": "Hello there"} and steps[1]["problem"] is None
    assert steps[2]["rendered"] == {"text": "Call for "} and steps[2]["sms"] is None


def test_a_campaign_without_leads_previews_with_empty_lead_fields(ctx, client, owner):
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi {{first_name|there}} {{last_name}}"}}])

    body = preview(client, owner, cid).json()

    assert body["lead_id"] is None
    assert body["steps"][0]["rendered"] == {"text": "Hi there "} and body["steps"][0]["missing"] == ["last_name"]


def test_the_preview_defaults_to_the_first_lead_and_any_role_may_read_it(ctx, client, owner):
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi {{first_name}}"}}])
    first = lead(ctx, cid, first_name="Ada")
    lead(ctx, cid, phone="+4915112345679", first_name="Bo")

    response = client.get(f"{API}/campaigns/{cid}/preview", headers=user(client, owner, "viewer"))

    assert response.status_code == 200
    assert response.json()["lead_id"] == first and response.json()["steps"][0]["rendered"] == {"text": "Hi Ada"}


@pytest.mark.parametrize("whose", ["other campaign", "other workspace", "unknown", "not a number"])
def test_a_lead_that_is_not_the_campaigns_is_not_found(ctx, client, owner, whose):
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi"}}])
    lead(ctx, cid)
    if whose == "other workspace":
        from tests.factory import new_campaign, workspace
        elsewhere = new_campaign(ctx, workspace(ctx, "Rival"))
    else:
        elsewhere = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi"}}])
    stranger = {"other campaign": lead(ctx, elsewhere, phone="+4915112345670"), "other workspace":
                lead(ctx, elsewhere, phone="+4915112345671"), "unknown": "999999", "not a number": "x1"}[whose]

    response = preview(client, owner, cid, lead_id=stranger)

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_another_workspaces_campaign_has_no_preview(ctx, client, owner):
    from tests.factory import new_campaign, workspace
    foreign = new_campaign(ctx, workspace(ctx, "Rival"))

    response = preview(client, owner, foreign)

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


# --- test send -----------------------------------------------------------------------------------

@pytest.fixture
def sending(ctx, client, owner, whatsapp_server):
    """A sending two-step WhatsApp campaign with a daily cap, whose three leads had their
    first step sent: leads, attempts, counters and caps all hold something to compare."""
    integration_id = whatsapp_key(ctx, owner, whatsapp_server)
    cid = campaign(ctx, owner, [{"channel": "whatsapp", "template": TEMPLATE, "delay_seconds": 0},
                                {"channel": "whatsapp", "template": {"body": "Still there {{first_name}}?"},
                                 "delay_seconds": 86_400}], daily_cap=100)
    for i in range(3):
        lead(ctx, cid, phone=f"+491511234567{i}", first_name=f"L{i}", order=f"O-{i}")
    campaign_service.start(ctx, principal(owner), cid)
    run_worker(ctx)
    assert len(whatsapp_server.calls()) == 3
    return cid, integration_id


def test_a_test_send_is_accepted_with_the_providers_id_and_the_provider_gets_the_rendered_step(
        ctx, client, owner, whatsapp_server, sending):
    cid, integration_id = sending
    shown = preview(client, owner, cid).json()["steps"][0]["rendered"]["payload"]

    response = send_test(client, owner["headers"], cid, {"phone": "+44 7911 123456"})

    assert response.status_code == 200, response.text
    body = response.json()
    [call] = whatsapp_server.calls(to="+447911123456")
    assert body == {"status": "accepted", "provider_message_id": call.answer["messages"][0]["id"], "error": None,
                    "integration_id": integration_id, "missing": []}
    assert call.body == {**shown, "to": "447911123456"}
    entry = [e for e in client.get(f"{API}/campaigns/{cid}/timeline", headers=owner["headers"]).json()["items"]
             if e["action"] == "test_send"]
    assert [(e["from_status"], e["to_status"]) for e in entry] == [("sending", "sending")]
    assert entry[0]["details"] == {"step": 0, "channel": "whatsapp", "to": "+44******3456",
                                   "integration_id": integration_id, "lead_id": preview(client, owner, cid).json()[
                                       "lead_id"], "status": "accepted", "error_code": None,
                                   "provider_message_id": body["provider_message_id"]}


def test_test_sends_change_no_lead_attempt_counter_cap_detector_key_or_hold(ctx, client, owner, whatsapp_server,
                                                                            sending):
    cid, integration_id = sending
    view = client.get(f"{API}/campaigns/{cid}", headers=owner["headers"]).json()
    rows = every_row_but_the_timeline(ctx)

    accepted = [send_test(client, owner["headers"], cid, {"phone": "+447911123456"}, step=s).json() for s in (0, 1)]
    whatsapp_server.fail_key(TOKEN, code=190)  # a key-level answer: reported, never recorded against the key
    refused = send_test(client, owner["headers"], cid, {"phone": "+447911123456"}).json()

    assert [a["status"] for a in accepted] == ["accepted", "accepted"]
    assert refused["status"] == "failed" and refused["error"]["code"] == "whatsapp:190"
    assert len(whatsapp_server.calls(to="+447911123456")) == 3
    after = client.get(f"{API}/campaigns/{cid}", headers=owner["headers"]).json()
    for part in ("status", "progress", "breakdown", "caps", "errors", "holds", "next_send_at"):
        assert after[part] == view[part], part
    assert every_row_but_the_timeline(ctx) == rows


def test_a_status_callback_for_a_test_sends_message_changes_nothing(ctx, client, owner, whatsapp_server, sending):
    cid, integration_id = sending
    message_id = send_test(client, owner["headers"], cid, {"phone": "+447911123456"}).json()["provider_message_id"]
    rows = every_row_but_the_timeline(ctx)

    answers = []
    for status in ("delivered", "failed"):
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [{
                "id": message_id, "status": status, "timestamp": "1700000000", "recipient_id": "447911123456",
                **({"errors": [{"code": 131026, "title": "Message undeliverable"}]} if status == "failed" else {})
            }]}}]}]}).encode()
        answers.append(client.post(f"/webhooks/whatsapp/{integration_id}", content=body, headers={
            "X-Hub-Signature-256": sign_sha256(body, APP_SECRET), "Content-Type": "application/json"}))

    assert [(a.status_code, a.json()) for a in answers] == [(200, {"events": 1, "changed": 0})] * 2
    assert every_row_but_the_timeline(ctx) == rows


def test_a_campaign_without_leads_test_sends_with_fallbacks_and_refuses_a_missing_variable_without_a_call(
        ctx, client, owner, twilio_server):
    key(ctx, owner, "sms", "twilio", {"account_sid": "AC1", "auth_token": "tok"}, base_url=twilio_server.base_url,
        **{"from": "+15005550006"})
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi {{first_name|there}}"}},
                                {"channel": "sms", "template": {"body": "Hi {{first_name}}"}}])

    sent = send_test(client, owner["headers"], cid, {"phone": "+14155550100"})
    refused = send_test(client, owner["headers"], cid, {"phone": "+14155550100"}, step=1)

    assert sent.json()["status"] == "accepted" and sent.json()["provider_message_id"].startswith("SM")
    assert [c.body["Body"] for c in twilio_server.calls()] == ["Hi there"]
    assert refused.status_code == 200
    assert refused.json()["status"] == "failed" and refused.json()["provider_message_id"] is None
    assert refused.json()["error"]["code"] == "drumbeat:missing_variable"
    assert refused.json()["missing"] == ["first_name"]


@pytest.mark.filterwarnings(QUIET_SMTP)
def test_an_email_test_send_carries_the_rendered_html_part(ctx, client, owner, smtp_server):
    key(ctx, owner, "email", "smtp", {"username": "mailer", "password": "s3cret-pass"}, **smtp_server.config())
    cid = campaign(ctx, owner, [{"channel": "email", "template": {
        "subject": "For {{first_name}}", "body": "Code {{attributes.code}}", "html": "<b>{{attributes.code}}</b>"}}])
    lead(ctx, cid, email="ada@example.com", code="<1>")

    response = send_test(client, owner["headers"], cid, {"email": "Me@Example.org"})

    assert response.json()["status"] == "accepted", response.text
    [delivery] = smtp_server.deliveries
    message = delivery.message
    assert delivery.rcpt_tos == ["me@example.org"] and message["To"] == "me@example.org"
    assert message["Subject"] == "For Ada"
    assert message.get_body(("html",)).get_content().strip() == "<b>&lt;1&gt;</b>"


@pytest.mark.parametrize("to, field", [
    ({"phone": "+4915112345678"}, "to.phone"),  # suppressed
    ({"phone": "+1 555"}, "to.phone"),
    ({"phone": "4915112345678"}, "to.phone"),  # no country
    ({"email": "ada@example.com"}, "to.phone"),  # the wrong kind for an SMS step
    ({"phone": "+4915112345679", "email": "ada@example.com"}, "to.phone"),
    ({}, "to.phone"),
])
def test_a_suppressed_or_invalid_address_is_refused_and_nothing_is_recorded(ctx, client, owner, to, field):
    key(ctx, owner, "sms", "sandbox")
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi"}}])
    client.post(f"{API}/suppressions", json={"phone": "+49 151 12345678"}, headers=owner["headers"])
    before = client.get(f"{API}/campaigns/{cid}/timeline", headers=owner["headers"]).json()

    response = send_test(client, owner["headers"], cid, to)

    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"
    assert [f["field"] for f in response.json()["error"]["details"]["fields"]] == [field]
    assert client.get(f"{API}/campaigns/{cid}/timeline", headers=owner["headers"]).json() == before


def test_a_bad_email_and_a_step_past_the_last_are_refused(ctx, client, owner):
    key(ctx, owner, "email", "sandbox")
    cid = campaign(ctx, owner, [{"channel": "email", "template": {"subject": "s", "body": "b"}}])

    bad_email = send_test(client, owner["headers"], cid, {"email": "not-an-address"})
    no_step = send_test(client, owner["headers"], cid, {"email": "me@example.org"}, step=1)

    assert [f["field"] for f in bad_email.json()["error"]["details"]["fields"]] == ["to.email"]
    assert [f["field"] for f in no_step.json()["error"]["details"]["fields"]] == ["step"]


def test_no_usable_key_on_the_steps_channel_is_resume_blocked_with_the_key_pool_gate(ctx, client, owner):
    key(ctx, owner, "email", "sandbox")  # another channel's key does not help
    disabled = key(ctx, owner, "sms", "sandbox")
    client.patch(f"{API}/integrations/{disabled}", json={"enabled": False}, headers=owner["headers"])
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi"}}])

    response = send_test(client, owner["headers"], cid, {"phone": "+14155550100"})

    assert response.status_code == 409 and response.json()["error"]["code"] == "resume_blocked"
    gates = response.json()["error"]["details"]["gates"]
    assert {"gate": "key_pool", "ok": False, "channel": "sms"}.items() <= \
        next(g for g in gates if g["gate"] == "key_pool").items()


def test_the_eleventh_test_send_in_a_minute_is_rate_limited_across_the_workspace(ctx, clocked_ctx, clock, owner):
    key(ctx, owner, "sms", "sandbox")
    first = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi"}}])
    second = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi"}}])
    with TestClient(create_app(clocked_ctx)) as client:
        answers = [send_test(client, owner["headers"], first if i % 2 else second, {"phone": "+14155550100"})
                   for i in range(10)]
        clock.advance(seconds=30)
        limited = send_test(client, owner["headers"], first, {"phone": "+14155550100"})
        clock.advance(seconds=31)
        again = send_test(client, owner["headers"], first, {"phone": "+14155550100"})

    assert [a.json()["status"] for a in answers] == ["accepted"] * 10
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert limited.headers["Retry-After"] == "30" and limited.json()["error"]["details"]["retry_after_seconds"] == 30
    assert again.status_code == 200 and again.json()["status"] == "accepted"


@pytest.mark.parametrize("status", ["completed", "canceled"])
def test_a_finished_campaign_takes_no_test_send(ctx, client, owner, status):
    key(ctx, owner, "sms", "sandbox")
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi"}}])
    with ctx.db.begin() as conn:
        conn.execute(tables.campaigns.update().where(tables.campaigns.c.id == cid).values(status=status))

    response = send_test(client, owner["headers"], cid, {"phone": "+14155550100"})

    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_transition"


def test_a_viewer_may_not_test_send_and_another_workspace_does_not_see_the_campaign(ctx, client, owner):
    from drumbeat.services.workspaces import init_workspace
    key(ctx, owner, "sms", "sandbox")
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi"}}])
    rival = {"Authorization": f"Bearer {init_workspace(ctx, 'Rival', 'boss@rival.test')['token']}"}

    viewer = send_test(client, user(client, owner, "viewer"), cid, {"phone": "+14155550100"})
    foreign = send_test(client, rival, cid, {"phone": "+14155550100"})

    assert viewer.status_code == 403 and viewer.json()["error"]["code"] == "forbidden"
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"
    timeline = client.get(f"{API}/campaigns/{cid}/timeline", headers=owner["headers"]).json()["items"]
    assert [e for e in timeline if e["action"] == "test_send"] == []


def test_a_test_send_on_a_paused_campaign_tells_nobody_the_campaign_paused(ctx, client, owner, sending):
    cid, _ = sending
    hook = client.post(f"{API}/webhooks", headers=owner["headers"], json={
        "url": "https://hooks.example/x", "secret": "s3cret-s3cret", "events": ["campaign.paused"]})
    assert hook.status_code == 201, hook.text
    assert client.post(f"{API}/campaigns/{cid}/pause", headers=owner["headers"]).status_code == 200
    with ctx.db.connect() as conn:
        told = {t: len(conn.execute(select(getattr(tables, t))).all())
                for t in ("webhook_deliveries", "email_notifications")}

    response = send_test(client, owner["headers"], cid, {"phone": "+447911123456"})

    assert response.json()["status"] == "accepted"
    with ctx.db.connect() as conn:
        assert {t: len(conn.execute(select(getattr(tables, t))).all()) for t in told} == told
    assert told["webhook_deliveries"] == 1  # the pause itself was told, so the webhook listens


def test_racing_test_sends_never_pass_the_limit_together(ctx, owner):
    from concurrent.futures import ThreadPoolExecutor

    from drumbeat.domain.exceptions import RateLimited
    from drumbeat.services import content

    key(ctx, owner, "sms", "sandbox")
    cid = campaign(ctx, owner, [{"channel": "sms", "template": {"body": "Hi"}}])

    def one(_):
        try:
            return content.send_test(ctx, principal(owner), cid, step=0, to={"phone": "+14155550100"})["status"]
        except RateLimited:
            return "limited"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(one, range(14)))

    assert sorted(outcomes) == ["accepted"] * 10 + ["limited"] * 4
