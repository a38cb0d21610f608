"""Replies kept (API.md v1.1, Learning what works): inbound messages through the signed
webhooks are stored with their text and linked to the lead, the step and the campaign;
the inbox lists them newest first with filters; marking one handled is an operator's
action with an audit entry; the lead detail shows the whole conversation."""

from __future__ import annotations

import json
import logging

from sqlalchemy import func, insert, select

from drumbeat.channels.inbound import sign_sha256, sign_twilio
from drumbeat.store.tables import attempts, audit_events, ignored_inbound, leads, replies
from drumbeat.store.workspaces import insert_user
from tests.api.test_callbacks import NOW, WhatsApp, integration, lead_row, sent_lead
from tests.factory import new_campaign, workspace


def token(ctx, principal, role, email=None):
    with ctx.db.begin() as conn:
        _, secret = insert_user(conn, principal.workspace_id, email or f"{role}@x.example", role, None, NOW)
    return {"Authorization": f"Bearer {secret}"}


def wa_inbound(sender="14155550100", message_id="wamid.in1", context=None, **message):
    body = {"from": sender, "id": message_id, "timestamp": "1772445903", **message}
    if context:
        body["context"] = {"from": "1", "id": context}
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "42"},
        "contacts": [{"wa_id": sender, "profile": {"name": "Jo"}}], "messages": [body]}}]}]}


def text_message(text, **kw):
    return wa_inbound(type="text", text={"body": text}, **kw)


def count(ctx, table):
    with ctx.db.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_whatsapp_reply_is_kept_with_its_text_step_and_campaign_and_shows_in_the_inbox(ctx, client):
    wa = WhatsApp(ctx, client)
    lead_id = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1")
    viewer = token(ctx, wa.p, "viewer")
    assert wa.post(text_message("Sounds <b>good</b>, call me")).status_code == 200
    items = client.get("/api/v1/replies", headers=viewer).json()["items"]
    assert len(items) == 1
    reply = items[0]
    assert {k: reply[k] for k in ("campaign_id", "lead_id", "channel", "text", "handled", "kind", "step")} == {
        "campaign_id": wa.campaign, "lead_id": str(lead_id), "channel": "whatsapp",
        "text": "Sounds <b>good</b>, call me", "handled": False, "kind": "reply", "step": 0}
    assert reply["at"].endswith("+00:00") and lead_row(ctx, lead_id)["state"] == "replied"


def test_a_webhook_delivered_twice_keeps_one_reply(ctx, client):
    wa = WhatsApp(ctx, client)
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1")
    for _ in range(2):
        assert wa.post(text_message("yes please", message_id="wamid.same")).status_code == 200
    assert count(ctx, replies) == 1
    assert wa.post(text_message("and one more thing", message_id="wamid.other")).status_code == 200
    assert count(ctx, replies) == 2


def test_button_and_media_replies_keep_the_button_text_and_the_media_reference(ctx, client):
    wa = WhatsApp(ctx, client)
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1")
    viewer = token(ctx, wa.p, "viewer")
    wa.post(wa_inbound(message_id="wamid.b", type="button", button={"text": "Yes, call me", "payload": "YES"}))
    wa.post(wa_inbound(message_id="wamid.m", type="image",
                       image={"id": "1234567890", "mime_type": "image/jpeg", "caption": "my invoice"}))
    wa.post(wa_inbound(message_id="wamid.d", type="document", document={"id": "555", "filename": "cv.pdf"}))
    items = client.get("/api/v1/replies", headers=viewer).json()["items"]
    assert [(i["text"], i["media"]) for i in items] == [
        (None, {"type": "document", "id": "555", "filename": "cv.pdf"}),
        ("my invoice", {"type": "image", "id": "1234567890", "mime_type": "image/jpeg", "caption": "my invoice"}),
        ("Yes, call me", None)]


def test_an_opt_out_is_kept_and_flagged_as_one_and_the_lead_is_opted_out_not_replied(ctx, client):
    wa = WhatsApp(ctx, client)
    lead_id = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1")
    viewer = token(ctx, wa.p, "viewer")
    wa.post(text_message(" Stop "))
    [item] = client.get("/api/v1/replies", headers=viewer).json()["items"]
    assert item["kind"] == "opt_out" and item["text"] == " Stop " and item["lead_id"] == str(lead_id)
    assert lead_row(ctx, lead_id)["state"] == "opted_out"


