"""Provider opt-outs and bounces suppress the address workspace-wide (API.md v1.1 Consent),
on both databases, with the local fake Twilio and WhatsApp servers and an aiosmtpd server:
`twilio:21610` and `whatsapp:131050` → provider_opt_out; an SMTP 5.1.x refusal and a hard
bounce webhook → bounce; a 5.7.x policy refusal and a soft bounce never suppress."""

from __future__ import annotations

import json

from sqlalchemy import select

from drumbeat.channels.inbound import sign_sha256
from drumbeat.services import campaigns as svc
from drumbeat.services import integrations as integration_service
from drumbeat.services import leads as lead_service
from drumbeat.store.tables import attempts, leads, suppressions
from tests.engine.test_provider_signals import run_worker
from tests.factory import new_campaign, workspace

PEOPLE = ["+4915123456701", "+4915123456702", "+4915123456703"]
SMS = {"channel": "sms", "template": {"body": "Hi"}, "delay_seconds": 0}
WA = {"channel": "whatsapp", "template": {"name": "promo", "language": "en", "body": "Hi"}, "delay_seconds": 0}
EMAIL = {"channel": "email", "template": {"subject": "Hello", "body": "Hi"}, "delay_seconds": 0}


def _enrol(ctx, p, name, steps, people, field="phone", start=True) -> str:
    cid = new_campaign(ctx, p, name=name, steps=steps)
    lead_service.import_json(ctx, p, cid, [{field: a} for a in people])
    if start:
        svc.start(ctx, p, cid)
    return cid


def _states(ctx, cid, field="phone"):
    with ctx.db.connect() as conn:
        return dict(conn.execute(select(leads.c[field], leads.c.state).where(leads.c.campaign_id == cid)).all())


def _entries(ctx):
    with ctx.db.connect() as conn:
        return [dict(r) for r in conn.execute(select(suppressions).order_by(suppressions.c.id)).mappings()]


def _lead_id(ctx, cid, field, address):
    with ctx.db.connect() as conn:
        return conn.execute(select(leads.c.id).where(leads.c.campaign_id == cid, leads.c[field] == address)
                            ).scalar_one()


def test_twilio_21610_suppresses_the_number_in_every_campaign_of_the_workspace(ctx, twilio_server):
    p = workspace(ctx)
    integration_service.create_integration(ctx, p, {
        "channel": "sms", "provider": "twilio", "label": "sms", "credentials": {"account_sid": "AC1",
                                                                                 "auth_token": "tok"},
        "config": {"from": "+15005550006", "base_url": twilio_server.base_url}, "daily_cap": None})
    waiting = _enrol(ctx, p, "Waiting", [SMS], PEOPLE, start=False)  # not sending yet
    first = _enrol(ctx, p, "First", [SMS], PEOPLE)
    twilio_server.fail_recipient(PEOPLE[1], code=21610)
    run_worker(ctx)
    assert _states(ctx, first) == {PEOPLE[0]: "completed", PEOPLE[1]: "opted_out", PEOPLE[2]: "completed"}
    assert _states(ctx, waiting) == {PEOPLE[0]: "not_contacted", PEOPLE[1]: "opted_out",
                                     PEOPLE[2]: "not_contacted"}
    [entry] = _entries(ctx)
    assert (entry["phone"], entry["reason"], entry["source_campaign_id"], entry["source_channel"]) == (
        PEOPLE[1], "provider_opt_out", first, "sms")
    assert entry["source_lead_id"] == _lead_id(ctx, first, "phone", PEOPLE[1])
    twilio_server.restore_recipient(PEOPLE[1])
    svc.start(ctx, p, waiting)
    run_worker(ctx)
    assert twilio_server.contacts(PEOPLE[1]) == 1 and twilio_server.contacts(PEOPLE[0]) == 2
    assert svc.get_campaign(ctx, p, waiting)["progress"]["opted_out"] == 1


