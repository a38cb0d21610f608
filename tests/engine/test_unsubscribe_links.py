"""Unsubscribe links on the send path (issue 20): a campaign email captured by aiosmtpd
carries List-Unsubscribe and List-Unsubscribe-Post (RFC 8058), `{{unsubscribe_url}}`
renders the same link, and that link works against the app. Both databases."""

from __future__ import annotations

import re

import pytest

from tests.api.test_unsubscribe import path_of
from tests.engine.test_message_content import campaign, integration, run_worker, start
from tests.fakes.providers import QUIET_SMTP

pytestmark = pytest.mark.filterwarnings(QUIET_SMTP)

ADA = "ada@example.org"
FIRST = {"channel": "email", "template": {"subject": "Hello {{first_name}}",
                                          "body": "Hi {{first_name}}.\nUnsubscribe: {{unsubscribe_url}}",
                                          "html": '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p>'}}
LATER = {"channel": "email", "template": {"subject": "Again", "body": "Hi again"}, "delay_seconds": 86400}


def smtp_key(client, owner, smtp_server, **config) -> str:
    return integration(client, owner, {"channel": "email", "provider": "smtp",
                                       "config": smtp_server.config(**config),
                                       "credentials": {"username": "mailer", "password": "s3cret-pass"}})


def header_link(message) -> str:
    """The https link of a List-Unsubscribe header, as a mail client reads it."""
    links = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    (https,) = [link for link in links if link.startswith("https://")]
    return https


def test_a_campaign_email_carries_the_one_click_headers_and_the_same_link_in_its_text(
        ctx, client, owner, smtp_server):
    smtp_key(client, owner, smtp_server, unsubscribe_email="optout@example.com")
    cid = campaign(client, owner, [FIRST, LATER], [{"email": ADA, "first_name": "Ada"}])
    start(client, owner, cid)

    run_worker(ctx)

    (delivery,) = smtp_server.deliveries
    sent = delivery.message
    link = header_link(sent)
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "<mailto:optout@example.com?subject=unsubscribe>" in sent["List-Unsubscribe"]
    assert sent.get_body(("plain",)).get_content().strip().endswith(f"Unsubscribe: {link}")
    assert f'<a href="{link}">' in sent.get_body(("html",)).get_content()
    page = client.get(path_of(link))
    assert page.status_code == 200 and "a***@example.org" in page.text


def test_each_lead_gets_a_link_of_its_own(ctx, client, owner, smtp_server):
    smtp_key(client, owner, smtp_server)
    cid = campaign(client, owner, [FIRST], [{"email": f"p{i}@example.org", "first_name": "P"} for i in range(3)])
    start(client, owner, cid)

    run_worker(ctx)

    links = {d.rcpt_tos[0]: header_link(d.message) for d in smtp_server.deliveries}
    assert len(links) == 3 and len(set(links.values())) == 3
    for address, link in links.items():
        assert f"{address[0]}***@example.org" in client.get(path_of(link)).text


def test_the_preview_shows_the_leads_own_link_and_a_test_send_carries_one_that_unsubscribes_nobody(
        ctx, client, owner, smtp_server):
    smtp_key(client, owner, smtp_server)
    cid = campaign(client, owner, [FIRST], [{"email": ADA, "first_name": "Ada"}])

    preview = client.get(f"/api/v1/campaigns/{cid}/preview", headers=owner["headers"]).json()
    test = client.post(f"/api/v1/campaigns/{cid}/test", headers=owner["headers"],
                       json={"step": 0, "to": {"email": "me@example.com"}})

    text = preview["steps"][0]["rendered"]["text"]
    assert preview["steps"][0]["missing"] == []
    shown = text.rsplit("Unsubscribe: ", 1)[1]
    assert "a***@example.org" in client.get(path_of(shown)).text
    assert test.status_code == 200 and test.json()["status"] == "accepted", test.text
    (delivery,) = smtp_server.deliveries
    assert delivery.rcpt_tos == ["me@example.com"]
    link = header_link(delivery.message)
    assert link != shown and link in delivery.message.get_body(("plain",)).get_content()
    page = client.get(path_of(link))
    assert page.status_code == 200 and "test message" in page.text and "<button" not in page.text


def test_a_one_click_post_from_a_captured_emails_header_suppresses_and_no_campaign_emails_again(
        ctx, client, owner, smtp_server):
    smtp_key(client, owner, smtp_server)
    cid = campaign(client, owner, [FIRST, LATER], [{"email": ADA, "first_name": "Ada"},
                                                  {"email": "bob@example.org", "first_name": "Bob"}])
    start(client, owner, cid)
    run_worker(ctx)
    ada_mail = next(d.message for d in smtp_server.deliveries if d.rcpt_tos == [ADA])

    # What a mail client does (RFC 8058): POST the header's https link with this body.
    clicked = client.post(path_of(header_link(ada_mail)), content=b"List-Unsubscribe=One-Click",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert clicked.status_code == 200
    (entry,) = client.get("/api/v1/suppressions", headers=owner["headers"]).json()["items"]
    assert (entry["email"], entry["reason"]) == (ADA, "unsubscribe_link")
    assert entry["source"]["campaign_id"] == cid and entry["source"]["channel"] == "email"
    states = {lead["email"]: lead["state"] for lead in
              client.get(f"/api/v1/campaigns/{cid}/leads", headers=owner["headers"]).json()["items"]}
    assert states == {ADA: "opted_out", "bob@example.org": "in_progress"}

    smtp_server.reset()
    second = campaign(client, owner, [FIRST], [{"email": ADA, "first_name": "Ada"},
                                               {"email": "bob@example.org", "first_name": "Bob"}])
    start(client, owner, second)
    run_worker(ctx)

    assert [d.rcpt_tos for d in smtp_server.deliveries] == [["bob@example.org"]]
    assert smtp_server.contacts(ADA) == 0
