"""Outbound webhooks in the browser (issue 21): an owner adds one (its whsec_ secret shown
once), chooses its events, sends a test delivery and deletes one after a confirmation; the
delivery log shows status codes, tries and deliveries given up; everyone else reads the list
with no form, and the server refuses their posts."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from standardwebhooks import Webhook as StandardWebhook

from drumbeat.engine.notifier import Notifier
from drumbeat.services import notifications
from tests.api.test_webhooks import Receiver, free_port
from tests.web.conftest import page_csrf, sign_in
from tests.web.test_accessibility import axe_page, axe_source, serious_violations  # noqa: F401 - fixture
from tests.web.test_browser import browser, server, shot, sign_in_with_password  # noqa: F401 - fixtures
from tests.web.test_settings_page import field_error

HOOK = "https://hooks.example.com/drumbeat"


def deliver(ctx, rounds: int = 3) -> None:
    async def main():
        notifier = Notifier(ctx, base_delay=0.02, max_delay=0.1, timeout=2)
        async with httpx.AsyncClient() as notifier.client:
            for _ in range(rounds):
                await notifier.deliver_due()
                await asyncio.sleep(0.03)

    asyncio.run(main())


def test_every_role_finds_the_page_and_only_the_owner_gets_the_forms(ctx, client, users):
    hook = notifications.create_webhook(ctx, users["owner"]["principal"], HOOK, None, ["campaign.paused"])
    for role in ("viewer", "operator"):
        sign_in(client, f"{role}@acme.test")
        assert '<a href="/notifications">Notifications</a>' in client.get("/campaigns").text
        page = client.get("/notifications").text
        assert HOOK in page and "<form method=\"post\" action=\"/notifications" not in page, role
        assert "Send a test delivery" not in page and "Delete webhook" not in page
    sign_in(client, "owner@acme.test")
    page = client.get("/notifications").text
    assert 'action="/notifications/webhooks"' in page and 'value="lead.in_doubt"' in page
    assert f'action="/notifications/webhooks/{hook["id"]}/test"' in page
    assert f'href="/notifications/webhooks/{hook["id"]}/delete"' in page


def test_an_owner_adds_a_webhook_and_sees_its_generated_secret_once(ctx, client, users):
    sign_in(client, "owner@acme.test")
    response = client.post("/notifications/webhooks", data={
        "csrf": page_csrf(client), "url": HOOK, "events": ["campaign.paused", "lead.in_doubt"]})
    assert response.status_code == 201
    secret = re.search(r'data-testid="new-secret">(whsec_[A-Za-z0-9+/=]+)<', response.text).group(1)
    [hook] = notifications.list_webhooks(ctx, users["owner"]["principal"])
    assert hook["url"] == HOOK and hook["events"] == ["campaign.paused", "lead.in_doubt"]
    assert hook["secret"] == "****" + secret[-4:]
    again = client.get("/notifications").text
    assert secret not in again and "****" + secret[-4:] in again  # once, then masked


def test_the_same_form_posted_twice_adds_one_webhook_and_queues_one_test_delivery(ctx, client, users):
    owner = users["owner"]["principal"]
    sign_in(client, "owner@acme.test")
    page = client.get("/notifications").text
    nonce = re.search(r'name="form_nonce" value="([^"]+)"', page).group(1)
    form = {"csrf": page_csrf(client), "form_nonce": nonce, "url": HOOK, "events": ["campaign.paused"]}
    assert client.post("/notifications/webhooks", data=form).status_code == 201
    again = client.post("/notifications/webhooks", data=form, follow_redirects=False)
    assert again.status_code == 303 and "done=again" in again.headers["location"]
    [hook] = notifications.list_webhooks(ctx, owner)
    page = client.get("/notifications").text
    nonces = re.findall(rf'action="/notifications/webhooks/{hook["id"]}/test" class="inline">\s*'
                        r'<input type="hidden" name="csrf" value="[^"]+"><input type="hidden" name="form_nonce" '
                        r'value="([^"]+)"', page)
    test = {"csrf": page_csrf(client), "form_nonce": nonces[0]}
    for _ in range(2):
        assert client.post(f"/notifications/webhooks/{hook['id']}/test", data=test,
                           follow_redirects=False).status_code == 303
    assert [d["event"] for d in notifications.list_deliveries(ctx, owner, hook["id"])] == ["webhook.test"]


def test_invalid_fields_are_shown_beside_them_as_typed_and_nothing_is_added(ctx, client, users):
    sign_in(client, "owner@acme.test")
    response = client.post("/notifications/webhooks", data={"csrf": page_csrf(client), "url": "ftp://x y"})
    assert response.status_code == 422
    assert field_error(response.text, "url").startswith("Enter a web address that starts with https://")
    assert field_error(response.text, "events") == "Choose at least one event."
    assert 'value="ftp://x y"' in response.text and 'data-testid="error-summary"' in response.text
    kept = client.post("/notifications/webhooks", data={"csrf": page_csrf(client), "url": "",
                                                         "events": ["campaign.failed"]})
    assert field_error(kept.text, "url") == "Required."
    assert re.search(r'value="campaign.failed" checked', kept.text)
    assert notifications.list_webhooks(ctx, users["owner"]["principal"]) == []


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_a_viewer_or_operator_post_is_refused_and_changes_nothing(ctx, client, users, role):
    owner = users["owner"]["principal"]
    hook = notifications.create_webhook(ctx, owner, HOOK, None, ["campaign.paused"])
    sign_in(client, f"{role}@acme.test")
    csrf = page_csrf(client)
    for path, data in (("/notifications/webhooks", {"url": HOOK + "/2", "events": ["campaign.paused"]}),
                       (f"/notifications/webhooks/{hook['id']}/test", {}),
                       (f"/notifications/webhooks/{hook['id']}/delete", {})):
        response = client.post(path, data={"csrf": csrf, **data})
        assert response.status_code == 403 and "owner role" in response.text, path
    assert client.get(f"/notifications/webhooks/{hook['id']}/delete").status_code == 403
    assert [h["id"] for h in notifications.list_webhooks(ctx, owner)] == [hook["id"]]
    assert notifications.list_deliveries(ctx, owner, hook["id"]) == []


def test_a_test_delivery_goes_out_signed_and_its_tries_are_in_the_log(ctx, client, users):
    owner = users["owner"]["principal"]
    receiver = Receiver(free_port())
    hook = notifications.create_webhook(ctx, owner, f"http://127.0.0.1:{receiver.port}/hook", None,
                                        ["campaign.paused"])
    sign_in(client, "owner@acme.test")
    response = client.post(f"/notifications/webhooks/{hook['id']}/test", data={"csrf": page_csrf(client)},
                           follow_redirects=False)
    assert response.status_code == 303 and "done=webhook-test-queued" in response.headers["location"]
    deliver(ctx)  # the receiver is down: tried, logged, pending
    page = client.get("/notifications").text
    assert "webhook.test" in page and 'class="chip delivery-pending">pending<' in page and "ConnectError" in page
    receiver.up(status=202)
    try:
        deliver(ctx, rounds=10)
    finally:
        receiver.down()
    [(path, headers, body)] = receiver.requests
    assert StandardWebhook(hook["secret"]).verify(body, headers)["event"] == "webhook.test"
    page = client.get("/notifications").text
    assert 'class="chip delivery-delivered">delivered<' in page and "HTTP 202" in page
    [delivery] = notifications.list_deliveries(ctx, owner, hook["id"])
    assert delivery["attempts"] >= 2 and delivery["log"][-1]["status_code"] == 202


def test_an_owner_deletes_a_webhook_after_a_confirmation_page(ctx, client, users):
    owner = users["owner"]["principal"]
    hook = notifications.create_webhook(ctx, owner, HOOK, None, ["campaign.paused"])
    sign_in(client, "owner@acme.test")
    confirm = client.get(f"/notifications/webhooks/{hook['id']}/delete")
    assert confirm.status_code == 200 and HOOK in confirm.text and 'data-testid="confirm-delete"' in confirm.text
    assert notifications.list_webhooks(ctx, owner) != []  # the confirmation deleted nothing
    response = client.post(f"/notifications/webhooks/{hook['id']}/delete", data={"csrf": page_csrf(client)},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/notifications?done=webhook-deleted"
    assert notifications.list_webhooks(ctx, owner) == []
    assert client.post(f"/notifications/webhooks/{hook['id']}/delete",
                       data={"csrf": page_csrf(client)}).status_code == 404
    assert client.get(f"/notifications/webhooks/{'0' * 32}/delete").status_code == 404


def test_in_chromium_an_owner_adds_tests_and_deletes_a_webhook(ctx, users, server, axe_page):  # noqa: F811
    from playwright.sync_api import expect

    source = axe_source()
    owner = users["owner"]["principal"]
    tab = axe_page
    problems: dict[str, list[str]] = {}
    sign_in_with_password(tab, server, "owner@acme.test")
    tab.get_by_role("navigation", name="Main").get_by_role("link", name="Notifications").click()
    expect(tab.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    problems["notifications"] = serious_violations(tab, source)

    tab.get_by_label("Address").fill("not a web address")
    tab.get_by_role("button", name="Add webhook").click()
    expect(tab.get_by_test_id("error-summary")).to_be_visible()
    expect(tab.get_by_label("Address")).to_have_value("not a web address")
    problems["notifications with an error"] = serious_violations(tab, source)
    shot(tab, "webhook-error")

    tab.get_by_label("Address").fill(HOOK)
    tab.get_by_role("checkbox", name=re.compile("campaign.paused")).check()
    tab.get_by_role("button", name="Add webhook").click()
    expect(tab.get_by_test_id("new-secret")).to_have_text(re.compile(r"^whsec_"))
    problems["notifications with a new secret"] = serious_violations(tab, source)
    shot(tab, "webhook-added")
    [hook] = notifications.list_webhooks(ctx, owner)

    tab.get_by_role("button", name="Send a test delivery").click()
    expect(tab.get_by_test_id("toast")).to_contain_text("Test delivery queued")
    expect(tab.get_by_test_id("delivery")).to_contain_text("webhook.test")
    assert [d["event"] for d in notifications.list_deliveries(ctx, owner, hook["id"])] == ["webhook.test"]

    tab.get_by_role("link", name="Delete webhook…").click()
    expect(tab.get_by_role("heading", name="Delete this webhook?")).to_be_visible()
    problems["delete webhook"] = serious_violations(tab, source)
    tab.get_by_role("button", name="Delete webhook").click()
    expect(tab.get_by_test_id("toast")).to_have_text("Webhook deleted.")
    expect(tab.get_by_test_id("no-webhooks")).to_be_visible()
    assert notifications.list_webhooks(ctx, owner) == []

    tab.get_by_role("button", name="Sign out").click()  # a viewer: the list, no form
    sign_in_with_password(tab, server, "viewer@acme.test")
    tab.goto(f"{server}/notifications")
    expect(tab.get_by_role("button", name="Add webhook")).to_have_count(0)
    problems["notifications read-only"] = serious_violations(tab, source)
    failing = {name: found for name, found in problems.items() if found}
    assert not failing, "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in failing.items())