def test_a_message_from_an_unknown_sender_is_kept_only_as_an_ignored_provider_event(ctx, client):
    wa = WhatsApp(ctx, client)
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1", phone="+14155550100")
    other = sent_lead(ctx, new_campaign(ctx, wa.p, name="Other"), wa.key, message_id="wamid.out2",
                      phone="+14155550199")
    assert wa.post(text_message("who are you?", sender="14155550777", message_id="wamid.x")).status_code == 200
    assert count(ctx, replies) == 0
    with ctx.db.connect() as conn:
        [event] = conn.execute(select(ignored_inbound)).mappings().all()
    assert event["reason"] == "unknown_lead" and event["channel"] == "whatsapp" and event["integration_id"] == wa.key
    assert event["provider_message_id"] == "wamid.x" and len(event["address_hash"]) == 64
    assert "who are you" not in json.dumps({k: str(v) for k, v in event.items()})
    assert lead_row(ctx, other)["state"] == "in_progress"


def test_a_reply_quoting_our_message_belongs_to_that_lead_even_if_another_was_written_to_later(ctx, client):
    wa = WhatsApp(ctx, client)
    first = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.A")
    later_campaign = new_campaign(ctx, wa.p, name="Later")
    later = sent_lead(ctx, later_campaign, wa.key, message_id="wamid.B")  # same phone, written to last
    viewer = token(ctx, wa.p, "viewer")
    wa.post(text_message("about your first message", context="wamid.A", message_id="wamid.q1"))
    wa.post(text_message("no quote", message_id="wamid.q2"))
    items = client.get("/api/v1/replies", headers=viewer).json()["items"]
    assert [(i["text"], i["lead_id"], i["campaign_id"]) for i in items] == [
        ("no quote", str(later), later_campaign), ("about your first message", str(first), wa.campaign)]


def test_twilio_sms_and_email_replies_are_kept_with_their_text(ctx, client):
    p = workspace(ctx)
    viewer = token(ctx, p, "viewer")
    sms_key = integration(ctx, p, "twilio", "sms", {"account_sid": "AC1", "auth_token": "tw"}, {"from": "+14155550000"})
    cid = new_campaign(ctx, p, steps=[{"channel": "sms", "template": {"body": "Hi"}, "delay_seconds": 0}])
    sms_lead = sent_lead(ctx, cid, sms_key, message_id="SM1", channel="sms")
    url = f"http://testserver/webhooks/twilio/{sms_key}"
    form = {"MessageSid": "SMin", "From": "+14155550100", "To": "+14155550000", "Body": "=1+1 who is this?",
            "SmsStatus": "received"}
    assert client.post(url, data=form, headers={"X-Twilio-Signature": sign_twilio(url, form, "tw")}).status_code == 200
    mail_key = integration(ctx, p, "smtp", "email", {"username": "u", "password": "pw", "inbound_secret": "in"},
                           {"host": "127.0.0.1", "port": 2525, "from": "sales@acme.example"})
    mail_campaign = new_campaign(ctx, p, name="Mail", steps=[
        {"channel": "email", "template": {"subject": "Hi", "body": "Hi"}, "delay_seconds": 0}])
    mail_lead = sent_lead(ctx, mail_campaign, mail_key, message_id="<1@drumbeat>", phone=None,
                          email="jo@example.com", channel="email")
    body = json.dumps({"type": "reply", "message_id": "<1@drumbeat>", "text": "Interested!"}).encode()
    assert client.post(f"/webhooks/email/{mail_key}", content=body,
                       headers={"X-Drumbeat-Signature": sign_sha256(body, "in")}).status_code == 200
    items = client.get("/api/v1/replies", headers=viewer).json()["items"]
    assert [(i["channel"], i["lead_id"], i["text"]) for i in items] == [
        ("email", str(mail_lead), "Interested!"), ("sms", str(sms_lead), "=1+1 who is this?")]
    # A reply by message id alone (no sender given) stops its lead too.
    assert lead_row(ctx, mail_lead)["state"] == "replied" and lead_row(ctx, sms_lead)["state"] == "replied"


