"""STOP and START over the real callbacks (API.md v1.1 Consent, DESIGN.md §9), on both
databases, with the local fake Twilio and WhatsApp servers: a STOP suppresses the number
workspace-wide and no later campaign sends to it; START lifts it; a sentence is a reply."""

from __future__ import annotations

from sqlalchemy import select

from drumbeat.channels.inbound import sign_twilio
from drumbeat.services import campaigns as svc
from drumbeat.services import integrations as integration_service
from drumbeat.services import leads as lead_service
from drumbeat.services.suppressions import add_suppression
from drumbeat.services.workspaces import update_settings
from drumbeat.store.tables import consent_events, leads, suppressions
from tests.engine.test_provider_signals import run_worker
from tests.factory import new_campaign, workspace
from tests.fakes.providers import post_meta_webhook

SMS = {"channel": "sms", "template": {"body": "Hi {{first_name|there}}"}, "delay_seconds": 0}
LATER = {"channel": "sms", "template": {"body": "Still there?"}, "delay_seconds": 86_400}
PEOPLE = ["+4915123456701", "+4915123456702", "+4915123456703"]


def _twilio(ctx, p, twilio_server) -> str:
    return integration_service.create_integration(ctx, p, {
        "channel": "sms", "provider": "twilio", "label": "sms",
        "credentials": {"account_sid": "AC1", "auth_token": "tw-token"},
        "config": {"from": "+15005550006", "base_url": twilio_server.base_url}, "daily_cap": None})["id"]


def _campaign(ctx, p, name, phones, steps=None) -> str:
    cid = new_campaign(ctx, p, name=name, steps=steps or [SMS])
    lead_service.import_json(ctx, p, cid, [{"phone": phone} for phone in phones])
    svc.start(ctx, p, cid)
    return cid


def _inbound(client, key, sender, body):
    url = f"http://testserver/webhooks/twilio/{key}"
    form = {"MessageSid": f"SM{abs(hash((sender, body))):x}", "AccountSid": "AC1", "From": sender,
            "To": "+15005550006", "Body": body, "SmsStatus": "received"}
    r = client.post(url, data=form, headers={"X-Twilio-Signature": sign_twilio(url, form, "tw-token")})
    assert r.status_code == 200, r.text


def _states(ctx, cid):
    with ctx.db.connect() as conn:
        return dict(conn.execute(select(leads.c.phone, leads.c.state).where(leads.c.campaign_id == cid)).all())


def _suppressed(ctx):
    with ctx.db.connect() as conn:
        return {r.phone: r for r in conn.execute(select(suppressions))}


def test_stop_suppresses_the_number_and_no_later_campaign_sends_to_it_until_start(ctx, client, twilio_server):
    p = workspace(ctx)
    key = _twilio(ctx, p, twilio_server)
    first = _campaign(ctx, p, "First", PEOPLE, steps=[SMS, LATER])
    run_worker(ctx)
    assert [twilio_server.contacts(n) for n in PEOPLE] == [1, 1, 1]
    assert set(_states(ctx, first).values()) == {"in_progress"}

    _inbound(client, key, PEOPLE[0], "Stop.")
    _inbound(client, key, PEOPLE[1], "stop by tomorrow?")  # a sentence: a reply
    states = _states(ctx, first)
    assert states == {PEOPLE[0]: "opted_out", PEOPLE[1]: "replied", PEOPLE[2]: "in_progress"}
    entry = _suppressed(ctx)[PEOPLE[0]]
    with ctx.db.connect() as conn:
        stopper = conn.execute(select(leads.c.id).where(leads.c.campaign_id == first,
                                                        leads.c.phone == PEOPLE[0])).scalar_one()
    assert (entry.reason, entry.source_campaign_id, entry.source_lead_id, entry.source_channel) == (
        "stop_keyword", first, stopper, "sms")
    assert set(_suppressed(ctx)) == {PEOPLE[0]}
    view = svc.get_campaign(ctx, p, first)
    assert view["progress"]["opted_out"] == 1 and view["progress"]["replied"] == 1

    second = _campaign(ctx, p, "Second", PEOPLE)  # started after the STOP
    run_worker(ctx)
    assert _states(ctx, second) == {PEOPLE[0]: "opted_out", PEOPLE[1]: "completed", PEOPLE[2]: "completed"}
    assert [twilio_server.contacts(n) for n in PEOPLE] == [1, 2, 2]  # nothing more to the one who said stop

    _inbound(client, key, PEOPLE[0], "START")
    assert PEOPLE[0] not in _suppressed(ctx)
    assert _states(ctx, first)[PEOPLE[0]] == "opted_out"  # opting back in restarts nothing by itself
    third = _campaign(ctx, p, "Third", [PEOPLE[0]])
    run_worker(ctx)
    assert _states(ctx, third) == {PEOPLE[0]: "completed"} and twilio_server.contacts(PEOPLE[0]) == 2

    with ctx.db.connect() as conn:
        events = [(e.kind, e.address, e.lead_id, e.integration_id, e.channel, e.text)
                  for e in conn.execute(select(consent_events).order_by(consent_events.c.id))]
    assert events == [("opt_out", PEOPLE[0], stopper, key, "sms", "Stop."),
                      ("opt_in", PEOPLE[0], stopper, key, "sms", "START")]


