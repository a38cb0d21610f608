"""SMS auto-replies (API.md v1.1 Consent: workspace `auto_replies`), on both databases with
the local fake Twilio: off by default; when set, one answer per STOP and per HELP/INFO,
through the integration that received it, touching no attempt, counter or cap."""

from __future__ import annotations

from sqlalchemy import func, select

from drumbeat.services import campaigns as svc
from drumbeat.services import integrations as integration_service
from drumbeat.services.workspaces import update_settings
from drumbeat.store.tables import attempts, campaign_counts, send_counters
from tests.engine.test_provider_signals import run_worker
from tests.engine.test_stop_keyword import LATER, PEOPLE, SMS, _campaign, _inbound, _twilio, _wa_button
from tests.factory import workspace
from tests.fakes.providers import post_meta_webhook

STOP_TEXT = "You will get no more messages from Acme. Reply START to opt back in."
HELP_TEXT = "Acme outreach: reply STOP to stop, or call +49 30 1234567."


def _bodies(twilio_server, to):
    return [c.body["Body"] for c in twilio_server.calls(to=to, kind="sms")]


def _bookkeeping(ctx):
    """Attempts, send counters and the send metrics (lead states change, of course)."""
    sends = ~campaign_counts.c.metric.startswith("lead:") & ~campaign_counts.c.metric.startswith("step:")
    with ctx.db.connect() as conn:
        return (conn.execute(select(func.count()).select_from(attempts)).scalar_one(),
                sorted(tuple(r) for r in conn.execute(select(send_counters))),
                conn.execute(select(campaign_counts.c.metric, func.sum(campaign_counts.c.n)).where(sends)
                             .group_by(campaign_counts.c.metric).order_by(campaign_counts.c.metric)).all())


def test_no_auto_reply_unless_the_workspace_sets_one(ctx, client, twilio_server):
    p = workspace(ctx)
    key = _twilio(ctx, p, twilio_server)
    _campaign(ctx, p, "First", PEOPLE[:1], steps=[SMS, LATER])
    run_worker(ctx)
    _inbound(client, key, PEOPLE[0], "HELP")
    _inbound(client, key, PEOPLE[0], "STOP")
    assert _bodies(twilio_server, PEOPLE[0]) == ["Hi there"]  # the campaign's message only


def test_stop_and_help_are_answered_once_each_through_the_receiving_integration(ctx, client, twilio_server):
    p = workspace(ctx)
    key = _twilio(ctx, p, twilio_server)
    update_settings(ctx, p, {"auto_replies": {"stop": STOP_TEXT, "help": HELP_TEXT}})
    cid = _campaign(ctx, p, "First", PEOPLE[:2], steps=[SMS, LATER])
    run_worker(ctx)
    before, view = _bookkeeping(ctx), svc.get_campaign(ctx, p, cid)

    _inbound(client, key, PEOPLE[0], "info")
    _inbound(client, key, PEOPLE[1], "Thanks, tell me more")  # a reply: no answer
    _inbound(client, key, PEOPLE[0], "Stop")
    assert _bodies(twilio_server, PEOPLE[0]) == ["Hi there", HELP_TEXT, STOP_TEXT]
    assert _bodies(twilio_server, PEOPLE[1]) == ["Hi there"]
    [answer] = [c for c in twilio_server.calls(to=PEOPLE[0], kind="sms") if c.body["Body"] == STOP_TEXT]
    assert answer.account == "AC1" and answer.body["From"] == "+15005550006"

    assert _bookkeeping(ctx) == before  # no attempt row, no counter
    after = svc.get_campaign(ctx, p, cid)
    assert after["caps"] == view["caps"]
    assert {k: v for k, v in after["breakdown"].items() if k != "replied"} == \
        {k: v for k, v in view["breakdown"].items() if k != "replied"}  # nothing more sent

    _inbound(client, key, "+4915199999999", "STOP")  # a STOP from no lead is answered too
    assert _bodies(twilio_server, "+4915199999999") == [STOP_TEXT]


def test_whatsapp_gets_no_auto_reply(ctx, client, twilio_server, whatsapp_server):
    p = workspace(ctx)
    update_settings(ctx, p, {"auto_replies": {"stop": STOP_TEXT, "help": HELP_TEXT}})
    key = integration_service.create_integration(ctx, p, {
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "wa",
        "credentials": {"access_token": "EAAG-token", "app_secret": "meta-secret"},
        "config": {"phone_number_id": "42", "base_url": f"{whatsapp_server.base_url}/v23.0"}, "daily_cap": None})["id"]
    r = post_meta_webhook(client, key, _wa_button(PEOPLE[0].lstrip("+"), "Stop", "STOP"), "meta-secret")
    assert r.status_code == 200
    assert whatsapp_server.calls() == [] and twilio_server.calls() == []