def _three_replies(ctx, client):
    wa = WhatsApp(ctx, client)
    second_campaign = new_campaign(ctx, wa.p, name="Second")
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.o1", phone="+14155550101")
    sent_lead(ctx, second_campaign, wa.key, message_id="wamid.o2", phone="+14155550102")
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.o3", phone="+14155550103")
    for n in (1, 2, 3):
        wa.post(text_message(f"reply {n}", sender=f"1415555010{n}", message_id=f"wamid.r{n}"))
    return wa, second_campaign


def test_the_inbox_is_newest_first_filtered_and_paged(ctx, client):
    wa, second = _three_replies(ctx, client)
    viewer = token(ctx, wa.p, "viewer")

    def texts(**params):
        answer = client.get("/api/v1/replies", params=params, headers=viewer)
        assert answer.status_code == 200, answer.text
        return [i["text"] for i in answer.json()["items"]], answer.json()["next_cursor"]

    assert texts() == (["reply 3", "reply 2", "reply 1"], None)
    assert texts(campaign_id=wa.campaign) == (["reply 3", "reply 1"], None)
    assert texts(campaign_id=second) == (["reply 2"], None)
    assert texts(channel="sms") == ([], None)
    assert texts(channel="whatsapp")[0] == ["reply 3", "reply 2", "reply 1"]
    page, cursor = texts(limit=2)
    assert page == ["reply 3", "reply 2"] and cursor
    assert texts(limit=2, cursor=cursor) == (["reply 1"], None)
    reply_2 = client.get("/api/v1/replies", params={"campaign_id": second}, headers=viewer).json()["items"][0]["id"]
    operator = token(ctx, wa.p, "operator")
    assert client.post(f"/api/v1/replies/{reply_2}/handled", headers=operator).status_code == 200
    assert texts(handled="false")[0] == ["reply 3", "reply 1"]
    assert texts(handled="true")[0] == ["reply 2"]
    assert client.get("/api/v1/replies", params={"channel": "fax"}, headers=viewer).status_code == 422


def test_another_workspace_sees_none_of_the_replies_and_its_campaign_id_is_not_found(ctx, client):
    wa, _ = _three_replies(ctx, client)
    stranger = token(ctx, workspace(ctx, "Globex"), "owner", "owner2@globex.example")
    assert client.get("/api/v1/replies", headers=stranger).json() == {"items": [], "next_cursor": None}
    answer = client.get("/api/v1/replies", params={"campaign_id": wa.campaign}, headers=stranger)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    reply_id = client.get("/api/v1/replies", headers=token(ctx, wa.p, "viewer")).json()["items"][0]["id"]
    refused = client.post(f"/api/v1/replies/{reply_id}/handled", headers=stranger)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert client.post("/api/v1/replies/not-an-id/handled", headers=stranger).status_code == 404


def test_marking_handled_is_for_operators_writes_one_audit_entry_and_is_idempotent(ctx, client):
    wa, _ = _three_replies(ctx, client)
    viewer, operator = token(ctx, wa.p, "viewer"), token(ctx, wa.p, "operator")
    reply_id = client.get("/api/v1/replies", headers=viewer).json()["items"][0]["id"]
    refused = client.post(f"/api/v1/replies/{reply_id}/handled", headers=viewer)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/replies", params={"handled": "true"}, headers=viewer).json()["items"] == []
    done = client.post(f"/api/v1/replies/{reply_id}/handled", headers=operator)
    assert done.status_code == 200 and done.json()["handled"] is True and done.json()["handled_at"]
    again = client.post(f"/api/v1/replies/{reply_id}/handled", headers=operator)
    assert again.status_code == 200 and again.json() == done.json()
    with ctx.db.connect() as conn:
        entries = conn.execute(select(audit_events).where(audit_events.c.object_type == "reply")).mappings().all()
    assert len(entries) == 1 and entries[0]["object_id"] == reply_id and entries[0]["action"] == "updated"
    assert entries[0]["details"]["changes"] == {"handled": {"from": False, "to": True}}
    owner = token(ctx, wa.p, "owner", "owner@x.example")
    audit = client.get("/api/v1/audit", params={"object_type": "reply"}, headers=owner).json()["items"]
    assert [e["object_id"] for e in audit] == [reply_id]


