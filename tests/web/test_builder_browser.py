"""Issue 19's campaign builder in a real headless Chromium (tests/web/test_browser.py's
conventions): a two-step campaign (a WhatsApp template from the catalogue with its
parameter form, an SMS with variables and its live segment count) built, saved as a draft,
previewed for a lead, and edited. Screenshots land in artifacts/screenshots/."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from drumbeat.services import campaigns as svc
from drumbeat.services import templates as catalogue
from tests.web.test_browser import browser, page, server, shot, sign_in_with_password  # noqa: F401 - fixtures
from tests.web.test_content_pages import CATALOGUE, WABA, lead, whatsapp_key


def test_an_operator_builds_a_two_step_campaign_saves_it_as_a_draft_and_edits_it(
        ctx, users, server, page, whatsapp_server):  # noqa: F811
    from playwright.sync_api import expect

    owner = users["owner"]["principal"]
    whatsapp_server.set_templates(WABA, CATALOGUE)
    key = whatsapp_key(ctx, owner, whatsapp_server, waba_id=WABA)
    with ThreadPoolExecutor(1) as pool:  # the sync runs its own event loop; Playwright's owns this thread
        pool.submit(catalogue.sync_catalogue, ctx, owner, key).result()
    sign_in_with_password(page, server, "operator@acme.test")
    page.get_by_role("link", name="New campaign").click()
    page.wait_for_url(re.compile(r".*/campaigns/new$"))
    page.get_by_label("Name", exact=True).fill("Spring promo")

    rows = page.get_by_test_id("step-row")
    first = rows.nth(0)
    picker = first.get_by_label("Template from the catalogue")
    expect(picker.locator("option[value='spring_sale|en_US']")).to_be_disabled()  # pending review
    picker.select_option("order_ready|en_US")
    # The parameter form comes from the server at once, the name typed before kept.
    expect(first.get_by_test_id("template-parameters")).to_contain_text("Parameters of order_ready (en_US)")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Spring promo")
    header = first.get_by_label("Header {{1}}")
    expect(header).to_be_focused()
    header.fill("{{first_name|there}}")
    body1 = first.get_by_label("Body {{1}} in ‘Hi {{1}}, order {{2}} is ready’")
    body1.fill("Dear ")
    page.get_by_role("button", name="{{first_name}}").click()  # the variable goes in at the caret
    expect(body1).to_have_value("Dear {{first_name}}")
    first.get_by_label("Body {{2}}").fill("{{attributes.order}}")
    first.get_by_label('Button 1 "Track" link {{1}}').fill("{{attributes.order}}")
    first.get_by_label("Message text").fill("Hi {{first_name}}")
    expect(first.get_by_label("Subject")).to_be_hidden()  # only a WhatsApp step's inputs
    shot(page, "campaign-builder-whatsapp-parameters")

    page.get_by_role("button", name="Add step").click()
    expect(rows).to_have_count(2)
    assert page.url.endswith("/campaigns/new")  # nothing saved
    second = rows.nth(1)
    second.get_by_label("Channel").select_option("sms")
    expect(second.get_by_label("Template name")).to_be_hidden()
    second.get_by_label("Wait after the previous step").fill("2")
    second.get_by_label("Step 2 delay unit").select_option("hours")
    body = second.get_by_label("Message text")
    body.fill("Your code {{attributes.code}}")
    count = second.get_by_test_id("sms-count")
    expect(count).to_have_text("GSM-7 · 1 segment as written")
    body.press_sequentially(" " + "x" * 140, delay=0)
    expect(count).to_have_text("GSM-7 · 2 segments as written")
    shot(page, "campaign-builder")

    page.get_by_role("button", name="Save as draft").click()
    page.wait_for_url(re.compile(r".*/campaigns/[^/]+$"))
    expect(page.get_by_test_id("campaign-name")).to_have_text("Spring promo")
    expect(page.get_by_test_id("status-chip")).to_have_text("Draft")
    expect(page.locator("ol.steps li .chip")).to_have_text(["whatsapp", "sms"])
    cid = page.url.rsplit("/", 1)[1]
    stored = svc.get_campaign(ctx, owner, cid)["steps"]
    assert stored[0]["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "text", "text": "{{first_name|there}}"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Dear {{first_name}}"},
                                        {"type": "text", "text": "{{attributes.order}}"}]},
        {"type": "button", "sub_type": "url", "index": "0",
         "parameters": [{"type": "text", "text": "{{attributes.order}}"}]}]
    assert stored[0]["template"]["name"] == "order_ready" and stored[1]["delay_seconds"] == 7200
    assert stored[1]["template"]["body"].startswith("Your code {{attributes.code}} x")
    shot(page, "campaign-built-draft")

    # The preview for a lead shows the parameters rendered for them.
    lead(ctx, cid, first_name="Ada", attributes={"order": "A-17", "code": "C3"})
    page.goto(f"{server}/campaigns/{cid}/preview")
    params = page.get_by_test_id("step-0").get_by_test_id("param")
    expect(params).to_have_text(["Ada", "Dear Ada", "A-17", "A-17"])
    shot(page, "campaign-preview-whatsapp-parameters")
    page.goto(f"{server}/campaigns/{cid}")

    page.get_by_test_id("edit-link").click()
    page.wait_for_url(re.compile(r".*/edit$"))
    expect(page.get_by_label("Name", exact=True)).to_have_value("Spring promo")
    expect(rows.nth(0).get_by_label("Template from the catalogue")).to_have_value("order_ready|en_US")
    expect(rows.nth(0).get_by_label("Body {{1}}")).to_have_value("Dear {{first_name}}")
    expect(rows.nth(0).get_by_label("Wait before sending")).to_have_value("0")
    expect(rows.nth(1).get_by_test_id("sms-count")).to_have_text("GSM-7 · 2 segments as written")
    page.get_by_label("Name", exact=True).fill("")
    page.get_by_label("Daily cap").fill("300")
    page.get_by_role("button", name="Save as draft").click()
    # Refused on the server: the message beside the field, the typed cap kept.
    expect(page.get_by_test_id("error-summary")).to_contain_text("Name: this is required")
    expect(page.locator("[data-field=name]")).to_have_text("this is required")
    expect(page.get_by_label("Daily cap")).to_have_value("300")
    shot(page, "campaign-builder-error")
    page.get_by_label("Name", exact=True).fill("Spring promo, edited")
    page.get_by_role("button", name="Save as draft").click()
    page.wait_for_url(re.compile(rf".*/campaigns/{cid}$"))
    expect(page.get_by_test_id("campaign-name")).to_have_text("Spring promo, edited")
    assert svc.get_campaign(ctx, owner, cid)["limits"]["daily_cap"] == 300
    assert page.js_dialogs == []
