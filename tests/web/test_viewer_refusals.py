"""Issue 19: a viewer sees no action and the server refuses it anyway — checked for every POST
route the dashboard has (a route added later is checked too), with real ids, so that a
missing role check would show as a real change."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from drumbeat.services import campaigns as svc
from drumbeat.services import integrations, replies, workspaces
from drumbeat.services import leads as lead_svc
from drumbeat.store.tables import campaigns
from drumbeat.store.tables import replies as reply_table
from drumbeat.web import builder, imports, integration_forms, pages, settings
from drumbeat.web import replies as reply_pages
from tests.factory import add_leads, new_campaign, sandbox_key
from tests.web.conftest import page_csrf, sign_in

# Posts a viewer may make: signing in and out, and the builder's SMS segment counter (reads only).
FOR_EVERYONE = {"/login", "/logout", "/campaigns/builder/sms-size"}
WEB_POSTS = sorted({route.path for module in (builder, integration_forms, imports, pages, settings, reply_pages)
                    for route in module.router.routes if "POST" in route.methods} - FOR_EVERYONE)


def test_the_dashboard_has_the_post_routes_this_check_expects():
    assert {"/campaigns/new", "/campaigns/{campaign_id}/actions/{action}", "/integrations/new",
            "/integrations/{integration_id}/enabled", "/campaigns/{campaign_id}/leads/import/{token}",
            "/campaigns/{campaign_id}/test", "/integrations/{integration_id}/templates/sync",
            "/settings", "/replies/{reply_id}/handled"} <= set(WEB_POSTS)


@pytest.mark.parametrize("path", WEB_POSTS)
def test_a_viewer_is_refused_every_action_with_a_403_page_and_nothing_changes(ctx, client, users, path):
    owner = users["owner"]["principal"]
    iid = sandbox_key(ctx, owner, label="Main")
    cid = new_campaign(ctx, owner, name="Spring promo")
    add_leads(ctx, cid, 2)
    svc.start(ctx, owner, cid)
    lead_id = lead_svc.list_leads(ctx, owner, cid, limit=1)["items"][0]["id"]
    reply_id = _a_reply(ctx, cid, int(lead_id))
    before = (svc.list_campaigns(ctx, owner)["items"], integrations.list_integrations(ctx, owner),
              workspaces.get_workspace(ctx, owner), replies.list_replies(ctx, owner)["items"])
    sign_in(client, "viewer@acme.test")
    url = path.format(campaign_id=cid, action="pause", lead_id=lead_id, integration_id=iid, token="0" * 32,
                      reply_id=reply_id)
    data = {"csrf": page_csrf(client), "enabled": "false", "event": "disconnected", "confirm": "Spring promo",
            "resolution": "mark_sent", "step": "0", "to.phone": "+14155550100", "name": "Viewer's",
            "provider": "sandbox", "channel": "sms", "label": "Viewer's", "op": "draft", "config": "{}",
            "map.0": "phone", "opt_out_words": "abmelden", "cap": "on", "cap_max": "3", "cap_days": "7"}
    response = client.post(url, data=data, follow_redirects=False)
    assert response.status_code == 403, (url, response.status_code)
    assert "text/html" in response.headers["content-type"] and "role" in response.text
    after = (svc.list_campaigns(ctx, owner)["items"], integrations.list_integrations(ctx, owner),
             workspaces.get_workspace(ctx, owner), replies.list_replies(ctx, owner)["items"])
    assert [c["status"] for c in after[0]] == [c["status"] for c in before[0]] == ["sending"]
    assert after[1] == before[1] and after[2] == before[2]
    assert after[3] == before[3] and [r["handled"] for r in after[3]] == [False]


def _a_reply(ctx, campaign_id: str, lead_id: int) -> str:
    """A kept reply of that lead (as the inbound path keeps one), for the inbox's action."""
    with ctx.db.begin() as conn:
        workspace_id = conn.execute(select(campaigns.c.workspace_id).where(campaigns.c.id == campaign_id)).scalar_one()
        return str(conn.execute(insert(reply_table).values(
            workspace_id=workspace_id, campaign_id=campaign_id, lead_id=lead_id, channel="whatsapp", kind="reply",
            text="hello", at=ctx.clock(), handled=False).returning(reply_table.c.id)).scalar_one())


def test_only_an_owner_sees_enable_and_disable_on_the_integration_list(ctx, client, users):
    sandbox_key(ctx, users["owner"]["principal"], label="Main")
    for role in ("viewer", "operator"):
        sign_in(client, f"{role}@acme.test")
        page = client.get("/integrations").text
        assert 'data-testid="toggle-enabled"' not in page and "/enabled" not in page, role
    sign_in(client, "owner@acme.test")
    assert 'data-testid="toggle-enabled"' in client.get("/integrations").text


def test_the_cancel_confirmation_page_is_for_operators_of_a_campaign_that_can_still_be_canceled(ctx, client,
                                                                                                users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner, name="<b>Spring</b>")
    add_leads(ctx, cid, 2)
    svc.start(ctx, owner, cid)
    sign_in(client, "viewer@acme.test")
    assert client.get(f"/campaigns/{cid}/cancel").status_code == 403
    sign_in(client, "operator@acme.test")
    page = client.get(f"/campaigns/{cid}/cancel")
    assert page.status_code == 200 and f'action="/campaigns/{cid}/actions/cancel"' in page.text
    assert "&lt;b&gt;Spring&lt;/b&gt;" in page.text and "<b>Spring</b>" not in page.text
    assert 'name="form_nonce"' in page.text and "data-async" not in page.text.split('data-testid="cancel-page"')[1]
    assert client.get("/campaigns/nope/cancel").status_code == 404
    svc.cancel(ctx, owner, cid, "<b>Spring</b>")
    assert client.get(f"/campaigns/{cid}/cancel").status_code == 409
