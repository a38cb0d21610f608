"""Issue 19's operator console end to end, in a real headless Chromium (tests/web/test_browser.py's
conventions): from an empty workspace, only through the browser, an owner adds a WhatsApp key
pointed at the local fake, builds a two-step campaign with variables, imports a semicolon CSV
with unusual headers, previews, sends a test, starts it, sees every key fail in plain words,
replaces the token, resumes and sees it complete. Once, on SQLite (the pages' own tests and the
engine suites cover PostgreSQL). Screenshots: artifacts/screenshots/console-flow-*.png."""

from __future__ import annotations

import re

import pytest

from drumbeat.bootstrap import build_adapters
from drumbeat.engine.worker import Worker
from tests.engine.test_concurrency import ThreadedWorker
from tests.web.test_browser import browser, page, server, shot, sign_in_with_password  # noqa: F401 - fixtures

FIRST_TOKEN = "EAAG-console-first-1"
NEW_TOKEN = "EAAG-console-rotated-2"
LEADS = 12
PHONES = [f"+49151123456{n:02d}" for n in range(LEADS)]
# Unusual headers: none of them is guessed as a lead field, so every column is matched by hand.
CSV_TEXT = "Handynummer;Rufname;Tarifstufe\n" + "".join(
    f"{phone};Kunde{n};{'gold' if n % 2 else 'silber'}\n" for n, phone in enumerate(PHONES))
SENDS_BEFORE_FAILURE = 20  # of 24: every first step and most second ones go through, the rest wait
RATE = "2"  # sends per second: the run lasts long enough for the page to show it sending


def open_campaign(tab) -> None:
    tab.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    tab.get_by_role("link", name="Tarif reminder").click()
    tab.wait_for_url(re.compile(r".*/campaigns/[^/?#]+$"))


def progress(tab):
    return tab.get_by_role("progressbar", name="Progress")


def percent(tab) -> float:
    return float(progress(tab).get_attribute("aria-valuenow"))