def test_the_lead_detail_shows_the_conversation_oldest_first(ctx, client):
    wa = WhatsApp(ctx, client)
    lead_id = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1")
    with ctx.db.begin() as conn:  # a key-level refusal never reached the person: not part of it
        conn.execute(insert(attempts).values(
            lead_id=lead_id, campaign_id=wa.campaign, step=0, channel="whatsapp", integration_id=wa.key, run=1,
            idempotency_key=f"{lead_id}:0:0", status="key_error", created_at=NOW, updated_at=NOW))
    wa.post(text_message("first answer", message_id="wamid.i1"))
    wa.post(text_message("second answer", message_id="wamid.i2"))
    viewer = token(ctx, wa.p, "viewer")
    detail = client.get(f"/api/v1/campaigns/{wa.campaign}/leads/{lead_id}", headers=viewer).json()
    talk = detail["conversation"]
    assert [(m["direction"], m["text"], m["step"]) for m in talk] == [
        ("out", None, 0), ("in", "first answer", 0), ("in", "second answer", 0)]
    assert talk[0]["status"] == "sent" and talk[1]["kind"] == "reply" and talk[1]["handled"] is False
    assert talk[0]["at"] <= talk[1]["at"] <= talk[2]["at"]


def test_an_erasure_forgets_what_the_person_wrote_but_keeps_that_they_replied(ctx, client):
    wa = WhatsApp(ctx, client)
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1")
    wa.post(wa_inbound(type="image", image={"id": "99", "caption": "my passport"}))
    owner = token(ctx, wa.p, "owner", "owner@x.example")
    assert client.post("/api/v1/erasures", json={"phone": "+14155550100"}, headers=owner).status_code == 200
    [item] = client.get("/api/v1/replies", headers=owner).json()["items"]
    assert item["text"] is None and item["media"] is None and item["kind"] == "reply"


def test_reply_text_is_never_logged(ctx, client, caplog, capsys):
    wa = WhatsApp(ctx, client)
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1")
    caplog.set_level(logging.DEBUG)
    wa.post(text_message("my secret answer 4711"))
    wa.post(text_message("my secret answer 4711", sender="14155550777", message_id="wamid.unknown"))
    assert count(ctx, replies) == 1
    captured = capsys.readouterr()
    assert "4711" not in caplog.text and "4711" not in captured.out and "4711" not in captured.err


def test_a_reply_without_any_lead_state_change_is_still_kept_for_a_finished_lead(ctx, client):
    wa = WhatsApp(ctx, client)
    lead_id = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1", state="failed")
    wa.post(text_message("late answer"))
    with ctx.db.connect() as conn:
        kept = conn.execute(select(replies.c.lead_id, replies.c.text)).all()
        state = conn.execute(select(leads.c.state).where(leads.c.id == lead_id)).scalar_one()
    assert [tuple(r) for r in kept] == [(lead_id, "late answer")] and state == "failed"


def test_text_no_database_can_keep_is_cleaned_not_a_500(ctx, client):
    wa = WhatsApp(ctx, client)
    sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.out1")
    raw = ('{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", '
           '"value": {"messages": [{"from": "14155550100", "id": "wamid.nul", "type": "image", "image": '
           '{"id": "7\\u0000", "caption": "a\\u0000b \\ud800 ' + "x" * 20_000 + '"}}]}}]}]}').encode()
    answer = client.post(f"/webhooks/whatsapp/{wa.key}", content=raw, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": sign_sha256(raw, "meta-secret")})
    assert answer.status_code == 200, answer.text
    with ctx.db.connect() as conn:
        text, media = conn.execute(select(replies.c.text, replies.c.media)).one()
    assert text.startswith("ab ? xxx") and len(text) == 10_000 and media["id"] == "7"
