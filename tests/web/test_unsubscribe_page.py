"""The public page of an email's unsubscribe link in Chromium (issue 20): no session, our
CSS only, one button that unsubscribes, and axe-core finds no serious or critical violation on any of its
states."""

from __future__ import annotations

from sqlalchemy import select

from drumbeat.services.context import Principal
from drumbeat.services.workspaces import init_workspace
from drumbeat.store.tables import leads, suppressions
from tests.conftest import PUBLIC_URL
from tests.factory import add_leads, new_campaign, sandbox_key
from tests.web.test_accessibility import axe_page, axe_source, serious_violations  # noqa: F401 - fixtures
from tests.web.test_browser import browser, server  # noqa: F401 - fixtures


def a_lead_link(ctx) -> tuple[str, str]:
    """(the path of a lead's unsubscribe link, the lead's workspace id)."""
    boot = init_workspace(ctx, "Acme <b>& Co</b>", "owner@acme.test")
    owner = Principal(boot["user_id"], boot["workspace_id"], "owner")
    sandbox_key(ctx, owner, "email")
    campaign_id = new_campaign(ctx, owner, steps=[{"channel": "email", "template": {"subject": "Hi", "body": "Hi"},
                                                   "delay_seconds": 0}])
    add_leads(ctx, campaign_id, 1)
    with ctx.db.connect() as conn:
        lead_id = conn.execute(select(leads.c.id).where(leads.c.campaign_id == campaign_id)).scalar_one()
    url = ctx.unsubscribe_links().url(owner.workspace_id, lead_id, ctx.clock().date())
    return url.removeprefix(PUBLIC_URL), owner.workspace_id


def test_the_unsubscribe_pages_pass_axe_and_load_nothing_but_our_css(ctx, server, axe_page):  # noqa: F811
    source = axe_source()
    path, _ = a_lead_link(ctx)
    tab = axe_page
    requested: list[str] = []
    tab.on("request", lambda r: requested.append(r.url))
    problems = {}

    tab.goto(server + path)
    assert tab.get_by_role("button", name="Unsubscribe").count() == 1
    assert "Acme <b>& Co</b>" in tab.inner_text("main")  # the sender's name, as text
    assert tab.context.cookies() == []
    problems["confirm"] = serious_violations(tab, source)
    test_link = ctx.unsubscribe_links().test_url(ctx.clock().date())
    tab.goto(server + test_link.removeprefix(PUBLIC_URL))
    problems["test link"] = serious_violations(tab, source)
    tab.goto(f"{server}/u/not-a-token")
    problems["invalid"] = serious_violations(tab, source)
    tab.goto(server + path)
    tab.get_by_role("button", name="Unsubscribe").click()  # a plain form post, no script
    tab.get_by_test_id("done").wait_for()
    assert "will not be contacted again by Acme <b>& Co</b>" in tab.inner_text("main")
    problems["done"] = serious_violations(tab, source)
    with ctx.db.connect() as conn:
        assert conn.execute(select(suppressions.c.reason)).scalars().all() == ["unsubscribe_link"]

    assert {u.removeprefix(server).split("/")[1] for u in requested} == {"u", "static"}
    assert {u for u in requested if "/static/" in u} == {f"{server}/static/app.css"}  # no script, no image
    failing = {name: found for name, found in problems.items() if found}
    assert not failing, "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in failing.items())