def test_a_stop_from_a_number_that_is_no_lead_is_suppressed_and_kept(ctx, client, twilio_server):
    p = workspace(ctx)
    key = _twilio(ctx, p, twilio_server)
    _inbound(client, key, "+4915199999999", "UNSUBSCRIBE")
    entry = _suppressed(ctx)["+4915199999999"]
    assert entry.reason == "stop_keyword" and entry.source_lead_id is None and entry.source_channel == "sms"
    with ctx.db.connect() as conn:
        event = conn.execute(select(consent_events)).one()
    assert (event.kind, event.lead_id, event.text) == ("opt_out", None, "UNSUBSCRIBE")
    cid = _campaign(ctx, p, "Later", ["+4915199999999"])
    run_worker(ctx)
    assert _states(ctx, cid) == {"+4915199999999": "opted_out"} and twilio_server.contacts("+4915199999999") == 0


def test_a_finished_lead_keeps_its_state_and_is_named_as_the_source(ctx, client, twilio_server):
    p = workspace(ctx)
    key = _twilio(ctx, p, twilio_server)
    cid = _campaign(ctx, p, "Done", [PEOPLE[0]])
    run_worker(ctx)
    assert _states(ctx, cid) == {PEOPLE[0]: "completed"}
    _inbound(client, key, PEOPLE[0], "end")
    assert _states(ctx, cid) == {PEOPLE[0]: "completed"}
    assert _suppressed(ctx)[PEOPLE[0]].source_campaign_id == cid


def test_the_workspace_own_words_stop_and_start_in_its_language(ctx, client, twilio_server):
    p = workspace(ctx)
    key = _twilio(ctx, p, twilio_server)
    update_settings(ctx, p, {"opt_out_words": ["Abmelden"], "opt_in_words": ["anmelden"]})
    cid = _campaign(ctx, p, "De", PEOPLE[:1], steps=[SMS, LATER])
    run_worker(ctx)
    _inbound(client, key, PEOPLE[0], "ABMELDEN!")
    assert _states(ctx, cid) == {PEOPLE[0]: "opted_out"} and PEOPLE[0] in _suppressed(ctx)
    _inbound(client, key, PEOPLE[0], "Anmelden")
    assert PEOPLE[0] not in _suppressed(ctx)


def test_start_never_lifts_an_entry_made_for_another_reason(ctx, client, twilio_server):
    p = workspace(ctx)
    key = _twilio(ctx, p, twilio_server)
    add_suppression(ctx, p, {"phone": PEOPLE[0]})
    _inbound(client, key, PEOPLE[0], "start")
    assert _suppressed(ctx)[PEOPLE[0]].reason == "manual"


def _wa_button(sender, text, payload):
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": "42"},
        "contacts": [{"wa_id": sender, "profile": {"name": "Jo"}}],
        "messages": [{"from": sender, "id": "wamid.btn1", "timestamp": "1700000001", "type": "button",
                      "context": {"from": "15550783881", "id": "wamid.out"},
                      "button": {"text": text, "payload": payload}}]}}]}]}


def test_a_whatsapp_quick_reply_button_stop_opts_the_lead_out(ctx, client, whatsapp_server):
    p = workspace(ctx)
    key = integration_service.create_integration(ctx, p, {
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "wa",
        "credentials": {"access_token": "EAAG-token", "app_secret": "meta-secret"},
        "config": {"phone_number_id": "42", "base_url": f"{whatsapp_server.base_url}/v23.0"}, "daily_cap": None})["id"]
    steps = [{"channel": "whatsapp", "template": {"name": "promo", "language": "en", "body": "Hi"},
              "delay_seconds": 0},
             {"channel": "whatsapp", "template": {"name": "promo", "language": "en", "body": "Hi"},
              "delay_seconds": 86_400}]
    cid = _campaign(ctx, p, "WA", PEOPLE[:2], steps=steps)
    run_worker(ctx)
    assert _states(ctx, cid) == {PEOPLE[0]: "in_progress", PEOPLE[1]: "in_progress"}
    r = post_meta_webhook(client, key, _wa_button(PEOPLE[0].lstrip("+"), "Stop", "PROMO_STOP"), "meta-secret")
    assert r.status_code == 200, r.text
    r = post_meta_webhook(client, key, _wa_button(PEOPLE[1].lstrip("+"), "Tell me more", "MORE"), "meta-secret")
    assert _states(ctx, cid) == {PEOPLE[0]: "opted_out", PEOPLE[1]: "replied"}
    entry = _suppressed(ctx)[PEOPLE[0]]
    assert (entry.reason, entry.source_channel, entry.source_campaign_id) == ("stop_keyword", "whatsapp", cid)
