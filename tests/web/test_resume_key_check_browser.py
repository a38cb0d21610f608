"""A resume that checks the keys, on the campaign page (issue 21): in a real headless
Chromium (tests/web/test_browser.py's conventions) the operator presses Resume on a
campaign whose only key is still dead at the fake; the gate list shows ✓ for the open
gates and ✗ key_pool with the probe's reason and a link to the key, nothing is sent; the
key is fixed at the provider, Resume goes through and the campaign sends. Without
JavaScript the page answers the same. Screenshots: artifacts/screenshots/resume-key-check-*.png."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from drumbeat.services import campaigns as svc
from tests.engine.test_resume_checks_keys import LEADS, TOKEN, drain, paused_by_a_dead_key, whatsapp_key
from tests.web.conftest import page_csrf, sign_in
from tests.web.test_browser import browser, page, server, shot, sign_in_with_password  # noqa: F401 - fixtures

PROBE_REASON = "key_pool (whatsapp): 'Acme WA' still fails its connection test: whatsapp:190"


def in_a_thread(fn, *args):
    """Playwright's sync API runs an event loop on this thread: the worker drains on another."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


def test_the_campaign_page_shows_a_refused_resume_s_key_check_and_resumes_once_the_key_is_fixed(
        ctx, users, server, page, whatsapp_server):  # noqa: F811
    from playwright.sync_api import expect

    owner = users["owner"]["principal"]
    key = whatsapp_key(ctx, owner, whatsapp_server.base_url)
    cid = in_a_thread(paused_by_a_dead_key, ctx, owner, whatsapp_server, TOKEN)
    sends_before = len(whatsapp_server.calls())

    sign_in_with_password(page, server, "operator@acme.test")
    page.goto(f"{server}/campaigns/{cid}")
    expect(page.get_by_test_id("status-chip")).to_have_text("Paused")
    page.get_by_test_id("action-resume").click()

    alert = page.get_by_test_id("action-alert")
    expect(alert).to_be_visible()
    expect(alert.locator("li.gate-failed")).to_contain_text([PROBE_REASON])
    expect(alert.locator("li.gate-ok")).to_contain_text(["subscription: ok", "status: ok"])
    link = alert.get_by_test_id("gate-key-link")
    expect(link).to_have_attribute("href", f"/integrations/{key}")
    expect(page.get_by_test_id("status-chip")).to_have_text("Paused")
    assert len(whatsapp_server.calls()) == sends_before  # refused: nothing reached the provider
    shot(page, "resume-key-check-refused")

    whatsapp_server.restore_key(TOKEN)  # fixed at the provider
    page.get_by_test_id("action-resume").click()
    expect(page.get_by_test_id("status-chip")).to_have_text("Sending")
    expect(alert).to_be_hidden()
    in_a_thread(drain, ctx)
    expect(page.get_by_test_id("status-chip")).to_have_text("Completed", timeout=30_000)
    assert whatsapp_server.accepted(key=TOKEN) == LEADS
    assert svc.get_campaign(ctx, owner, cid)["progress"]["completed"] == LEADS
    assert page.js_dialogs == []
    shot(page, "resume-key-check-resumed")


def test_without_javascript_the_refused_resume_lists_the_key_check_with_its_link(ctx, client, users,
                                                                                 whatsapp_server):
    owner = users["owner"]["principal"]
    key = whatsapp_key(ctx, owner, whatsapp_server.base_url)
    cid = in_a_thread(paused_by_a_dead_key, ctx, owner, whatsapp_server, TOKEN)
    sign_in(client, "operator@acme.test")

    response = client.post(f"/campaigns/{cid}/actions/resume", data={"csrf": page_csrf(client)})

    assert response.status_code == 409
    assert "✗ " + PROBE_REASON in response.text.replace("&#39;", "'")
    assert f'href="/integrations/{key}" data-testid="gate-key-link"' in response.text
    assert "✓ subscription: ok" in response.text
