"""The campaign list's Channels, Next send and Replies columns, on the page (without
JavaScript) and in /campaigns/live.json, which the page's script polls; and in Chromium,
a row that changes in the database changes on the open page without a reload."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from sqlalchemy import update

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.store.tables import leads
from tests.factory import ALL_DAYS, add_leads, new_campaign, sandbox_key
from tests.web.conftest import sign_in
from tests.web.test_browser import browser, page, server, sign_in_with_password  # noqa: F401 - fixtures

TWO_STEPS = [{"channel": "whatsapp", "template": {"body": "Hi {{first_name}}"}, "delay_seconds": 0},
             {"channel": "email", "template": {"subject": "Hello", "body": "Hi again"}, "delay_seconds": 3600}]


def _mark_replied(ctx, campaign_id: str, n: int) -> None:
    with ctx.db.begin() as conn:
        ids = [r.id for r in conn.execute(leads.select().where(leads.c.campaign_id == campaign_id)
                                          .order_by(leads.c.id).limit(n))]
        conn.execute(update(leads).where(leads.c.id.in_(ids)).values(state="replied"))


def _row(html: str, campaign_id: str) -> str:
    return re.search(rf'<tr data-campaign-id="{campaign_id}".*?</tr>', html, re.S).group(0)


def _cell(row: str, name: str) -> str:
    html = re.search(rf'data-cell="{name}"[^>]*>(.*?)</td>', row, re.S).group(1)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_the_list_shows_each_campaigns_channels_next_send_and_replies_without_javascript(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    draft = new_campaign(ctx, owner, name="Draft two steps", steps=TWO_STEPS)
    capped = new_campaign(ctx, owner, name="Capped", limits={"daily_cap": 1, "weekly_cap": None,
                                                            "rate_per_second": None, "ramp": None})
    add_leads(ctx, capped, 4)
    svc.start(ctx, owner, capped)
    # today's one send goes out: the other leads wait for tomorrow
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=4, tick_seconds=3600).drain())
    _mark_replied(ctx, capped, 2)
    scheduled = new_campaign(ctx, owner, name="Scheduled", schedule={
        "timezone": "UTC", "days": ALL_DAYS, "window_start": "00:00", "window_end": "24:00",
        "randomize_within_window": False, "start_at": None})
    svc.schedule(ctx, owner, scheduled, ctx.clock() + timedelta(days=1))
    own = svc.get_campaign(ctx, owner, capped)
    assert own["next_send_reason"] == "daily_cap"

    sign_in(client, "viewer@acme.test")
    html = client.get("/campaigns").text
    assert "<th>Channels</th>" in html and "<th>Next send</th>" in html and ">Replies</th>" in html
    row = _row(html, draft)
    assert _cell(row, "channels") == "💬 WhatsApp ✉️ Email"
    assert _cell(row, "next-send") == "—" and _cell(row, "replies") == "0"
    row = _row(html, capped)
    stamp = own["next_send_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f'<time datetime="{stamp[:10]}T{stamp[11:19]}Z" title="{stamp}">{stamp}</time>' in row
    assert "the daily cap is reached" in _cell(row, "next-send")
    assert _cell(row, "replies") == "2"
    assert "scheduled start" in _cell(_row(html, scheduled), "next-send")

    live = client.get("/campaigns/live.json")
    assert live.status_code == 200 and live.headers["cache-control"] == "no-store"
    items = {item["id"]: item for item in live.json()["items"]}
    assert items[capped]["replies"] == 2
    assert items[capped]["next_send"] == {"at": stamp, "why": "the daily cap is reached"}
    assert items[draft]["next_send"] is None
    assert [c["word"] for c in items[draft]["channels"]] == ["WhatsApp", "Email"]
    assert live.json()["status_counts"]["sending"] == 1 and live.json()["all_count"] == 3


def test_the_live_list_follows_the_pages_filters_and_needs_a_session(ctx, client, users):
    owner = users["owner"]["principal"]
    for name in ("Alpha", "Beta", "Gamma"):
        new_campaign(ctx, owner, name=name)
    assert client.get("/campaigns/live.json").status_code == 401  # no session: the envelope, no redirect
    sign_in(client, "viewer@acme.test")
    html = client.get("/campaigns?q=et&sort=name&order=asc").text
    url = re.search(r'data-live-url="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert url.startswith("/campaigns/live.json?")
    names = [item["name"] for item in client.get(url).json()["items"]]
    assert names == ["Beta"]
    # nonsense filters fall back as the page's do
    assert client.get("/campaigns/live.json?sort=bogus&page=-3&status=nope").status_code == 200


def test_the_open_list_updates_replies_and_next_send_without_a_reload(ctx, users, server, page):  # noqa: F811
    from playwright.sync_api import expect

    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    sending = new_campaign(ctx, owner, name="Sending")
    add_leads(ctx, sending, 5)
    svc.start(ctx, owner, sending)
    draft = new_campaign(ctx, owner, name="Starts later")
    add_leads(ctx, draft, 2, start=100)

    sign_in_with_password(page, server, "viewer@acme.test")
    replies = page.locator(f"tr[data-campaign-id='{sending}'] [data-testid=replies]")
    next_send = page.locator(f"tr[data-campaign-id='{draft}'] [data-testid=next-send]")
    expect(replies).to_have_text("0")
    expect(next_send).to_have_text("—")
    page.evaluate("window.__notReloaded = true")

    _mark_replied(ctx, sending, 3)
    svc.start(ctx, owner, draft)
    expect(replies).to_have_text("3", timeout=15_000)
    expect(next_send.locator("time")).to_have_count(1, timeout=15_000)
    expect(next_send).to_contain_text("due now")
    # shown in the viewer's zone by the script, UTC on hover
    assert next_send.locator("time").get_attribute("title").endswith(" UTC")
    assert next_send.locator("time").get_attribute("data-local") is not None
    expect(page.locator(f"tr[data-campaign-id='{draft}'] [data-testid=status-chip]")).to_have_text("Sending")
    expect(page.locator("a.filter[data-status=sending] .count")).to_have_text("2")
    assert page.evaluate("window.__notReloaded") is True
