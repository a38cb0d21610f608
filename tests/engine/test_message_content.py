"""Message content on the send path (issue 18): what leaves is the step rendered for the
lead, and a message that may not leave (a variable without value, a content the provider
would refuse) fails its lead in the claim: no attempt, no provider call, no cap charged,
nothing for the failure-rate detector. Against the local fake providers, both databases."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from drumbeat.bootstrap import build_adapters
from drumbeat.engine.worker import Worker
from drumbeat.store.tables import attempts
from tests.factory import maintained, recount
from tests.fakes.providers import QUIET_SMTP

API = "/api/v1"

IMAGE = "https://cdn.example.com/spring.png"


def run_worker(ctx) -> None:
    async def main():
        async with httpx.AsyncClient(timeout=5) as http:
            await Worker(ctx, build_adapters(http), concurrency=8, tick_seconds=0.05).drain()

    asyncio.run(main())


def integration(client, owner, body: dict) -> str:
    created = client.post(f"{API}/integrations", headers=owner["headers"], json=body)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def whatsapp_key(client, owner, fake) -> str:
    return integration(client, owner, {
        "channel": "whatsapp", "provider": "whatsapp_cloud", "credentials": {"access_token": "tok-1"},
        "config": {"phone_number_id": "1001", "base_url": f"{fake.base_url}/v23.0"}})


def twilio_key(client, owner, fake, channel: str = "sms") -> str:
    return integration(client, owner, {
        "channel": channel, "provider": "twilio",
        "credentials": {"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "tw-token"},
        "config": {"from": "+15005550006", "base_url": fake.base_url}})


def campaign(client, owner, steps: list[dict], leads: list[dict], **settings) -> str:
    created = client.post(f"{API}/campaigns", headers=owner["headers"],
                          json={"name": "Content", "steps": steps, **settings})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    if leads:
        imported = client.post(f"{API}/campaigns/{cid}/leads", headers=owner["headers"], json={"leads": leads})
        assert imported.status_code == 200 and imported.json()["accepted"] == len(leads), imported.text
    return cid


def start(client, owner, cid: str) -> None:
    started = client.post(f"{API}/campaigns/{cid}/start", headers=owner["headers"])
    assert started.status_code == 200, started.text


def view(client, owner, cid: str) -> dict:
    return client.get(f"{API}/campaigns/{cid}", headers=owner["headers"]).json()


def leads_by_phone(client, owner, cid: str) -> dict[str, dict]:
    page = client.get(f"{API}/campaigns/{cid}/leads?limit=500", headers=owner["headers"]).json()
    return {lead["phone"]: lead for lead in page["items"]}


def attempts_of(ctx, cid: str) -> int:
    with ctx.db.connect() as conn:
        return conn.execute(select(func.count()).select_from(attempts).where(attempts.c.campaign_id == cid)).scalar()


TEMPLATE_STEP = {"channel": "whatsapp", "template": {
    "name": "order_ready", "language": "en_US", "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": IMAGE}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "{{first_name|there}}"},
                                        {"type": "text", "text": "{{attributes.order}}"}]},
        {"type": "button", "sub_type": "url", "index": 0,
         "parameters": [{"type": "text", "text": "{{attributes.order}}"}]}]}}


def test_the_recipient_gets_the_rendered_components_as_metas_template_object(ctx, client, owner, whatsapp_server):
    whatsapp_key(client, owner, whatsapp_server)
    named = {"channel": "whatsapp", "template": {"name": "welcome_named", "language": "de", "components": [
        {"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name",
                                         "text": "{{first_name|du}}"}]}]}}
    cid = campaign(client, owner, [TEMPLATE_STEP, named], [
        {"phone": "+4915112345678", "first_name": "Ada", "attributes": {"order": "A-17"}},
        {"phone": "+4915112345679", "first_name": " ", "attributes": {"order": 42}}])
    start(client, owner, cid)

    run_worker(ctx)

    sent = {(c.to, c.body["template"]["name"]): c.body for c in whatsapp_server.calls() if c.accepted}
    assert len(sent) == 4
    assert sent[("4915112345678", "order_ready")]["type"] == "template"
    assert sent[("4915112345678", "order_ready")]["template"] == {
        "name": "order_ready", "language": {"code": "en_US"}, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": IMAGE}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "A-17"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A-17"}]}]}
    # A blank first name takes the fallback; a number attribute is its text.
    assert sent[("4915112345679", "order_ready")]["template"]["components"][1]["parameters"] == [
        {"type": "text", "text": "there"}, {"type": "text", "text": "42"}]
    assert sent[("4915112345679", "welcome_named")]["template"] == {
        "name": "welcome_named", "language": {"code": "de"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "du"}]}]}
    assert view(client, owner, cid)["status"] == "completed"


def test_a_lead_missing_a_variable_fails_without_attempt_or_call_and_the_others_are_sent(
        ctx, client, owner, whatsapp_server):
    whatsapp_key(client, owner, whatsapp_server)
    cid = campaign(client, owner, [TEMPLATE_STEP], [
        {"phone": "+4915112345670", "attributes": {"order": "A-1"}},
        {"phone": "+4915112345671", "attributes": {}},  # no order: never sent with a blank
        {"phone": "+4915112345672", "attributes": {"order": "A-3"}}])
    start(client, owner, cid)

    run_worker(ctx)

    by_phone = leads_by_phone(client, owner, cid)
    missing = by_phone["+4915112345671"]
    assert (missing["state"], missing["last_error"]) == ("failed", "drumbeat:missing_variable")
    assert whatsapp_server.calls(to="4915112345671") == []
    assert len(whatsapp_server.calls()) == 2 and whatsapp_server.accepted() == 2
    assert attempts_of(ctx, cid) == 2  # no attempt row for the failed lead
    detail = client.get(f"{API}/campaigns/{cid}/leads/{missing['id']}", headers=owner["headers"]).json()
    assert detail["attempts"] == []
    shown = view(client, owner, cid)
    assert shown["progress"]["failed"] == 1 and shown["progress"]["completed"] == 2
    assert shown["breakdown"]["failed"] == 0  # attempts only
    assert shown["errors"] == [{"code": "drumbeat:missing_variable",
                                "message": "a variable had no value and no fallback: the message was not sent",
                                "count": 1, "sample_lead_ids": [missing["id"]], "scope": "lead"}]
    with ctx.db.connect() as conn:  # the triggers' counts are untouched by the lead-level count
        kept = {k: v for k, v in maintained(conn, cid).items() if not k.startswith("content_error:")}
        assert kept == recount(conn, cid)
        assert maintained(conn, cid)["content_error:drumbeat:missing_variable"] == 1


def test_every_lead_missing_a_variable_never_holds_the_channel_and_the_campaign_fails(
        ctx, client, owner, whatsapp_server):
    whatsapp_key(client, owner, whatsapp_server)
    cid = campaign(client, owner, [TEMPLATE_STEP], [{"phone": f"+49151123456{i:02d}"} for i in range(30)],
                   failure_policy={"window": 50, "threshold": 0.5, "min_samples": 20})
    start(client, owner, cid)

    run_worker(ctx)

    shown = view(client, owner, cid)
    assert shown["holds"] == [] and shown["paused_reason"] is None
    assert shown["status"] == "failed"  # nobody was contacted (the lifecycle's failed end)
    assert shown["progress"]["failed"] == 30 and attempts_of(ctx, cid) == 0
    assert whatsapp_server.calls() == []
    (group,) = shown["errors"]
    assert group["code"] == "drumbeat:missing_variable" and group["count"] == 30
    assert len(group["sample_lead_ids"]) == 5


def test_failed_content_is_not_charged_to_a_capped_campaigns_cap(ctx, client, owner, whatsapp_server):
    whatsapp_key(client, owner, whatsapp_server)
    cid = campaign(client, owner, [TEMPLATE_STEP], [],
                   limits={"daily_cap": 3, "weekly_cap": None, "rate_per_second": None, "ramp": None})
    start(client, owner, cid)
    # Imported while sending, every lead is due now: the claim's budget is the cap's 3.
    leads = [{"phone": f"+49151123457{i:02d}", "attributes": {"order": f"A-{i}"} if i % 2 else {}}
             for i in range(8)]
    imported = client.post(f"{API}/campaigns/{cid}/leads", headers=owner["headers"], json={"leads": leads})
    assert imported.json()["accepted"] == 8

    run_worker(ctx)

    shown = view(client, owner, cid)
    assert whatsapp_server.accepted() == 3 and attempts_of(ctx, cid) == 3  # the cap is spent on sends only
    assert shown["caps"]["today"] == 3
    assert shown["progress"]["completed"] == 3
    assert shown["progress"]["failed"] + shown["progress"]["not_contacted"] == 5
    assert shown["progress"]["failed"] >= 3  # those met before the third send, and none charged


def test_an_sms_over_ten_segments_once_rendered_fails_its_lead_before_twilio(ctx, client, owner, twilio_server):
    twilio_key(client, owner, twilio_server)
    cid = campaign(client, owner, [{"channel": "sms", "template": {"body": "Hi {{first_name}}: {{attributes.note}}"}}],
                   [{"phone": "+4915112345680", "first_name": "Ada", "attributes": {"note": "short"}},
                    {"phone": "+4915112345681", "first_name": "Bob", "attributes": {"note": "x" * 1600}}])
    start(client, owner, cid)

    run_worker(ctx)

    by_phone = leads_by_phone(client, owner, cid)
    assert by_phone["+4915112345681"]["last_error"] == "drumbeat:message_too_long"
    assert by_phone["+4915112345681"]["state"] == "failed"
    assert [r.body["Body"] for r in twilio_server.requests] == ["Hi Ada: short"]
    assert attempts_of(ctx, cid) == 1
    codes = {g["code"]: g["count"] for g in view(client, owner, cid)["errors"]}
    assert codes == {"drumbeat:message_too_long": 1}


def test_a_whatsapp_parameter_with_a_new_line_fails_its_lead_as_an_invalid_parameter(
        ctx, client, owner, whatsapp_server):
    whatsapp_key(client, owner, whatsapp_server)
    cid = campaign(client, owner, [TEMPLATE_STEP], [
        {"phone": "+4915112345690", "attributes": {"order": "A-1\nB-2"}},
        {"phone": "+4915112345691", "attributes": {"order": "A-2"}}])
    start(client, owner, cid)

    run_worker(ctx)

    by_phone = leads_by_phone(client, owner, cid)
    assert (by_phone["+4915112345690"]["state"], by_phone["+4915112345690"]["last_error"]) == (
        "failed", "drumbeat:invalid_parameter")
    assert by_phone["+4915112345691"]["state"] == "completed"
    assert whatsapp_server.calls(to="4915112345690") == [] and attempts_of(ctx, cid) == 1


def test_a_later_step_of_a_lead_whose_content_failed_never_runs(ctx, client, owner, whatsapp_server):
    whatsapp_key(client, owner, whatsapp_server)
    follow_up = {"channel": "whatsapp", "template": {"name": "follow_up", "language": "en"}, "delay_seconds": 0}
    cid = campaign(client, owner, [TEMPLATE_STEP, follow_up], [{"phone": "+4915112345699"}])
    start(client, owner, cid)

    run_worker(ctx)

    assert whatsapp_server.calls() == []
    assert leads_by_phone(client, owner, cid)["+4915112345699"]["current_step"] == 0


@pytest.mark.filterwarnings(QUIET_SMTP)
def test_an_email_with_html_is_multipart_alternative_with_the_variables_escaped_in_html(
        ctx, client, owner, smtp_server):
    integration(client, owner, {"channel": "email", "provider": "smtp", "config": smtp_server.config(),
                                "credentials": {"username": "mailer", "password": "s3cret-pass"}})
    step = {"channel": "email", "template": {
        "subject": "For {{attributes.company}}", "body": "Hi {{first_name}} of {{attributes.company}}",
        "html": "<p>Hi <b>{{first_name}}</b> of {{attributes.company}}</p>"}}
    cid = campaign(client, owner, [step], [
        {"email": "ada@example.org", "first_name": "Ada <admin>", "attributes": {"company": "Smith & Sons"}}])
    start(client, owner, cid)

    run_worker(ctx)

    (delivery,) = smtp_server.deliveries
    sent = delivery.message
    assert sent.get_content_type() == "multipart/alternative"
    assert sent["Subject"] == "For Smith & Sons"
    plain, html = sent.get_body(("plain",)), sent.get_body(("html",))
    assert plain.get_content().strip() == "Hi Ada <admin> of Smith & Sons"
    assert html.get_content().strip() == "<p>Hi <b>Ada &lt;admin&gt;</b> of Smith &amp; Sons</p>"


def test_a_voice_step_says_the_rendered_body_in_its_language_escaped_as_xml(ctx, client, owner, twilio_server):
    twilio_key(client, owner, twilio_server, channel="voice")
    step = {"channel": "voice", "template": {"body": "Hallo {{first_name}} & <Team>", "language": "de-DE"}}
    cid = campaign(client, owner, [step], [{"phone": "+4915112345601", "first_name": "Ada"}])
    start(client, owner, cid)

    run_worker(ctx)

    (request,) = twilio_server.requests
    assert request.body["Twiml"] == '<Response><Say language="de-DE">Hallo Ada &amp; &lt;Team&gt;</Say></Response>'