def test_whatsapp_131050_suppresses_the_number(ctx, whatsapp_server):
    p = workspace(ctx)
    integration_service.create_integration(ctx, p, {
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "wa", "credentials": {"access_token": "EAAG"},
        "config": {"phone_number_id": "42", "base_url": f"{whatsapp_server.base_url}/v23.0"}, "daily_cap": None})
    cid = _enrol(ctx, p, "WA", [WA], PEOPLE[:2])
    whatsapp_server.fail_recipient(PEOPLE[0], code=131050)
    run_worker(ctx)
    assert _states(ctx, cid) == {PEOPLE[0]: "opted_out", PEOPLE[1]: "completed"}
    assert whatsapp_server.accepted(to=PEOPLE[1]) == 1
    assert [(e["phone"], e["reason"], e["source_channel"]) for e in _entries(ctx)] == [
        (PEOPLE[0], "provider_opt_out", "whatsapp")]
    view = svc.get_campaign(ctx, p, cid)
    assert view["breakdown"]["failed"] == 0 and view["progress"]["opted_out"] == 1


def test_an_smtp_5_1_1_refusal_fails_the_lead_and_suppresses_the_address_but_5_7_1_does_not(ctx, smtp_server):
    p = workspace(ctx)
    integration_service.create_integration(ctx, p, {
        "channel": "email", "provider": "smtp", "label": "mail",
        "credentials": {"username": "mailer", "password": "s3cret-pass"}, "config": smtp_server.config(),
        "daily_cap": None})
    people = ["gone@example.com", "policy@example.com", "fine@example.com"]
    smtp_server.refuse_recipient("gone@example.com")  # 550 5.1.1 User unknown
    smtp_server.refuse_recipient("policy@example.com", 550, "5.7.1 Message refused by policy")
    later = _enrol(ctx, p, "Later", [EMAIL], people, field="email", start=False)
    cid = _enrol(ctx, p, "Mail", [EMAIL], people, field="email")
    run_worker(ctx)
    assert _states(ctx, cid, "email") == {"gone@example.com": "failed", "policy@example.com": "failed",
                                          "fine@example.com": "completed"}
    with ctx.db.connect() as conn:
        codes = dict(conn.execute(select(leads.c.email, attempts.c.error_class).join(
            attempts, attempts.c.lead_id == leads.c.id).where(leads.c.campaign_id == cid)).all())
    assert codes["gone@example.com"] == "lead"
    [entry] = _entries(ctx)
    assert (entry["email"], entry["reason"], entry["source_campaign_id"], entry["source_channel"]) == (
        "gone@example.com", "bounce", cid, "email")
    assert _states(ctx, later, "email") == {"gone@example.com": "opted_out", "policy@example.com": "not_contacted",
                                            "fine@example.com": "not_contacted"}


def test_only_a_hard_bounce_webhook_suppresses(ctx, client, smtp_server):
    p = workspace(ctx)
    key = integration_service.create_integration(ctx, p, {
        "channel": "email", "provider": "smtp", "label": "mail",
        "credentials": {"username": "mailer", "password": "s3cret-pass", "inbound_secret": "in-secret"},
        "config": smtp_server.config(), "daily_cap": None})["id"]
    people = ["hard@example.com", "soft@example.com", "unsaid@example.com"]
    cid = _enrol(ctx, p, "Mail", [EMAIL, {**EMAIL, "delay_seconds": 86_400}], people, field="email")
    run_worker(ctx)
    with ctx.db.connect() as conn:
        message_ids = dict(conn.execute(select(leads.c.email, attempts.c.provider_message_id).join(
            attempts, attempts.c.lead_id == leads.c.id).where(leads.c.campaign_id == cid)).all())

    def bounce(address, **extra):
        body = json.dumps({"type": "bounce", "message_id": message_ids[address], **extra}).encode()
        r = client.post(f"/webhooks/email/{key}", content=body,
                        headers={"X-Drumbeat-Signature": sign_sha256(body, "in-secret")})
        assert r.status_code == 200, r.text

    bounce("hard@example.com", kind="hard", reason="550 5.1.1 user unknown")
    bounce("soft@example.com", kind="soft", reason="452 mailbox full")
    bounce("unsaid@example.com")
    assert set(_states(ctx, cid, "email").values()) == {"failed"}
    assert [(e["email"], e["reason"], e["source_campaign_id"]) for e in _entries(ctx)] == [
        ("hard@example.com", "bounce", cid)]
