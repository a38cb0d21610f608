"""Issue 18 on the dashboard in a real headless Chromium (tests/web/test_browser.py's
conventions): the catalogue after "Sync templates" against the local fake WhatsApp server,
a step's preview for a chosen lead, and a test send the fake server receives."""

from __future__ import annotations

import re

from drumbeat.services import campaigns as svc
from tests.factory import campaign_data
from tests.web.test_browser import SCREENSHOTS, browser, page, server, shot, sign_in_with_password  # noqa: F401 - fixtures
from tests.web.test_content_pages import CATALOGUE, STEPS, WABA, lead, whatsapp_key


def test_an_operator_syncs_the_template_catalogue_and_sees_a_provider_error_in_words(
        ctx, users, server, page, whatsapp_server):  # noqa: F811
    from playwright.sync_api import expect

    owner = users["owner"]["principal"]
    whatsapp_server.set_templates(WABA, CATALOGUE)
    iid = whatsapp_key(ctx, owner, whatsapp_server, waba_id=WABA)
    sign_in_with_password(page, server, "operator@acme.test")
    page.click("nav a[href='/integrations']")
    page.click(f"a[href='/integrations/{iid}']")
    expect(page.get_by_test_id("templates")).to_contain_text("No template stored yet")

    page.get_by_test_id("sync-templates").click()
    expect(page.get_by_test_id("sync-done")).to_have_text("Synced 5 templates.")
    rows = page.locator("[data-testid=templates] tbody tr")
    expect(rows).to_have_count(5)
    expect(page.locator("tr[data-template=order_ready] [data-testid=template-parameters]")).to_have_text(
        "header 1 · body 2 · buttons 1, 0")
    expect(page.get_by_test_id("template-status")).to_have_text(
        ["Paused by Meta", "Approved", "Disabled", "Pending review", "Rejected"])  # by name
    # Each status has its own colour.
    colours = page.eval_on_selector_all("[data-testid=template-status]",
                                        "els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert len(set(colours)) == 5
    shot(page, "integration-templates-synced")

    whatsapp_server.fail_templates_page(1, 131016)
    page.get_by_test_id("sync-templates").click()
    alert = page.get_by_test_id("sync-alert")
    expect(alert).to_contain_text("whatsapp:131016")
    expect(alert).to_contain_text("the ones stored before")
    expect(rows).to_have_count(5)
    shot(page, "integration-templates-sync-refused")
    assert page.js_dialogs == []


def test_an_operator_previews_a_step_for_a_chosen_lead_and_sends_it_to_a_phone(
        ctx, users, server, page, whatsapp_server):  # noqa: F811
    from playwright.sync_api import expect

    owner = users["owner"]["principal"]
    whatsapp_key(ctx, owner, whatsapp_server)
    cid = svc.create_campaign(ctx, owner, campaign_data("Orders ready", steps=STEPS))["id"]
    lead(ctx, cid, first_name="Ada", email="ada@example.com", attributes={"order": "A-17"})
    bo = lead(ctx, cid, phone="+4915112345679", email="bo@example.com", first_name="Bo", attributes={"order": "B-2"})
    nameless = lead(ctx, cid, phone="+4915112345670", first_name=None, attributes={"order": "C-3"})
    sign_in_with_password(page, server, "operator@acme.test")
    page.goto(f"{server}/campaigns/{cid}")
    expect(page.get_by_test_id("missing-variables")).to_contain_text("1 lead has no value for first_name")
    page.get_by_test_id("preview-link").click()
    page.wait_for_url(re.compile(r".*/preview$"))  # loaded: the select's script is in place

    # Choosing a lead shows its rendering at once (the select submits its GET form).
    page.get_by_test_id("lead-select").select_option(bo)
    page.wait_for_url(re.compile(rf".*/preview\?lead_id={bo}$"))
    step = page.get_by_test_id("step-0")
    expect(step.get_by_test_id("param")).to_have_text(["Bo", "Bo", "B-2", "B-2"])
    expect(page.get_by_test_id("step-1").get_by_test_id("sms-size")).to_have_text("GSM-7 · 2 segments")
    expect(page.get_by_test_id("email-subject")).to_have_text("Order B-2")
    frame = page.frame_locator("[data-testid=html-frame]")
    expect(frame.locator("b")).to_have_text("Bo")
    step.locator("summary").click()
    assert '"to": "4915112345679"' in step.get_by_test_id("payload").inner_text()
    shot(page, "campaign-preview")
    # The sandboxed frame paints only once on screen (a full-page shot leaves it blank).
    email = page.get_by_test_id("step-2")
    email.scroll_into_view_if_needed()
    email.locator("summary").click()
    email.screenshot(path=str(SCREENSHOTS / "campaign-preview-email.png"))

    page.get_by_test_id("lead-select").select_option(nameless)
    page.wait_for_url(re.compile(rf".*/preview\?lead_id={nameless}$"))
    expect(page.get_by_test_id("step-1").get_by_test_id("step-missing")).to_have_text(
        "No value for first_name — this lead would fail with 'missing variable'.")
    shot(page, "campaign-preview-missing-variable")

    # A test send of the WhatsApp step, rendered for Bo, reaches the fake WhatsApp server.
    page.goto(f"{server}/campaigns/{cid}/preview?lead_id={bo}")
    page.get_by_test_id("test-to-0").fill("+44 7911 123456")
    page.get_by_test_id("test-send-0").click()
    verdict = page.get_by_test_id("step-0").get_by_test_id("test-verdict")
    expect(verdict).to_contain_text("Accepted by WhatsApp, message id wamid.")
    [call] = whatsapp_server.calls(to="+447911123456")
    assert [p["text"] for p in call.body["template"]["components"][1]["parameters"]] == ["Bo", "B-2"]
    shot(page, "campaign-test-send-accepted")

    # A number without its country: the server's words beside the field, what was typed kept.
    page.get_by_test_id("test-to-0").fill("0151 1234567")
    page.get_by_test_id("test-send-0").click()
    expect(page.get_by_test_id("step-0").get_by_test_id("test-error")).to_contain_text(
        "Phone number: must be an international number")
    expect(page.get_by_test_id("test-to-0")).to_have_value("0151 1234567")
    expect(page.get_by_test_id("test-to-0")).to_have_attribute("aria-invalid", "true")
    shot(page, "campaign-test-send-bad-address")
    assert svc.get_campaign(ctx, owner, cid)["progress"]["not_contacted"] == 3
    assert page.js_dialogs == []
