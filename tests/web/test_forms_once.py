"""Issue 19: a double-submitted form does one thing. Each form that creates or acts carries a
one-time nonce; the second post of it (a double click, a reload, a second tab) does nothing
and leads to the first one's result with a toast. On SQLite and PostgreSQL."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from drumbeat.services import campaigns as svc
from drumbeat.services import integrations
from drumbeat.store.tables import campaigns as campaigns_table
from drumbeat.store.tables import form_submissions, imports, timeline
from drumbeat.store.tables import integrations as integrations_table
from tests.conftest import db_url  # noqa: F401 - both databases here, unlike tests/web/conftest.py
from tests.factory import add_leads, campaign_data, new_campaign, sandbox_key
from tests.web.conftest import page_csrf, sign_in
from tests.web.test_content_pages import CATALOGUE, WABA, whatsapp_key
from tests.web.test_imports import hidden_options, mapping_page

AGAIN = "Already done: this form was sent before, so nothing was done twice."


def form_nonce(page: str, action: str) -> str:
    """The form_nonce of the form posting to `action` on this page."""
    form = re.search(rf'<form method="post" [^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert form, f"no form posting to {action}"
    return re.search(r'name="form_nonce" value="([^"]+)"', form.group(1)).group(1)


def count(ctx, table, *where) -> int:
    with ctx.db.begin() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def timeline_count(ctx, cid: str, action: str) -> int:
    return count(ctx, timeline, timeline.c.campaign_id == cid, timeline.c.action == action)


def test_each_rendered_form_carries_a_fresh_nonce(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner)
    sign_in(client, "operator@acme.test")
    first = form_nonce(client.get(f"/campaigns/{cid}").text, f"/campaigns/{cid}/actions/start")
    second = form_nonce(client.get(f"/campaigns/{cid}").text, f"/campaigns/{cid}/actions/start")
    assert first != second


def test_creating_a_campaign_twice_with_one_form_creates_one_and_leads_to_it(ctx, client, users):
    sandbox_key(ctx, users["owner"]["principal"])
    sign_in(client, "operator@acme.test")
    page = client.get("/campaigns/new").text
    data = {"csrf": page_csrf(client), "form_nonce": form_nonce(page, "/campaigns/new"), "op": "draft",
            "name": "Once only", "steps.0.channel": "whatsapp", "steps.0.delay": "0", "steps.0.delay_unit": "minutes",
            "steps.0.template.body": "Hi", "pool": "all", "schedule.timezone": "UTC",
            **{"schedule.days": ["mon", "tue"]}}
    first = client.post("/campaigns/new", data=data, follow_redirects=False)
    assert first.status_code == 303
    again = client.post("/campaigns/new", data=data, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == first.headers["location"] + "?done=again"
    assert count(ctx, campaigns_table, campaigns_table.c.name == "Once only") == 1
    landed = client.get(again.headers["location"]).text
    assert re.search(r'<div id="toast"[^>]*role="status"[^>]*>' + re.escape(AGAIN) + "</div>", landed)


def test_a_refused_form_leaves_its_nonce_unused_so_the_corrected_form_goes_through(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner, name="Spring promo")
    add_leads(ctx, cid, 3)
    svc.start(ctx, owner, cid)
    sign_in(client, "operator@acme.test")
    page = client.get(f"/campaigns/{cid}/cancel").text
    data = {"csrf": page_csrf(client), "form_nonce": form_nonce(page, f"/campaigns/{cid}/actions/cancel")}
    wrong = client.post(f"/campaigns/{cid}/actions/cancel", data={**data, "confirm": "Spring"})
    assert wrong.status_code == 422 and 'value="Spring"' in wrong.text and "exact name" in wrong.text
    assert svc.get_campaign(ctx, owner, cid)["status"] == "sending"
    right = client.post(f"/campaigns/{cid}/actions/cancel", data={**data, "confirm": "Spring promo"},
                        follow_redirects=False)
    assert right.headers["location"] == f"/campaigns/{cid}?done=cancel"
    assert svc.get_campaign(ctx, owner, cid)["status"] == "canceled"


def test_each_campaign_action_posted_twice_acts_once(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner, name="Spring promo")
    add_leads(ctx, cid, 3)
    sign_in(client, "operator@acme.test")
    for action, status in (("start", "sending"), ("pause", "paused"), ("resume", "sending"),
                           ("cancel", "canceled")):
        page = client.get(f"/campaigns/{cid}" + ("/cancel" if action == "cancel" else "")).text
        data = {"csrf": page_csrf(client), "form_nonce": form_nonce(page, f"/campaigns/{cid}/actions/{action}"),
                "confirm": "Spring promo"}
        first = client.post(f"/campaigns/{cid}/actions/{action}", data=data, follow_redirects=False)
        assert first.headers["location"] == f"/campaigns/{cid}?done={action}", action
        again = client.post(f"/campaigns/{cid}/actions/{action}", data=data, follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"] == f"/campaigns/{cid}?done=again", action
        assert svc.get_campaign(ctx, owner, cid)["status"] == status
        assert timeline_count(ctx, cid, action) == 1, action


def test_the_script_path_says_already_done_and_hands_the_form_a_new_nonce(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner)
    add_leads(ctx, cid, 3)
    svc.start(ctx, owner, cid)
    sign_in(client, "operator@acme.test")
    page = client.get(f"/campaigns/{cid}").text
    data = {"csrf": page_csrf(client), "form_nonce": form_nonce(page, f"/campaigns/{cid}/actions/pause")}
    fetch = {"X-Requested-With": "fetch", "Accept": "application/json"}
    first = client.post(f"/campaigns/{cid}/actions/pause", data=data, headers=fetch).json()
    assert first["ok"] and first["form_nonce"] and first["form_nonce"] != data["form_nonce"]
    again = client.post(f"/campaigns/{cid}/actions/pause", data=data, headers=fetch).json()
    assert again["repeated"] is True and again["message"] == AGAIN
    assert timeline_count(ctx, cid, "pause") == 1
    # The nonce the answer handed over works once more (the next press of the same button).
    svc.resume(ctx, owner, cid)
    third = client.post(f"/campaigns/{cid}/actions/pause", data={**data, "form_nonce": first["form_nonce"]},
                        headers=fetch).json()
    assert third["ok"] and "repeated" not in third and timeline_count(ctx, cid, "pause") == 2


def test_a_forged_or_foreign_nonce_is_refused_and_changes_nothing(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner)
    add_leads(ctx, cid, 3)
    sign_in(client, "operator@acme.test")
    csrf = page_csrf(client)
    from fastapi.testclient import TestClient
    other = TestClient(client.app)
    sign_in(other, "owner@acme.test")
    foreign = form_nonce(other.get(f"/campaigns/{cid}").text, f"/campaigns/{cid}/actions/start")
    for nonce in ("forged", "abc.def", foreign):
        response = client.post(f"/campaigns/{cid}/actions/start", data={"csrf": csrf, "form_nonce": nonce})
        assert response.status_code == 403, nonce
    assert svc.get_campaign(ctx, owner, cid)["status"] == "draft"


def test_importing_twice_with_one_mapping_form_imports_once(ctx, client, users):
    cid = svc.create_campaign(ctx, users["owner"]["principal"], campaign_data())["id"]
    sign_in(client, "operator@acme.test")
    csrf = page_csrf(client)
    location, page = mapping_page(client, cid, csrf, text="phone,name\n+4915112345678,Ada\n")
    action = location.split("?")[0]
    data = {"csrf": csrf, "form_nonce": form_nonce(page, action), **hidden_options(page), "map.0": "phone",
            "map.1": "first_name"}
    first = client.post(action, data=data, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].endswith("?done=imported")
    again = client.post(action, data=data, follow_redirects=False)
    assert again.headers["location"] == first.headers["location"].replace("done=imported", "done=again")
    assert count(ctx, imports, imports.c.campaign_id == cid) == 1
    assert svc.get_campaign(ctx, users["owner"]["principal"], cid)["progress"]["total"] == 1


def test_adding_an_integration_twice_with_one_form_adds_one(ctx, client, users):
    sign_in(client, "owner@acme.test")
    page = client.get("/integrations/new?provider=sandbox").text
    data = {"csrf": page_csrf(client), "form_nonce": form_nonce(page, "/integrations/new"), "provider": "sandbox",
            "channel": "sms", "label": "Twice", "config.latency_ms": "0"}
    first = client.post("/integrations/new", data=data, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].endswith("?done=created")
    again = client.post("/integrations/new", data=data, follow_redirects=False)
    assert again.headers["location"] == first.headers["location"].replace("done=created", "done=again")
    assert count(ctx, integrations_table, integrations_table.c.label == "Twice") == 1


def test_disabling_from_the_list_twice_with_one_form_acts_once_and_ends_on_a_toast(ctx, client, users):
    iid = sandbox_key(ctx, users["owner"]["principal"], label="Main")
    sign_in(client, "owner@acme.test")
    page = client.get("/integrations").text
    data = {"csrf": page_csrf(client), "form_nonce": form_nonce(page, f"/integrations/{iid}/enabled"),
            "enabled": "false", "back": "list"}
    first = client.post(f"/integrations/{iid}/enabled", data=data, follow_redirects=False)
    assert first.headers["location"] == f"/integrations?saved={iid}&done=disabled"
    assert re.search(r'role="status"[^>]*>Integration disabled.</div>', client.get(first.headers["location"]).text)
    integrations.update_integration(ctx, users["owner"]["principal"], iid, {"enabled": True})
    again = client.post(f"/integrations/{iid}/enabled", data=data, follow_redirects=False)
    assert again.headers["location"] == "/integrations?done=again"
    assert integrations.get_integration(ctx, users["owner"]["principal"], iid)["enabled"] is True


def test_a_test_send_posted_twice_sends_once(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner)
    add_leads(ctx, cid, 1)
    sign_in(client, "operator@acme.test")
    page = client.get(f"/campaigns/{cid}/preview").text
    nonce = re.search(r'data-testid="test-form-0".*?name="form_nonce" value="([^"]+)"', page, re.S).group(1)
    data = {"csrf": page_csrf(client), "form_nonce": nonce, "step": "0", "to.phone": "+14155550100"}
    first = client.post(f"/campaigns/{cid}/test", data=data)
    assert first.status_code == 200 and "Accepted by" in first.text
    assert re.search(r'role="status"[^>]*>Test of step 1: Accepted by', first.text)
    again = client.post(f"/campaigns/{cid}/test", data=data, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == f"/campaigns/{cid}/preview?done=again"
    assert timeline_count(ctx, cid, "test_send") == 1


def test_a_template_sync_posted_twice_reads_meta_once(ctx, client, users, whatsapp_server):
    whatsapp_server.set_templates(WABA, CATALOGUE)
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server, waba_id=WABA)
    sign_in(client, "operator@acme.test")
    page = client.get(f"/integrations/{iid}").text
    data = {"csrf": page_csrf(client), "form_nonce": form_nonce(page, f"/integrations/{iid}/templates/sync")}
    first = client.post(f"/integrations/{iid}/templates/sync", data=data, follow_redirects=False)
    assert first.headers["location"] == f"/integrations/{iid}?synced=5"
    calls = len(whatsapp_server.template_calls())
    again = client.post(f"/integrations/{iid}/templates/sync", data=data, follow_redirects=False)
    assert again.headers["location"] == f"/integrations/{iid}?synced=5&done=again"
    assert len(whatsapp_server.template_calls()) == calls
    assert count(ctx, form_submissions) == 1
