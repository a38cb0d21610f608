"""Issue 19 in Chromium: the cancel dialog by keyboard alone (focus trapped inside, Escape
closes it, focus goes back to its button), the same confirmation as a page without
JavaScript, a toast after each action that can be dismissed, and a button pressed again in
place acting again (each answer hands its form a new one-time nonce)."""

from __future__ import annotations

import re

from drumbeat.services import campaigns as svc
from tests.factory import add_leads, new_campaign, sandbox_key
from tests.web.test_browser import browser, server, shot, sign_in_with_password  # noqa: F401 - fixtures


def sending_campaign(ctx, users, name="Spring promo") -> str:
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner, name=name)
    add_leads(ctx, cid, 4)
    svc.start(ctx, owner, cid)
    return cid


def new_tab(browser, **options):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    return context, tab


def test_the_cancel_dialog_traps_focus_closes_on_escape_and_gives_focus_back(ctx, users, server, browser):  # noqa: F811
    from playwright.sync_api import expect

    cid = sending_campaign(ctx, users)
    context, tab = new_tab(browser)
    try:
        sign_in_with_password(tab, server, "operator@acme.test")
        tab.goto(f"{server}/campaigns/{cid}")
        opener = tab.get_by_role("button", name="Cancel campaign…")
        opener.focus()
        tab.keyboard.press("Enter")
        dialog = tab.get_by_role("dialog", name="Cancel this campaign?")
        expect(dialog).to_be_visible()
        confirm = tab.get_by_label("Type the campaign's name")
        keep = tab.get_by_role("button", name="Keep the campaign")
        expect(confirm).to_be_focused()
        # The submit button is disabled until the name is typed: Tab goes round input and Keep.
        tab.keyboard.press("Tab")
        expect(keep).to_be_focused()
        tab.keyboard.press("Tab")
        expect(confirm).to_be_focused()
        tab.keyboard.press("Shift+Tab")
        expect(keep).to_be_focused()
        tab.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(opener).to_be_focused()
        # Keep the campaign closes it too, and focus comes back the same way.
        tab.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        tab.keyboard.press("Tab")
        tab.keyboard.press("Enter")
        expect(dialog).to_be_hidden()
        expect(opener).to_be_focused()
        assert svc.get_campaign(ctx, users["owner"]["principal"], cid)["status"] == "sending"
        # Open, type, and the last stop is now the enabled submit; Tab wraps from it to the input.
        tab.keyboard.press("Enter")
        tab.keyboard.type("Spring promo")
        submit = tab.get_by_role("button", name="Cancel campaign", exact=True)
        tab.keyboard.press("Tab")
        tab.keyboard.press("Tab")
        expect(submit).to_be_focused()
        tab.keyboard.press("Tab")
        expect(confirm).to_be_focused()
        tab.keyboard.press("Shift+Tab")
        expect(submit).to_be_focused()
        tab.keyboard.press("Enter")
        toast = tab.get_by_role("status")
        expect(toast).to_have_text("Campaign canceled.")
        expect(tab.get_by_test_id("status-chip")).to_have_text("Canceled")
        shot(tab, "i19forms-canceled-toast")
        # The toast can be dismissed (and says nothing any more).
        tab.get_by_role("link", name="Dismiss the message").click()
        expect(tab.locator("#toast")).to_have_text("")
        expect(tab.locator("#toast")).to_be_hidden()
        expect(tab.get_by_role("link", name="Dismiss the message")).to_be_hidden()
    finally:
        context.close()


def test_without_javascript_cancel_is_a_confirmation_page_and_a_toast_a_plain_link(
        ctx, users, server, browser):  # noqa: F811
    from playwright.sync_api import expect

    cid = sending_campaign(ctx, users)
    context, tab = new_tab(browser, java_script_enabled=False)
    try:
        sign_in_with_password(tab, server, "operator@acme.test")
        tab.goto(f"{server}/campaigns/{cid}")
        tab.get_by_role("button", name="Cancel campaign…").click()
        tab.wait_for_url(re.compile(rf".*/campaigns/{cid}/cancel\??$"))  # a GET form with no field
        expect(tab.get_by_test_id("cancel-page")).to_be_visible()
        confirm = tab.get_by_label("Type the campaign's name")
        confirm.fill("Spring")
        tab.get_by_role("button", name="Cancel campaign", exact=True).click()
        # Refused beside the field, the typed text kept, nothing changed.
        expect(tab.get_by_test_id("field-error")).to_contain_text("exact name")
        expect(confirm).to_have_value("Spring")
        assert svc.get_campaign(ctx, users["owner"]["principal"], cid)["status"] == "sending"
        confirm.fill("Spring promo")
        tab.get_by_role("button", name="Cancel campaign", exact=True).click()
        tab.wait_for_url(f"{server}/campaigns/{cid}?done=cancel")
        expect(tab.get_by_role("status")).to_have_text("Campaign canceled.")
        tab.get_by_role("link", name="Dismiss the message").click()
        tab.wait_for_url(f"{server}/campaigns/{cid}")
        expect(tab.locator("#toast")).to_have_text("")
        expect(tab.locator("#toast")).to_be_hidden()
        assert svc.get_campaign(ctx, users["owner"]["principal"], cid)["status"] == "canceled"
    finally:
        context.close()


def test_a_button_pressed_again_in_place_acts_again_with_the_new_nonce(ctx, users, server, browser):  # noqa: F811
    from playwright.sync_api import expect

    cid = sending_campaign(ctx, users)
    context, tab = new_tab(browser)
    try:
        sign_in_with_password(tab, server, "operator@acme.test")
        tab.goto(f"{server}/campaigns/{cid}")
        chip, toast = tab.get_by_test_id("status-chip"), tab.get_by_role("status")
        for button, status, said in (("Pause", "Paused", "Campaign paused."),
                                     ("Resume", "Sending", "Campaign resumed."),
                                     ("Pause", "Paused", "Campaign paused.")):
            tab.get_by_role("button", name=button, exact=True).click()
            expect(chip).to_have_text(status)
            expect(toast).to_have_text(said)
        timeline = svc.get_timeline(ctx, users["owner"]["principal"], cid)
        assert [t["action"] for t in timeline].count("pause") == 2
    finally:
        context.close()
