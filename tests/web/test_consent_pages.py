"""The lead page explains an opt-out (DESIGN.md §9): the reason in words, when, through
which channel and campaign, and for a STOP what the person wrote — escaped."""

from __future__ import annotations

import html

from drumbeat.services.suppressions import lift_stop_keyword, suppress
from drumbeat.store.consent import insert_consent_event
from tests.conftest import db_url  # noqa: F401 - server-side tests on both databases
from tests.factory import new_campaign
from tests.web.conftest import sign_in
from tests.web.test_content_pages import lead

SMS = [{"channel": "sms", "template": {"body": "Hi"}, "delay_seconds": 0}]


def stopped_lead(ctx, owner, text="STOP") -> tuple[str, str]:
    """A lead whose number said stop (as services.consent records it)."""
    cid = new_campaign(ctx, owner, name="Spring <promo>", steps=SMS)
    lead_id = lead(ctx, cid, phone="+4915112345678")
    with ctx.db.begin() as conn:
        insert_consent_event(conn, owner.workspace_id, kind="opt_out", channel="sms", address="+4915112345678",
                             lead_id=int(lead_id), integration_id=None, text=text, at=ctx.clock())
        suppress(conn, owner.workspace_id, phone="+4915112345678", reason="stop_keyword",
                 source={"campaign_id": cid, "lead_id": int(lead_id), "channel": "sms"}, now=ctx.clock())
    return cid, lead_id


def test_a_stopped_lead_shows_why_with_what_they_wrote_escaped(ctx, client, users):
    owner = users["owner"]["principal"]
    cid, lead_id = stopped_lead(ctx, owner, text="Stop <b>now</b>")
    sign_in(client, "viewer@acme.test")
    page = client.get(f"/campaigns/{cid}/leads/{lead_id}").text
    card = page[page.index('data-testid="why-opted-out"'):]
    card = card[:card.index("</section>")]
    assert "Why opted out" in card and "Replied with a stop word." in card
    assert "<dd>SMS</dd>" in card
    assert f'href="/campaigns/{cid}/leads/{lead_id}">{html.escape("Spring <promo>")}</a>' in card
    assert html.escape("Stop <b>now</b>") in card and "<b>now</b>" not in card
    assert "<button" not in card and "<form" not in card  # nothing to act on here


def test_a_bounced_address_and_a_lead_never_suppressed(ctx, client, users):
    owner = users["owner"]["principal"]
    cid = new_campaign(ctx, owner, name="Mail", steps=[
        {"channel": "email", "template": {"subject": "Hi", "body": "Hi"}, "delay_seconds": 0}])
    bounced = lead(ctx, cid, phone=None, email="gone@example.com")
    fine = lead(ctx, cid, phone=None, email="fine@example.com")
    with ctx.db.begin() as conn:
        suppress(conn, owner.workspace_id, email="gone@example.com", reason="bounce",
                 source={"campaign_id": cid, "lead_id": int(bounced), "channel": "email"}, now=ctx.clock())
    sign_in(client, "owner@acme.test")
    page = client.get(f"/campaigns/{cid}/leads/{bounced}").text
    assert "Why opted out" in page and "The email address does not exist (a hard bounce)." in page
    assert 'data-testid="lead-state">opted_out' in page
    assert "Why opted out" not in client.get(f"/campaigns/{cid}/leads/{fine}").text


def test_an_opted_out_lead_whose_stop_was_lifted_says_so(ctx, client, users):
    owner = users["owner"]["principal"]
    cid, lead_id = stopped_lead(ctx, owner)
    with ctx.db.begin() as conn:
        assert lift_stop_keyword(conn, owner.workspace_id, phone="+4915112345678", now=ctx.clock())
    sign_in(client, "operator@acme.test")
    page = client.get(f"/campaigns/{cid}/leads/{lead_id}").text
    assert "Why opted out" in page and "opted back in" in page
