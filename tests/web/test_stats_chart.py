"""The campaign page's "What works" card: the series as an accessible SVG chart with a
table of the same figures, and the step / variant table, where a variant is marked
leading only when a two-proportion z-test at 95 % says so (in Chromium, checked by axe)."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select, update

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as campaign_service
from drumbeat.store.tables import attempts, leads
from tests.factory import add_leads, campaign_data, sandbox_key
from tests.web.conftest import sign_in
from tests.web.test_accessibility import axe_page, axe_source, serious_violations  # noqa: F401 - fixture
from tests.web.test_browser import browser, server, shot, sign_in_with_password  # noqa: F401 - fixtures


def ab_campaign(ctx, principal, n: int, replies: dict[int, float]) -> str:
    """A started and sent A/B campaign of n leads whose variant i replied at rate replies[i]."""
    sandbox_key(ctx, principal, channel="sms")
    step = {"channel": "sms", "template": {"body": "A"}, "delay_seconds": 0,
            "variants": [{"template": {"body": "A"}, "weight": 1}, {"template": {"body": "B"}, "weight": 1}]}
    cid = campaign_service.create_campaign(ctx, principal, campaign_data(name="AB test", steps=[step]))["id"]
    add_leads(ctx, cid, n)
    campaign_service.start(ctx, principal, cid)
    with ThreadPoolExecutor(1) as pool:  # its own thread: Playwright's loop may run in this one
        pool.submit(asyncio.run, Worker(ctx, {"sandbox": SandboxAdapter()}).drain()).result()
    with ctx.db.begin() as conn:
        rows = conn.execute(select(attempts.c.lead_id, attempts.c.variant).where(attempts.c.campaign_id == cid)
                            .order_by(attempts.c.lead_id)).all()
        chosen = []
        for variant, rate in replies.items():
            mine = [lead for lead, v in rows if v == variant]
            chosen += mine[:round(len(mine) * rate)]
        conn.execute(update(leads).where(leads.c.id.in_(chosen)).values(state="replied"))
    return cid


def test_a_clear_winner_is_marked_and_a_close_race_is_not(ctx, client, users):
    owner = users["owner"]["principal"]
    clear = ab_campaign(ctx, owner, 400, {0: 0.30, 1: 0.05})
    sign_in(client, "viewer@acme.test")
    page = client.get(f"/campaigns/{clear}").text
    assert 'data-testid="stats-chart"' in page and "<title id=\"chart-title\">" in page
    assert 'aria-labelledby="chart-title chart-desc"' in page
    assert re.search(r'data-variant="A" class="leading"', page) and page.count('data-testid="leading"') == 1
    assert "Variant A leads (significant at 95 %)" in page and "two-proportion z-test at 95 %" in page


def test_a_close_race_marks_no_variant(ctx, client, users):
    owner = users["owner"]["principal"]
    close = ab_campaign(ctx, owner, 200, {0: 0.12, 1: 0.10})
    sign_in(client, "viewer@acme.test")
    page = client.get(f"/campaigns/{close}").text
    assert 'data-testid="leading"' not in page and "No variant leads yet" in page
    assert 'data-testid="variant-table"' in page


def test_in_chromium_the_chart_and_the_variant_table_show_the_figures_and_axe_finds_nothing_serious(
        ctx, users, server, axe_page):  # noqa: F811
    source = axe_source()
    owner = users["owner"]["principal"]
    cid = ab_campaign(ctx, owner, 400, {0: 0.30, 1: 0.05})
    with ctx.db.connect() as conn:
        split = [v for (v,) in conn.execute(select(attempts.c.variant).where(attempts.c.campaign_id == cid))]
    tab = axe_page
    sign_in_with_password(tab, server, "viewer@acme.test")
    tab.goto(f"{server}/campaigns/{cid}")
    chart = tab.locator("[data-testid=stats-chart] svg[role=img]")
    assert chart.is_visible()
    assert "per hour" in chart.locator("title").text_content()
    assert "sent 400" in chart.locator("desc").text_content()
    assert tab.locator("polyline[data-line=sent]").count() == 1
    tab.click("text=The chart's figures as a table")
    series = tab.locator("[data-testid=stats-series] tbody tr")
    assert series.count() >= 1
    assert sum(int(x) for x in series.locator("td:nth-child(2)").all_text_contents()) == 400
    rows = tab.locator("[data-testid=variant-table] tbody tr")
    assert rows.count() == 2
    assert [int(rows.nth(i).locator("td.num").first.text_content()) for i in (0, 1)] == [split.count(0),
                                                                                         split.count(1)]
    assert rows.nth(0).locator("[data-testid=leading]").is_visible()
    assert rows.nth(1).locator("[data-testid=leading]").count() == 0
    shot(tab, "campaign-what-works")
    assert serious_violations(tab, source) == []
