"""Provider callbacks: signatures checked, receipts forward-only and idempotent, replies stop
the sequence, accepted invitations release the waiting step."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from drumbeat.channels.inbound import sign_sha256, sign_twilio
from drumbeat.services import integrations as integration_service
from drumbeat.store.tables import attempts, integrations, leads, provider_messages
from tests.factory import new_campaign, workspace

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def integration(ctx, p, provider, channel, credentials, config):
    return integration_service.create_integration(ctx, p, {
        "channel": channel, "provider": provider, "label": provider, "credentials": credentials,
        "config": config, "daily_cap": None})["id"]


def sent_lead(ctx, campaign_id, integration_id, *, message_id, phone="+14155550100", email=None,
              linkedin_url=None, state="in_progress", step=0, status="sent", channel="whatsapp") -> int:
    with ctx.db.begin() as conn:
        lead_id = conn.execute(insert(leads).values(
            campaign_id=campaign_id, phone=phone, email=email, linkedin_url=linkedin_url, attributes={},
            state=state, current_step=step + 1, next_action_at=NOW, created_at=NOW, updated_at=NOW)
        ).inserted_primary_key[0]
        attempt_id = conn.execute(insert(attempts).values(
            lead_id=lead_id, campaign_id=campaign_id, step=step, channel=channel, integration_id=integration_id,
            run=1, idempotency_key=f"{lead_id}:{step}:1", status=status, provider_message_id=message_id,
            created_at=NOW, updated_at=NOW)).inserted_primary_key[0]
        if message_id is not None:  # as the worker records an answer (store.claims.write_outcomes)
            conn.execute(insert(provider_messages).values(attempt_id=attempt_id, provider_message_id=message_id))
    return lead_id


def attempt_status(ctx, message_id):
    with ctx.db.connect() as conn:
        return conn.execute(select(attempts.c.status).where(attempts.c.provider_message_id == message_id)).scalar()


def lead_row(ctx, lead_id):
    with ctx.db.connect() as conn:
        return conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().first()


def wa_status(message_id, status, error=None):
    s = {"id": message_id, "status": status, "timestamp": "1700000000", "recipient_id": "14155550100"}
    if error:
        s["errors"] = [error]
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "42"},
        "statuses": [s]}}]}]}


def wa_message(sender):
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "42"},
        "contacts": [{"wa_id": sender, "profile": {"name": "Jo"}}],
        "messages": [{"from": sender, "id": "wamid.in1", "timestamp": "1700000001", "type": "text",
                      "text": {"body": "Stop please"}}]}}]}]}


class WhatsApp:
    def __init__(self, ctx, client):
        self.p = workspace(ctx)
        self.ctx, self.client = ctx, client
        self.key = integration(ctx, self.p, "whatsapp_cloud", "whatsapp", {"access_token": "EAAG-token",
                               "app_secret": "meta-secret"}, {"phone_number_id": "42"})
        self.campaign = new_campaign(ctx, self.p)

    def post(self, payload, secret="meta-secret", header=True):
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if header:
            headers["X-Hub-Signature-256"] = sign_sha256(body, secret)
        return self.client.post(f"/webhooks/whatsapp/{self.key}", content=body, headers=headers)


def test_whatsapp_receipts_move_forward_only_and_ignore_duplicates_and_reordering(ctx, client):
    wa = WhatsApp(ctx, client)
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.1")
    assert wa.post(wa_status("wamid.1", "delivered")).status_code == 200
    assert attempt_status(ctx, "wamid.1") == "delivered"
    assert wa.post(wa_status("wamid.1", "delivered")).json()["changed"] == 0  # duplicate
    assert wa.post(wa_status("wamid.1", "read")).status_code == 200
    assert wa.post(wa_status("wamid.1", "delivered")).json()["changed"] == 0  # late, out of order
    assert wa.post(wa_status("wamid.1", "sent")).json()["changed"] == 0
    assert attempt_status(ctx, "wamid.1") == "read"


def test_a_bad_or_missing_whatsapp_signature_is_refused_and_changes_nothing(ctx, client):
    wa = WhatsApp(ctx, client)
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.2")
    forged = wa.post(wa_status("wamid.2", "read"), secret="guess")
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "unauthorized"
    assert wa.post(wa_status("wamid.2", "read"), header=False).status_code == 401
    assert attempt_status(ctx, "wamid.2") == "sent"


def test_a_failed_receipt_fails_a_lead_that_is_not_terminal(ctx, client):
    wa = WhatsApp(ctx, client)
    lead_id = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.3")
    done_id = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.4", phone="+14155550101", state="completed")
    error = {"code": 131026, "title": "Message undeliverable"}
    assert wa.post(wa_status("wamid.3", "failed", error)).status_code == 200
    assert wa.post(wa_status("wamid.4", "failed", error)).status_code == 200
    assert attempt_status(ctx, "wamid.3") == "failed"
    assert lead_row(ctx, lead_id)["state"] == "failed" and lead_row(ctx, lead_id)["last_error"] == "whatsapp:131026"
    assert lead_row(ctx, done_id)["state"] == "completed"  # terminal leads stay as they are
    view = client.get(f"/api/v1/campaigns/{wa.campaign}", headers=_auth(ctx, wa.p)).json()
    assert view["breakdown"]["failed"] == 2 and view["errors"][0]["code"] == "whatsapp:131026"


def test_an_inbound_whatsapp_message_marks_the_lead_replied_and_stops_its_sequence(ctx, client):
    wa = WhatsApp(ctx, client)
    lead_id = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.5", phone="+14155550199")
    with ctx.db.begin() as conn:  # the lead is mid-send on another worker
        conn.execute(update(leads).where(leads.c.id == lead_id).values(lease_owner="w1", lease_expires_at=NOW))
    assert wa.post(wa_message("14155550199")).json()["changed"] == 1
    row = lead_row(ctx, lead_id)
    assert row["state"] == "replied" and row["lease_owner"] is None
    assert wa.post(wa_message("14155550199")).json()["changed"] == 0  # a second reply changes nothing


def test_unknown_message_ids_are_acknowledged_and_ignored(ctx, client):
    wa = WhatsApp(ctx, client)
    answer = wa.post(wa_status("wamid.nobody", "read"))
    assert answer.status_code == 200 and answer.json() == {"events": 1, "changed": 0}


def test_a_callback_for_an_unknown_integration_is_not_found(ctx, client):
    body = json.dumps(wa_status("x", "read")).encode()
    answer = client.post("/webhooks/whatsapp/doesnotexist", content=body,
                         headers={"X-Hub-Signature-256": sign_sha256(body, "meta-secret")})
    assert answer.status_code == 404


def test_twilio_status_callbacks_and_inbound_sms_are_signature_checked(ctx, client):
    p = workspace(ctx)
    key = integration(ctx, p, "twilio", "sms", {"account_sid": "AC123", "auth_token": "tw-token"},
                      {"from": "+14155550000"})
    cid = new_campaign(ctx, p, steps=[{"channel": "sms", "template": {"body": "Hi"}, "delay_seconds": 0}])
    lead_id = sent_lead(ctx, cid, key, message_id="SM1", channel="sms")
    url = f"http://testserver/webhooks/twilio/{key}"
    form = {"MessageSid": "SM1", "MessageStatus": "delivered", "AccountSid": "AC123"}
    bad = client.post(url, data=form, headers={"X-Twilio-Signature": "AAAA"})
    assert bad.status_code == 401 and attempt_status(ctx, "SM1") == "sent"
    good = client.post(url, data=form, headers={"X-Twilio-Signature": sign_twilio(url, form, "tw-token")})
    assert good.status_code == 200 and attempt_status(ctx, "SM1") == "delivered"
    inbound = {"MessageSid": "SM9", "From": "+14155550100", "To": "+14155550000", "Body": "who is this?",
               "SmsStatus": "received"}
    client.post(url, data=inbound, headers={"X-Twilio-Signature": sign_twilio(url, inbound, "tw-token")})
    assert lead_row(ctx, lead_id)["state"] == "replied"


def test_email_replies_and_bounces(ctx, client):
    p = workspace(ctx)
    key = integration(ctx, p, "smtp", "email", {"username": "u", "password": "pw", "inbound_secret": "in-secret"},
                      {"host": "127.0.0.1", "port": 2525, "from": "sales@acme.example"})
    cid = new_campaign(ctx, p, steps=[{"channel": "email", "template": {"subject": "Hi", "body": "Hi"},
                                       "delay_seconds": 0}])
    replier = sent_lead(ctx, cid, key, message_id="<1@drumbeat>", phone=None, email="jo@example.com", channel="email")
    bouncer = sent_lead(ctx, cid, key, message_id="<2@drumbeat>", phone=None, email="gone@example.com",
                        channel="email")

    def post(payload, secret="in-secret"):
        body = json.dumps(payload).encode()
        return client.post(f"/webhooks/email/{key}", content=body,
                           headers={"X-Drumbeat-Signature": sign_sha256(body, secret)})

    assert post({"type": "reply", "from": "Jo@Example.com"}, secret="nope").status_code == 401
    assert post({"type": "reply", "from": "Jo@Example.com"}).status_code == 200
    assert post({"type": "bounce", "message_id": "<2@drumbeat>", "reason": "mailbox unknown"}).status_code == 200
    assert lead_row(ctx, replier)["state"] == "replied"
    assert lead_row(ctx, bouncer)["state"] == "failed" and lead_row(ctx, bouncer)["last_error"] == "email:bounce"


def test_unipile_events_accept_invitations_reply_and_change_account_health(ctx, client):
    p = workspace(ctx)
    key = integration(ctx, p, "unipile", "linkedin", {"api_key": "uni-key"},
                      {"account_id": "acc1", "base_url": "http://127.0.0.1:9"})
    cid = new_campaign(ctx, p, steps=[
        {"channel": "linkedin", "template": {"action": "invite", "body": "Hi"}, "delay_seconds": 0},
        {"channel": "linkedin", "template": {"action": "message", "body": "Thanks", "wait_seconds": 3600},
         "delay_seconds": 0}])
    waiting = sent_lead(ctx, cid, key, message_id="inv1", phone=None, linkedin_url="https://www.linkedin.com/in/jo/",
                        channel="linkedin")
    with ctx.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id == waiting).values(awaiting="acceptance"))

    def post(payload):
        body = json.dumps(payload).encode()
        return client.post(f"/webhooks/unipile/{key}", content=body,
                           headers={"X-Drumbeat-Signature": sign_sha256(body, "uni-key")})

    assert post({"event": "new_relation", "account_id": "acc1",
                 "user_profile_url": "https://linkedin.com/in/jo"}).json()["changed"] == 1
    assert lead_row(ctx, waiting)["awaiting"] is None
    assert post({"event": "message_received", "account_id": "acc1",
                 "sender": {"attendee_profile_url": "https://www.linkedin.com/in/JO"}}).json()["changed"] == 1
    assert lead_row(ctx, waiting)["state"] == "replied"
    assert post({"AccountStatus": {"account_id": "acc1", "message": "CREDENTIALS"}}).json()["changed"] == 1
    with ctx.db.connect() as conn:
        assert conn.execute(select(integrations.c.health).where(integrations.c.id == key)).scalar() == "disconnected"


def _auth(ctx, principal):
    from drumbeat.store.workspaces import insert_user

    with ctx.db.begin() as conn:
        _, token = insert_user(conn, principal.workspace_id, "viewer@x.example", "viewer", None, NOW)
    return {"Authorization": f"Bearer {token}"}
