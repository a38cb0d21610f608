"""The replies inbox in Chromium (issues 22 and 23): a WhatsApp reply received through the
signed webhook shows in the inbox with the conversation beside it; an operator marks it
handled; a viewer sees no action; axe finds nothing serious on the page."""

from __future__ import annotations

import json

import httpx

from drumbeat.channels.inbound import sign_sha256
from tests.api.test_callbacks import integration, sent_lead
from tests.api.test_replies import text_message, wa_inbound
from tests.factory import new_campaign
from tests.web.test_accessibility import axe_page, axe_source, serious_violations  # noqa: F401 - fixture
from tests.web.test_browser import browser, server, shot, sign_in_with_password  # noqa: F401 - fixtures


def post_signed(base: str, key: str, payload: dict) -> None:
    body = json.dumps(payload).encode()
    answer = httpx.post(f"{base}/webhooks/whatsapp/{key}", content=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": sign_sha256(body, "meta-secret")})
    assert answer.status_code == 200 and answer.json()["changed"] == 1, answer.text


def test_in_chromium_a_whatsapp_reply_shows_in_the_inbox_and_an_operator_marks_it_handled(
        ctx, users, server, axe_page):  # noqa: F811
    from playwright.sync_api import expect

    source = axe_source()
    owner = users["owner"]["principal"]
    key = integration(ctx, owner, "whatsapp_cloud", "whatsapp", {"access_token": "EAAG-token",
                      "app_secret": "meta-secret"}, {"phone_number_id": "42"})
    cid = new_campaign(ctx, owner, name="Spring promo")
    sent_lead(ctx, cid, key, message_id="wamid.o1", phone="+14155550101")
    sent_lead(ctx, cid, key, message_id="wamid.o2", phone="+14155550102")
    post_signed(server, key, text_message("<b>Yes</b>, call me on Monday", sender="14155550101",
                                          message_id="wamid.r1"))
    post_signed(server, key, wa_inbound(sender="14155550102", message_id="wamid.r2", type="button",
                                        button={"text": "Stop promotions", "payload": "STOP"}))
    tab = axe_page
    problems: dict[str, list[str]] = {}

    sign_in_with_password(tab, server, "operator@acme.test")
    tab.get_by_role("navigation", name="Main").get_by_role("link", name="Replies").click()
    expect(tab.get_by_role("heading", name="Replies", exact=True)).to_be_visible()
    rows = tab.get_by_test_id("reply-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).get_by_test_id("reply-text")).to_have_text("Stop promotions")
    expect(rows.nth(0).get_by_test_id("opt-out-chip")).to_have_text("Opt-out")
    expect(rows.nth(1).get_by_test_id("reply-text")).to_have_text("<b>Yes</b>, call me on Monday")
    problems["inbox"] = serious_violations(tab, source)

    rows.nth(1).get_by_test_id("show-conversation").click()
    talk = tab.get_by_test_id("conversation")
    expect(talk.get_by_test_id("message")).to_have_count(2)
    expect(talk.get_by_test_id("message").nth(0)).to_have_attribute("data-direction", "out")
    expect(talk.get_by_test_id("message-text").last).to_have_text("<b>Yes</b>, call me on Monday")
    rows.nth(1).get_by_role("button", name="Mark handled").click()
    expect(tab.get_by_test_id("toast")).to_have_text("Reply marked handled.")
    expect(tab.get_by_test_id("reply-row").nth(1).get_by_test_id("handled-chip")).to_have_text("Handled")
    expect(tab.get_by_role("button", name="Mark handled")).to_have_count(1)  # the opt-out's, still to handle
    problems["inbox after mark handled"] = serious_violations(tab, source)
    shot(tab, "replies-inbox")

    tab.get_by_label("Handled", exact=True).select_option("false")
    tab.get_by_role("button", name="Filter").click()
    expect(tab.get_by_test_id("reply-row")).to_have_count(1)
    expect(tab.get_by_test_id("reply-text")).to_have_text("Stop promotions")

    api = httpx.get(f"{server}/api/v1/replies", params={"handled": "true"},
                    headers={"Authorization": f"Bearer {users['owner']['token']}"}).json()
    assert [r["text"] for r in api["items"]] == ["<b>Yes</b>, call me on Monday"]

    tab.get_by_role("button", name="Sign out").click()
    sign_in_with_password(tab, server, "viewer@acme.test")
    tab.goto(f"{server}/replies")
    expect(tab.get_by_test_id("reply-row")).to_have_count(2)
    expect(tab.get_by_role("button", name="Mark handled")).to_have_count(0)
    problems["inbox as a viewer"] = serious_violations(tab, source)
    assert problems == {k: [] for k in problems}
