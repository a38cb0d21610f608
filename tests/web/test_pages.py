"""The dashboard on the server side: sessions, CSRF, roles and escaping (no browser)."""

from __future__ import annotations

import asyncio
import re

from fastapi.testclient import TestClient

from drumbeat.app import create_app
from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import integrations
from drumbeat.web.sessions import SESSION_COOKIE
from tests.factory import add_leads, campaign_data, new_campaign, sandbox_key, workspace
from tests.web.conftest import PASSWORD, login_csrf, page_csrf, sign_in

SCRIPT_NAME = "<script>alert(1)</script>"


def test_pages_need_a_session_and_send_the_visitor_to_sign_in(client):
    for path in ("/campaigns", "/campaigns/abc", "/integrations", "/notifications", "/campaigns/abc/leads"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path
    assert client.get("/campaigns/abc/live.json").status_code == 401


def test_signing_in_with_a_password_sets_an_httponly_samesite_session_cookie(client, users):
    response = client.post("/login", data={"csrf": login_csrf(client), "email": "Owner@Acme.test",
                                           "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/campaigns"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert client.get("/campaigns").status_code == 200


def test_a_wrong_password_or_unknown_email_is_refused_alike(client, users):
    for email, password in (("owner@acme.test", "wrong"), ("nobody@acme.test", PASSWORD)):
        response = client.post("/login", data={"csrf": login_csrf(client), "email": email, "password": password})
        assert response.status_code == 401 and "not valid" in response.text
    assert client.get("/campaigns", follow_redirects=False).status_code == 303


def test_signing_in_by_pasting_a_token(client, users):
    response = client.post("/login", data={"csrf": login_csrf(client), "token": users["viewer"]["token"]},
                           follow_redirects=False)
    assert response.status_code == 303
    assert "viewer@acme.test" in client.get("/campaigns").text


def test_the_sign_in_form_needs_its_own_csrf_token(client, users):
    client.get("/login")
    response = client.post("/login", data={"csrf": "forged", "email": "owner@acme.test", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/campaigns", follow_redirects=False).status_code == 303


def test_a_tampered_session_cookie_is_no_session(client, users):
    sign_in(client, "owner@acme.test")
    value = client.cookies.get(SESSION_COOKIE)
    body, mac = value.split(".")
    client.cookies.set(SESSION_COOKIE, body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac)
    assert client.get("/campaigns", follow_redirects=False).status_code == 303


def test_the_next_parameter_never_redirects_to_another_site(client, users):
    for target in ("//evil.test/x", "https://evil.test/", "/\\evil.test"):
        response = client.post("/login", data={"csrf": login_csrf(client), "email": "owner@acme.test",
                                               "password": PASSWORD, "next": target}, follow_redirects=False)
        assert response.headers["location"] == "/campaigns", target


def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(ctx, client, users):
    sandbox_key(ctx, users["owner"]["principal"])
    cid = new_campaign(ctx, users["owner"]["principal"])
    add_leads(ctx, cid, 5)
    svc.start(ctx, users["owner"]["principal"], cid)
    sign_in(client, "operator@acme.test")
    for data, headers in (({}, {}), ({"csrf": "forged"}, {}), ({}, {"X-CSRF-Token": "forged"})):
        response = client.post(f"/campaigns/{cid}/actions/pause", data=data, headers=headers)
        assert response.status_code == 403
    # Another session's token does not fit this session either.
    other = TestClient(client.app)
    sign_in(other, "owner@acme.test")
    response = client.post(f"/campaigns/{cid}/actions/pause", data={"csrf": page_csrf(other)})
    assert response.status_code == 403
    assert svc.get_campaign(ctx, users["owner"]["principal"], cid)["status"] == "sending"
    response = client.post(f"/campaigns/{cid}/actions/pause", data={"csrf": page_csrf(client)},
                           follow_redirects=False)
    assert response.status_code == 303
    assert svc.get_campaign(ctx, users["owner"]["principal"], cid)["status"] == "paused"


def test_a_viewer_sees_no_action_buttons_and_the_server_refuses_the_actions(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner)
    add_leads(ctx, cid, 5)
    svc.start(ctx, owner, cid)
    sign_in(client, "viewer@acme.test")
    page = client.get(f"/campaigns/{cid}").text
    assert 'data-testid="actions"' not in page and "/actions/" not in page and "cancel-dialog" not in page
    csrf = page_csrf(client)
    for action in ("pause", "cancel", "duplicate"):
        response = client.post(f"/campaigns/{cid}/actions/{action}", data={"csrf": csrf, "confirm": "Spring promo"},
                               headers={"X-Requested-With": "fetch"})
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert svc.get_campaign(ctx, owner, cid)["status"] == "sending"
    assert svc.list_campaigns(ctx, owner)["items"].__len__() == 1
    assert client.get(f"/campaigns/{cid}/live.json").json()["actions"] == []


def test_user_text_is_escaped_everywhere(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner, label=SCRIPT_NAME)
    steps = [{"channel": "whatsapp", "template": {"body": "<img src=x onerror=alert(2)>"}, "delay_seconds": 0}]
    cid = svc.create_campaign(ctx, owner, campaign_data(SCRIPT_NAME, steps=steps))["id"]
    add_leads(ctx, cid, 1)
    sign_in(client, "owner@acme.test")
    for path in ("/campaigns", f"/campaigns/{cid}", f"/campaigns/{cid}/leads", "/integrations",
                 "/campaigns?q=" + SCRIPT_NAME):
        response = client.get(path)
        assert response.status_code == 200
        assert "<script>alert" not in response.text and "<img src=x" not in response.text, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/campaigns/{cid}").text


def test_resume_refused_shows_every_closed_gate_without_javascript(ctx, client, users):
    owner = users["owner"]["principal"]
    key = sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner)
    add_leads(ctx, cid, 5)
    svc.start(ctx, owner, cid)
    svc.pause(ctx, owner, cid)
    integrations.update_integration(ctx, owner, key, {"enabled": False})
    sign_in(client, "operator@acme.test")
    response = client.post(f"/campaigns/{cid}/actions/resume", data={"csrf": page_csrf(client)})
    assert response.status_code == 409
    assert "key_pool (whatsapp): no active integration on this channel" in response.text
    fetched = client.post(f"/campaigns/{cid}/actions/resume", data={"csrf": page_csrf(client)},
                          headers={"X-Requested-With": "fetch"})
    assert fetched.status_code == 409 and fetched.json()["error"]["code"] == "resume_blocked"
    assert any(g["gate"] == "key_pool" and not g["ok"] for g in fetched.json()["error"]["details"]["gates"])


def test_cancel_needs_the_exact_name(ctx, client, users):
    owner = users["owner"]["principal"]
    cid = new_campaign(ctx, owner, name="Spring promo")
    sign_in(client, "operator@acme.test")
    csrf = page_csrf(client)
    wrong = client.post(f"/campaigns/{cid}/actions/cancel", data={"csrf": csrf, "confirm": "spring promo"},
                        headers={"X-Requested-With": "fetch"})
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "confirmation_required"
    right = client.post(f"/campaigns/{cid}/actions/cancel", data={"csrf": csrf, "confirm": "Spring promo"},
                        headers={"X-Requested-With": "fetch"})
    assert right.status_code == 200 and right.json()["status"] == "canceled"


def test_duplicate_answers_the_new_campaigns_page(ctx, client, users):
    cid = new_campaign(ctx, users["owner"]["principal"], name="Spring promo")
    sign_in(client, "operator@acme.test")
    response = client.post(f"/campaigns/{cid}/actions/duplicate", data={"csrf": page_csrf(client)},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] != f"/campaigns/{cid}"
    assert "Spring promo (copy)" in client.get(response.headers["location"]).text


def test_another_workspaces_campaign_is_not_found(ctx, client, users):
    other = workspace(ctx, "Other")
    cid = new_campaign(ctx, other)
    sign_in(client, "owner@acme.test")
    assert client.get(f"/campaigns/{cid}").status_code == 404
    assert client.get(f"/campaigns/{cid}/live.json").status_code == 404
    response = client.post(f"/campaigns/{cid}/actions/cancel", data={"csrf": page_csrf(client), "confirm": "x"})
    assert response.status_code == 404


def test_the_list_filters_counts_searches_sorts_and_pages(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    for i in range(120):
        new_campaign(ctx, owner, name=f"Batch {i:03d}")
    started = new_campaign(ctx, owner, name="Live one")
    add_leads(ctx, started, 3)
    svc.start(ctx, owner, started)
    sign_in(client, "viewer@acme.test")
    page = client.get("/campaigns").text
    assert re.search(r'data-status="draft">.*?<span class="count">120</span>', page, re.S)
    assert re.search(r'data-status="sending">.*?<span class="count">1</span>', page, re.S)
    assert "Page 1 of 3" in page and page.count("data-campaign-id=") == 50
    sending = client.get("/campaigns?status=sending").text
    assert sending.count("data-campaign-id=") == 1 and "Live one" in sending
    found = client.get("/campaigns?q=batch 11").text
    assert found.count("data-campaign-id=") == 10
    by_name = client.get("/campaigns?sort=name&order=asc").text
    assert by_name.index("Batch 000") < by_name.index("Batch 001")
    assert client.get("/campaigns?sort=percent&page=3").status_code == 200
    assert client.get("/campaigns?sort=bogus&page=-1&status=nope").status_code == 200


def test_integrations_show_masked_secrets_and_only_owners_change_them(ctx, client, users):
    owner = users["owner"]["principal"]
    created = integrations.create_integration(ctx, owner, {
        "channel": "sms", "provider": "twilio", "label": "Twilio main",
        "credentials": {"account_sid": "AC0123456789abcdef", "auth_token": "supersecrettoken1234"},
        "config": {"from": "+15550001111"}})
    sign_in(client, "operator@acme.test")
    page = client.get("/integrations").text
    assert "supersecrettoken1234" not in page and "****1234" in page
    assert 'data-testid="toggle-enabled"' not in page
    refused = client.post(f"/integrations/{created['id']}", data={"csrf": page_csrf(client), "enabled": "false"})
    assert refused.status_code == 403
    owner_client = TestClient(client.app)
    sign_in(owner_client, "owner@acme.test")
    csrf = page_csrf(owner_client)
    rotated = owner_client.post(f"/integrations/{created['id']}",
                                data={"csrf": csrf, "cred.auth_token": "newsecrettoken9876", "cred.account_sid": ""},
                                follow_redirects=False)
    assert rotated.status_code == 303
    after = integrations.get_integration(ctx, owner, created["id"])
    assert after["credentials"] == {"account_sid": "****cdef", "auth_token": "****9876"}
    owner_client.post(f"/integrations/{created['id']}", data={"csrf": csrf, "enabled": "false"})
    assert integrations.get_integration(ctx, owner, created["id"])["state"] == "disabled"


def test_an_unparseable_or_too_deep_integration_config_is_a_422_and_changes_nothing(ctx, client, users):
    owner = users["owner"]["principal"]
    created = integrations.create_integration(ctx, owner, {"channel": "sms", "provider": "sandbox", "label": "s",
                                                           "credentials": {}, "config": {}})
    sign_in(client, "owner@acme.test")
    csrf = page_csrf(client)
    for config in ("{not json", "[1]", "[" * 10_000 + "]" * 10_000):
        response = client.post(f"/integrations/{created['id']}", data={"csrf": csrf, "config": config},
                               headers={"X-Requested-With": "fetch"})
        assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"
    assert integrations.get_integration(ctx, owner, created["id"])["config"] == created["config"]


def test_a_key_deleted_from_the_config_textarea_is_gone_after_saving(ctx, client, users):
    owner = users["owner"]["principal"]
    created = integrations.create_integration(ctx, owner, {
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "WA",
        "credentials": {"access_token": "EAAG-tok-1234"},
        "config": {"phone_number_id": "106540352242922", "waba_id": "102290129340398"}})
    sign_in(client, "owner@acme.test")

    saved = client.post(f"/integrations/{created['id']}", follow_redirects=False,
                        data={"csrf": page_csrf(client), "config": '{"phone_number_id": "106540352242922"}'})

    assert saved.status_code == 303
    after = integrations.get_integration(ctx, owner, created["id"])
    assert after["config"] == {"phone_number_id": "106540352242922"}
    assert after["credentials"] == {"access_token": "****1234"}


def test_sign_out_ends_the_session(client, users):
    sign_in(client, "owner@acme.test")
    client.post("/logout", data={"csrf": page_csrf(client)})
    assert client.get("/campaigns", follow_redirects=False).status_code == 303


def test_the_app_serves_its_own_script_and_styles(client):
    assert "createTextNode" in client.get("/static/app.js").text
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/../pages.py").status_code == 404


def test_lead_pages_list_filter_and_show_attempts(ctx, client, users):
    owner = users["owner"]["principal"]
    cid = new_campaign(ctx, owner)
    add_leads(ctx, cid, 60)
    sign_in(client, "viewer@acme.test")
    page = client.get(f"/campaigns/{cid}/leads").text
    assert page.count("/leads/") >= 50 and "Next page" in page
    assert client.get(f"/campaigns/{cid}/leads?q=lead7%40").text.count('href="/campaigns/' + cid + '/leads/') == 1
    assert "No lead matches" in client.get(f"/campaigns/{cid}/leads?state=failed").text
    lead_id = re.search(rf'/campaigns/{cid}/leads/(\d+)', page).group(1)
    assert "No attempt yet" in client.get(f"/campaigns/{cid}/leads/{lead_id}").text
    assert client.get(f"/campaigns/{cid}/leads/999999").status_code == 404


def test_the_app_factory_is_unchanged_for_api_clients(ctx):
    with TestClient(create_app(ctx)) as c:
        assert c.get("/healthz").status_code == 200


def test_a_campaign_stopped_by_dead_keys_says_so_in_words_and_marks_the_key_errors(ctx, client, users):
    owner = users["owner"]["principal"]
    key = sandbox_key(ctx, owner, label="Acme WA", fail="key")
    cid = new_campaign(ctx, owner)
    add_leads(ctx, cid, 5)
    svc.start(ctx, owner, cid)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=2, tick_seconds=3600).drain())
    sign_in(client, "viewer@acme.test")

    page = client.get(f"/campaigns/{cid}").text
    explanation = re.search(r'data-testid="pause-explanation">([^<]+)<', page).group(1)
    assert explanation.startswith("Every WhatsApp key failed: &#39;Acme WA&#39; answered sandbox:key")
    assert re.search(r'data-testid="error-scope">key</span> <code>sandbox:key</code>', page)
    live = client.get(f"/campaigns/{cid}/live.json").json()
    assert live["paused"]["explanation"].startswith("Every WhatsApp key failed: 'Acme WA'")
    assert [(e["scope"], e["code"]) for e in live["errors"]] == [("key", "sandbox:key")]
    # The fix is one click away, on the page and in the live update.
    assert f'<a href="/integrations/{key}#edit" data-testid="pause-fix">Update the key →</a>' in page
    assert live["paused"]["fix"] == {"href": f"/integrations/{key}#edit", "text": "Update the key →"}
