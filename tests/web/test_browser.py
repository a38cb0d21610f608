"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright),
against the real app served by uvicorn and a real worker on threads, on SQLite.

Without /usr/bin/chromium these tests skip with a message, except under CI=true (where
.ci/run installs it), where they fail. Screenshots land in artifacts/screenshots/."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from drumbeat.app import create_app
from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import integrations
from drumbeat.services.passwords import hash_password
from drumbeat.services.workspaces import create_user
from tests.engine.test_concurrency import ThreadedWorker
from tests.factory import add_leads, new_campaign, sandbox_key
from tests.fakes.providers import _ThreadedUvicorn
from tests.web.conftest import PASSWORD

CHROMIUM = os.environ.get("DRUMBEAT_TEST_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
LAUNCH_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SCRIPT_NAME = "<script>alert(1)</script>"
EXPLANATION_ALL_KEYS_FAILED = "Every API key of the channel failed in this run; rotate or add a key, then resume."


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser():
    problem = _missing()
    if problem:
        if IN_CI:
            pytest.fail(f"browser tests must run in CI: {problem}")
        pytest.skip(f"browser tests skipped: {problem}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server(ctx):
    served = _ThreadedUvicorn(create_app(ctx))
    served.start()
    yield f"http://127.0.0.1:{served.port}"
    served.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.js_dialogs = dialogs
    yield tab
    context.close()


def shot(tab, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in_with_password(tab, base: str, email: str) -> None:
    tab.goto(f"{base}/campaigns")
    assert "/login" in tab.url
    tab.fill("#password-form input[name=email]", email)
    tab.fill("#password-form input[name=password]", PASSWORD)
    tab.click("#password-form button[type=submit]")
    tab.wait_for_url(re.compile(r".*/campaigns$"))


def sign_in_with_token(tab, base: str, token: str) -> None:
    tab.goto(f"{base}/login")
    tab.fill("#token-form input[name=token]", token)
    tab.click("#token-form button[type=submit]")
    tab.wait_for_url(re.compile(r".*/campaigns$"))


def percent(tab) -> float:
    return float(tab.get_by_test_id("percent").inner_text().rstrip("%"))


def test_an_operator_watches_pauses_sees_why_resumes_and_cancels_a_campaign(ctx, users, server, page):
    from playwright.sync_api import expect

    owner = users["owner"]["principal"]
    key = sandbox_key(ctx, owner, "whatsapp", label="sandbox key", latency_ms=40)
    api = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {users['owner']['token']}"})
    created = api.post("/api/v1/campaigns", json={"name": "Spring promo", "steps": [
        {"channel": "whatsapp", "template": {"body": "Hi {{first_name}}"}, "delay_seconds": 0}]})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    add_leads(ctx, cid, 3000)
    assert api.post(f"/api/v1/campaigns/{cid}/start").status_code == 200

    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=4, tick_seconds=0.05)
    with ThreadedWorker(worker):
        sign_in_with_password(page, server, "operator@acme.test")
        page.click(f"a[href='/campaigns/{cid}']")
        expect(page.get_by_test_id("status-chip")).to_have_text("Sending")
        page.evaluate("window.__notReloaded = true")

        # Progress rises on the page by itself (polling, no reload).
        first = percent(page)
        page.wait_for_function("(p) => parseFloat(document.querySelector('[data-testid=percent]').textContent) > p",
                               arg=first + 1)
        second = percent(page)
        page.wait_for_function("(p) => parseFloat(document.querySelector('[data-testid=percent]').textContent) > p",
                               arg=second)
        assert percent(page) > second > first
        assert int(page.locator("[data-number=sent]").inner_text()) > 0
        shot(page, "campaign-detail-sending")

        # Pause: immediate, no dialog; the paused chip says why and who.
        page.get_by_test_id("action-pause").click()
        expect(page.get_by_test_id("status-chip")).to_have_text("Paused")
        expect(page.get_by_test_id("reason-chip")).to_have_text("manual")
        expect(page.get_by_test_id("paused-meta")).to_contain_text("operator@acme.test")
        expect(page.get_by_test_id("action-pause")).to_be_hidden()
        expect(page.get_by_test_id("action-resume")).to_be_visible()

        # The sandbox key starts failing: resume, the engine stops itself with all_keys_failed.
        integrations.update_integration(ctx, owner, key, {"config": {"fail": "key", "latency_ms": 40}})
        page.get_by_test_id("action-resume").click()
        expect(page.get_by_test_id("reason-chip")).to_have_text("all_keys_failed", timeout=30_000)
        expect(page.get_by_test_id("status-chip")).to_have_text("Paused")
        chip = page.get_by_test_id("reason-chip")
        assert chip.get_attribute("title") == EXPLANATION_ALL_KEYS_FAILED
        chip.hover()
        expect(page.get_by_test_id("paused-meta")).to_contain_text("system")
        expect(page.get_by_test_id("timeline")).to_contain_text("all_keys_failed")
        shot(page, "campaign-detail-all-keys-failed")

        # Every key disabled: Resume is refused, and the inline alert lists the closed gate.
        integrations.update_integration(ctx, owner, key, {"enabled": False})
        page.get_by_test_id("action-resume").click()
        alert = page.get_by_test_id("action-alert")
        expect(alert).to_be_visible()
        expect(alert).to_contain_text("key_pool (whatsapp): no active integration on this channel")
        expect(alert.locator("li.gate-ok")).to_contain_text(["subscription: ok", "status: ok"])
        expect(page.get_by_test_id("status-chip")).to_have_text("Paused")
        shot(page, "campaign-detail-resume-refused")

        # Fixed: the key is enabled and healthy again; Resume goes through.
        integrations.update_integration(ctx, owner, key, {"enabled": True, "config": {"latency_ms": 40}})
        page.get_by_test_id("action-resume").click()
        expect(page.get_by_test_id("status-chip")).to_have_text("Sending")
        expect(alert).to_be_hidden()
        expect(page.get_by_test_id("reason-chip")).to_have_count(0)
        resumed_at = percent(page)
        page.wait_for_function("(p) => parseFloat(document.querySelector('[data-testid=percent]').textContent) > p",
                               arg=resumed_at)

        # Cancel: a dialog that wants the exact name; visibly destructive.
        page.get_by_test_id("action-cancel").click()
        dialog = page.get_by_test_id("cancel-dialog")
        expect(dialog).to_be_visible()
        submit = page.get_by_test_id("cancel-submit")
        expect(submit).to_be_disabled()
        assert "btn-danger" in submit.get_attribute("class")
        page.get_by_test_id("cancel-confirm").fill("spring promo")
        expect(submit).to_be_disabled()
        page.get_by_test_id("cancel-confirm").fill("Spring promo")
        expect(submit).to_be_enabled()
        submit.click()
        expect(dialog).to_be_hidden()
        expect(page.get_by_test_id("status-chip")).to_have_text("Canceled")
        expect(page.get_by_test_id("action-resume")).to_be_hidden()
        expect(page.get_by_test_id("action-cancel")).to_be_hidden()
        expect(page.get_by_test_id("action-duplicate")).to_be_visible()
        assert page.evaluate("window.__notReloaded") is True
        shot(page, "campaign-detail-canceled")

    assert api.get(f"/api/v1/campaigns/{cid}").json()["status"] == "canceled"
    new_campaign(ctx, owner, name="Autumn launch")
    held = new_campaign(ctx, owner, name="Winter follow-up")
    add_leads(ctx, held, 20)
    svc.start(ctx, owner, held)
    svc.pause(ctx, owner, held)
    page.goto(f"{server}/campaigns")
    expect(page.locator(f"tr[data-campaign-id='{held}'] [data-testid=reason-chip]")).to_have_text("manual")
    expect(page.locator("a.filter[data-status=draft] .count")).to_have_text("1")
    expect(page.locator(f"tr[data-campaign-id='{cid}'] [data-testid=status-chip]")).to_have_text("Canceled")
    shot(page, "campaign-list")
    assert page.js_dialogs == []


def test_a_viewer_session_shows_no_action_buttons(ctx, users, server, page):
    from playwright.sync_api import expect

    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    api = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {users['owner']['token']}"})
    cid = api.post("/api/v1/campaigns", json={"name": "Watched", "steps": [
        {"channel": "whatsapp", "template": {"body": "Hi"}, "delay_seconds": 0}]}).json()["id"]
    add_leads(ctx, cid, 10)
    api.post(f"/api/v1/campaigns/{cid}/start")
    api.post(f"/api/v1/campaigns/{cid}/pause")
    sign_in_with_token(page, server, users["viewer"]["token"])
    page.goto(f"{server}/campaigns/{cid}")
    expect(page.get_by_test_id("status-chip")).to_have_text("Paused")
    expect(page.get_by_test_id("reason-chip")).to_have_text("manual")
    assert page.locator("button").filter(has_text=re.compile("Pause|Resume|Cancel|Duplicate|Start")).count() == 0
    assert page.get_by_test_id("actions").count() == 0
    shot(page, "campaign-detail-viewer")


def test_a_campaign_named_like_a_script_renders_as_text(ctx, users, server, page):
    from playwright.sync_api import expect

    create_user(ctx, users["owner"]["principal"], "ops@acme.test", "operator", hash_password(PASSWORD))
    api = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {users['owner']['token']}"})
    steps = [{"channel": "whatsapp", "template": {"body": "<img src=x onerror=alert(2)>"}, "delay_seconds": 0}]
    cid = api.post("/api/v1/campaigns", json={"name": SCRIPT_NAME, "steps": steps}).json()["id"]
    sign_in_with_password(page, server, "ops@acme.test")
    expect(page.locator(f"tr[data-campaign-id='{cid}'] a.campaign-name")).to_have_text(SCRIPT_NAME)
    page.click(f"tr[data-campaign-id='{cid}'] a.campaign-name")
    expect(page.get_by_test_id("campaign-name")).to_have_text(SCRIPT_NAME)
    # The live script re-renders from JSON as text too.
    page.evaluate("() => new Promise(r => setTimeout(r, 200))")
    page.get_by_test_id("action-cancel").click()
    expect(page.locator(".expected-name")).to_have_text(SCRIPT_NAME)
    page.get_by_test_id("cancel-confirm").fill(SCRIPT_NAME)
    page.get_by_test_id("cancel-submit").click()
    expect(page.get_by_test_id("status-chip")).to_have_text("Canceled")
    expect(page.get_by_test_id("campaign-name")).to_have_text(SCRIPT_NAME)
    assert page.locator("script:not([src])").count() == 0
    assert page.js_dialogs == []