def snap(tab, name: str) -> None:
    """A screenshot once the progress bar's transition has ended (else it shows mid-way)."""
    tab.wait_for_function("() => document.getAnimations().length === 0")
    shot(tab, f"console-flow-{name}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_owner_runs_a_campaign_from_an_empty_workspace_to_completed_through_a_dead_key_in_the_browser(
        db_url, ctx, users, server, page, whatsapp_server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    upload = tmp_path / "kunden.csv"
    upload.write_text(CSV_TEXT, encoding="utf-8")
    sign_in_with_password(page, server, "owner@acme.test")
    nav = page.get_by_role("navigation", name="Main")

    # 1. A WhatsApp key, pointed at the local fake; the connection test answers ✓.
    nav.get_by_role("link", name="Integrations").click()
    page.get_by_role("link", name="Add integration").click()
    page.wait_for_url("**/integrations/new")  # loaded: the chooser's script is in place
    page.get_by_label("Provider").select_option("whatsapp_cloud")
    expect(page.get_by_role("heading", name="WhatsApp Cloud API")).to_be_visible()
    page.get_by_label("Label").fill("Acme WA")
    page.get_by_label("Access token").fill(FIRST_TOKEN)
    page.get_by_label("Phone number ID").fill("1065")
    page.get_by_text("Advanced").click()
    page.get_by_label("Base URL").fill(f"{whatsapp_server.base_url}/v23.0")
    snap(page, "01-integration-add")
    page.get_by_role("button", name="Add integration").click()
    expect(page.get_by_test_id("toast")).to_have_text("Integration added.")
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_test_id("connection-result")).to_have_text("✓ Connected.")
    snap(page, "02-integration-connected")

    # 2. A two-step campaign with variables, saved as a draft.
    nav.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    page.wait_for_url(re.compile(r".*/campaigns/new$"))
    page.get_by_label("Name", exact=True).fill("Tarif reminder")
    rows = page.get_by_test_id("step-row")
    rows.nth(0).get_by_label("Message text").fill("Hallo {{first_name}}!")
    page.get_by_role("button", name="Add step").click()
    expect(rows).to_have_count(2)
    rows.nth(1).get_by_label("Channel").select_option("whatsapp")
    rows.nth(1).get_by_label("Message text").fill("{{first_name}}, your plan is {{attributes.tarifstufe}}.")
    page.get_by_label("Sends per second").fill(RATE)
    snap(page, "03-builder")
    page.get_by_role("button", name="Save as draft").click()
    page.wait_for_url(re.compile(r".*/campaigns/[^/]+$"))
    expect(page.get_by_test_id("status-chip")).to_have_text("Draft")

    # 3. The semicolon CSV, its columns matched by hand.
    page.get_by_role("link", name="Import leads →").click()
    page.get_by_label("CSV file").set_input_files(str(upload))
    page.get_by_label("Delimiter").select_option(label="Detect it")
    page.get_by_label("Default country").select_option("DE")
    snap(page, "04-import-upload")
    page.get_by_role("button", name="Upload and match columns").click()
    expect(page.get_by_role("heading", name="Match columns")).to_be_visible()
    page.get_by_label("Column Handynummer holds").select_option(label="Phone")
    page.get_by_label("Column Rufname holds").select_option(label="First name")
    expect(page.get_by_label("Column Tarifstufe holds")).to_have_value("attributes.tarifstufe")
    snap(page, "05-import-match")
    page.get_by_role("button", name="Import leads").click()
    expect(page.get_by_role("heading", name="Leads imported")).to_be_visible()
    expect(page.get_by_test_id("count-accepted")).to_have_text(str(LEADS))
    expect(page.get_by_test_id("count-rejected")).to_have_text("0")
    snap(page, "06-import-result")

    # 4. The preview renders the variables; a test send reaches the fake.
    open_campaign(page)
    page.get_by_role("link", name=re.compile("Preview")).click()
    first_step = page.get_by_test_id("step-0")
    expect(first_step.get_by_test_id("rendered-text")).to_have_text(re.compile(r"^Hallo Kunde\d+!$"))
    expect(page.get_by_test_id("step-1").get_by_test_id("rendered-text")).to_have_text(
        re.compile(r"^Kunde\d+, your plan is (gold|silber)\.$"))
    first_step.get_by_label("Phone number").fill("+44 7911 123456")
    first_step.get_by_role("button", name="Send test").click()
    expect(page.get_by_test_id("step-0").get_by_test_id("test-verdict")).to_contain_text("Accepted by WhatsApp")
    assert whatsapp_server.contacts("+447911123456") == 1
    snap(page, "07-preview-test-sent")

    # The key dies at the fake after a few more sends: mid-run, whatever the machine's speed.
    whatsapp_server.fail_key(FIRST_TOKEN, code=190, message="Error validating access token",
                             after=SENDS_BEFORE_FAILURE)
    worker = Worker(ctx, build_adapters(), concurrency=2, tick_seconds=0.05)
    with ThreadedWorker(worker):
        # 5. Start: progress rises on the page by itself, then every key fails.
        open_campaign(page)
        page.evaluate("window.__notReloaded = true")
        page.get_by_role("button", name="Start").click()
        expect(page.get_by_test_id("status-chip")).to_have_text("Sending", timeout=30_000)
        # Seen while it is still sending: messages counted, then leads finishing, without a reload.
        page.wait_for_function("""() => parseInt(document.querySelector('[data-number=sent]').textContent) > 0
            && document.querySelector('[data-testid=status-chip]').textContent.trim() === 'Sending'""",
                               timeout=60_000)
        snap(page, "08-sending")
        expect(progress(page)).not_to_have_attribute("aria-valuenow", re.compile(r"^0(\.0)?$"), timeout=60_000)
        expect(page.get_by_test_id("reason-chip")).to_have_text("all_keys_failed", timeout=60_000)
        expect(page.get_by_test_id("status-chip")).to_have_text("Paused")
        explanation = page.get_by_test_id("pause-explanation")
        expect(explanation).to_contain_text("Every WhatsApp key failed: 'Acme WA' answered whatsapp:190")
        expect(explanation).to_contain_text("update the key, then resume")
        assert 0 < percent(page) < 100
        assert page.evaluate("window.__notReloaded") is True
        snap(page, "09-all-keys-failed")

        # 6. The fix: a new token typed in the integration's form (the fake accepts it).
        page.get_by_role("link", name="Update the key →").click()
        expect(page).to_have_url(re.compile(r".*/integrations/[0-9a-f]+#edit$"))
        expect(page.get_by_test_id("integration-label")).to_have_text("Acme WA")
        page.get_by_label("Access token").fill(NEW_TOKEN)
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_test_id("toast")).to_have_text("Saved.")
        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_test_id("connection-result")).to_have_text("✓ Connected.")
        snap(page, "10-key-replaced")

        # 7. Resume and watch it complete.
        open_campaign(page)
        page.get_by_role("button", name="Resume").click()
        expect(page.get_by_test_id("status-chip")).to_have_text("Completed", timeout=90_000)
        expect(progress(page)).to_have_attribute("aria-valuenow", re.compile(r"^100(\.0)?$"))
        expect(page.get_by_test_id("percent")).to_have_text("100.0%")
        expect(page.locator("[data-number=sent]")).to_have_text(str(2 * LEADS))
        expect(page.locator("[data-number=failed]")).to_have_text("0")
        snap(page, "11-completed")

    # Every lead's number got each step exactly once (refused sends were retried with the new key).
    for n, phone in enumerate(PHONES):
        texts = [c.body["text"]["body"] for c in whatsapp_server.calls(to=phone) if c.accepted]
        assert sorted(texts) == sorted([f"Hallo Kunde{n}!",
                                        f"Kunde{n}, your plan is {'gold' if n % 2 else 'silber'}."]), phone
    assert whatsapp_server.accepted(key=NEW_TOKEN) > 0
    assert page.js_dialogs == []
