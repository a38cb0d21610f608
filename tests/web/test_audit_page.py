"""The audit log page (owner): entries in words, newest first, filters by object type and by
user, pages; operators and viewers are refused; Chromium and axe see it as a user would."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from drumbeat.services import campaigns as campaign_service
from drumbeat.services import integrations
from tests.factory import add_leads, new_campaign, sandbox_key
from tests.web.conftest import sign_in
from tests.web.test_accessibility import ZONE, axe_page, axe_source, serious_violations  # noqa: F401 - fixture
from tests.web.test_browser import browser, server, shot, sign_in_with_password  # noqa: F401 - fixtures

SECRET = "EAAG-dashboard-secret-9e9e"


def whatsapp_key(ctx, principal) -> str:
    return integrations.create_integration(ctx, principal, {
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "Acme WA",
        "credentials": {"access_token": "EAAG-first-secret-1111"},
        "config": {"phone_number_id": "1234567890", "base_url": "http://127.0.0.1:9/v19.0"}})["id"]


def history(ctx, users) -> dict:
    """The operator pauses 'Spring'; the owner rotates a WhatsApp key in the dashboard."""
    owner, operator = users["owner"]["principal"], users["operator"]["principal"]
    key = whatsapp_key(ctx, owner)
    sandbox_key(ctx, owner, "sms", label="sms key")
    spring = new_campaign(ctx, owner, name="Spring")
    add_leads(ctx, spring, 2)
    campaign_service.start(ctx, owner, spring)
    campaign_service.pause(ctx, operator, spring)
    integrations.update_integration(ctx, owner, key, {"credentials": {"access_token": SECRET}})
    return {"key": key, "spring": spring}


def texts(page: str) -> list[str]:
    rows = re.findall(r'<tr data-testid="audit-entry"[^>]*>(.*?)</tr>', page, re.S)
    return [html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", row.split("</td>", 1)[1])).strip())
            for row in rows]


def test_the_owner_reads_every_entry_in_words_newest_first_and_never_a_secret(ctx, client, users):
    history(ctx, users)
    sign_in(client, "owner@acme.test")

    page = client.get("/audit")

    assert page.status_code == 200
    said = texts(page.text)
    assert said[:3] == ["owner@acme.test changed the credentials (access_token) of integration 'Acme WA'",
                        "operator@acme.test paused campaign 'Spring'",
                        "owner@acme.test started campaign 'Spring'"]
    assert "owner@acme.test added user operator@acme.test as operator" in said
    assert SECRET not in page.text and "EAAG-first-secret-1111" not in page.text
    assert '<a href="/audit">Audit log</a>' in page.text


def test_filters_keep_their_choice_and_narrow_the_entries(ctx, client, users):
    history(ctx, users)
    sign_in(client, "owner@acme.test")
    operator_id = users["operator"]["id"]

    by_operator = client.get("/audit", params={"actor": operator_id})
    integrations_only = client.get("/audit", params={"object_type": "integration"})

    assert texts(by_operator.text) == ["operator@acme.test paused campaign 'Spring'"]
    assert f'<option value="{operator_id}" selected>operator@acme.test</option>' in by_operator.text
    assert texts(integrations_only.text) == [
        "owner@acme.test changed the credentials (access_token) of integration 'Acme WA'",
        "owner@acme.test added integration 'Acme WA'"]
    assert '<option value="integration" selected>Integrations</option>' in integrations_only.text
    assert texts(client.get("/audit", params={"object_type": "webhook"}).text) == []
    assert "Nothing matches these filters." in client.get("/audit", params={"object_type": "webhook"}).text


def test_pages_go_back_in_time_fifty_at_a_time(ctx, client, users):
    owner = users["owner"]["principal"]
    for n in range(55):
        sandbox_key(ctx, owner, "sms", label=f"k{n}")
        integrations.update_integration(ctx, owner, _last_integration(ctx, owner), {"label": f"key {n}"})
    sign_in(client, "owner@acme.test")

    first = client.get("/audit")
    older_link = re.search(r'href="(/audit\?cursor=\d+)" data-testid="audit-next"', first.text).group(1)
    second = client.get(older_link)

    assert len(texts(first.text)) == 50
    assert texts(first.text)[0] == "owner@acme.test changed the label from k54 to key 54 of integration 'key 54'"
    assert set(texts(first.text)).isdisjoint(texts(second.text))
    assert texts(second.text)[-1] == "Drumbeat created workspace 'Acme'"
    assert 'data-testid="audit-next"' not in second.text and '<a href="/audit">← Newest</a>' in second.text


def _last_integration(ctx, owner) -> str:
    return integrations.list_integrations(ctx, owner)[-1]["id"]


def test_operators_and_viewers_are_refused_and_see_no_link(ctx, client, users):
    for role in ("operator", "viewer"):
        client.cookies.clear()
        sign_in(client, f"{role}@acme.test")
        assert client.get("/audit").status_code == 403
        assert 'href="/audit"' not in client.get("/campaigns").text


def test_user_text_is_escaped(ctx, client, users):
    owner = users["owner"]["principal"]
    new_campaign(ctx, owner, name="<script>alert(1)</script>")
    sign_in(client, "owner@acme.test")

    page = client.get("/audit").text

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_filter_or_cursor_the_page_never_offers_is_dropped(ctx, client, users):
    history(ctx, users)
    sign_in(client, "owner@acme.test")
    everything = texts(client.get("/audit").text)

    for params in ({"object_type": "lead"}, {"actor": "nobody"}, {"cursor": "abc"}, {"cursor": "9" * 30}):
        page = client.get("/audit", params=params)
        assert page.status_code == 200
        assert texts(page.text) == everything


def test_in_chromium_the_owner_finds_the_log_filters_it_sees_local_times_and_axe_finds_nothing_serious(
        ctx, users, server, browser, axe_page):  # noqa: F811
    from playwright.sync_api import expect

    source = axe_source()
    history(ctx, users)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id=ZONE)
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    try:
        sign_in_with_password(tab, server, "owner@acme.test")
        tab.get_by_role("link", name="Audit log").click()
        expect(tab.get_by_role("heading", name="Audit log")).to_be_visible()
        rows = tab.get_by_test_id("audit-entry")
        expect(rows.first).to_contain_text("owner@acme.test changed the credentials (access_token) of "
                                           "integration 'Acme WA'")
        stamp = rows.first.locator("time")
        utc = datetime.strptime(stamp.get_attribute("title"), "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
        expect(stamp).to_have_text(f"{utc.astimezone(ZoneInfo(ZONE)):%Y-%m-%d %H:%M:%S} {ZONE}")
        shot(tab, "audit-log")

        tab.get_by_label("Who").select_option(label="operator@acme.test")
        tab.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_text(re.compile("operator@acme.test paused campaign 'Spring'"))
        expect(tab.get_by_label("Who")).to_have_value(users["operator"]["id"])
        shot(tab, "audit-log-filtered")
        rows.first.get_by_role("link").click()
        expect(tab.get_by_role("heading", name="Spring")).to_be_visible()
    finally:
        context.close()

    axe_page.goto(f"{server}/login")
    sign_in_with_password(axe_page, server, "owner@acme.test")
    axe_page.goto(f"{server}/audit")
    assert serious_violations(axe_page, source) == []
    axe_page.goto(f"{server}/audit?object_type=campaign")
    assert serious_violations(axe_page, source) == []
