"""Issue 19: after a key failed, its integration's own page says so in words — when, the
provider's code and meaning, which campaigns it paused — and what to do (replace the token,
test the connection, resume), until the owner saved a new token and the test succeeded."""

from __future__ import annotations

import asyncio
import re

from drumbeat.bootstrap import build_adapters
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from tests.factory import add_leads, new_campaign
from tests.web.conftest import page_csrf, sign_in
from tests.web.test_content_pages import TOKEN, whatsapp_key

EXPIRED = "Error validating access token: Session has expired"


def test_a_failed_key_is_explained_on_its_page_until_a_new_token_is_saved_and_tested(ctx, client, users,
                                                                                    whatsapp_server):
    owner = users["owner"]["principal"]
    iid = whatsapp_key(ctx, owner, whatsapp_server)
    cid = new_campaign(ctx, owner, name="Spring <promo>")
    add_leads(ctx, cid, 3)
    svc.start(ctx, owner, cid)
    whatsapp_server.fail_key(TOKEN, code=190, message=EXPIRED)
    asyncio.run(Worker(ctx, build_adapters(), concurrency=1, tick_seconds=3600).drain())
    assert svc.get_campaign(ctx, owner, cid)["paused_reason"] == "all_keys_failed"
    sign_in(client, "owner@acme.test")

    page = client.get(f"/integrations/{iid}").text
    banner = re.search(r'<div class="alert alert-error" role="alert" data-testid="key-trouble".*?</div>', page, re.S)
    assert banner, "no failure banner"
    text = banner.group(0)
    assert "whatsapp:190" in text and EXPIRED in text and "<time datetime=" in text
    assert f'<a href="/campaigns/{cid}">Spring &lt;promo&gt;</a>, this paused it' in text
    assert 'type a new <a href="#f-credentials-access_token">access token</a>' in text
    assert "Test connection" in text and f'href="/campaigns/{cid}" data-testid="resume-link"' in text
    # A viewer reads the same facts, and that an owner replaces the token.
    viewer = client.__class__(client.app)
    sign_in(viewer, "viewer@acme.test")
    assert "an owner replaces the access token" in viewer.get(f"/integrations/{iid}").text

    # The owner saves a new token: the failure is answered, the test is what is left.
    whatsapp_server.restore_key(TOKEN)
    edit = client.get(f"/integrations/{iid}").text
    assert 'id="f-credentials-access_token"' in edit
    saved = client.post(f"/integrations/{iid}/edit", data={
        "csrf": page_csrf(client), "label": "Main number", "credentials.access_token": "EAAG-new-token",
        "config.phone_number_id": "1065", "config.base_url": f"{whatsapp_server.base_url}/v23.0"})
    assert saved.status_code == 200 and 'role="status"' in saved.text and ">Saved.</div>" in saved.text
    assert 'data-testid="key-trouble" data-state="answered"' in saved.text and "alert-error" not in saved.text
    # A successful test: the banner goes, the campaign to resume stays linked.
    tested = client.post(f"/integrations/{iid}/test", data={"csrf": page_csrf(client)})
    assert 'data-testid="connection-result"' in tested.text and "Connected." in tested.text
    assert 'data-testid="key-trouble"' not in tested.text
    assert 'data-testid="key-fixed"' in tested.text
    assert f'href="/campaigns/{cid}" data-testid="resume-link"' in tested.text


def test_an_integration_that_never_failed_shows_no_banner(ctx, client, users, whatsapp_server):
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server)
    sign_in(client, "owner@acme.test")
    page = client.get(f"/integrations/{iid}").text
    assert "key-trouble" not in page and "key-fixed" not in page


def test_a_billing_failure_that_tests_fine_again_asks_for_the_secret_to_be_saved_before_resume(ctx, client, users,
                                                                                             whatsapp_server):
    """Issue 21: a passing test does not clear a billing or account failure at resume, and
    the page says so instead of "the key answers again"."""
    owner = users["owner"]["principal"]
    iid = whatsapp_key(ctx, owner, whatsapp_server)
    cid = new_campaign(ctx, owner)
    add_leads(ctx, cid, 3)
    svc.start(ctx, owner, cid)
    whatsapp_server.fail_key(TOKEN, code=131042, message="Business eligibility payment issue")
    asyncio.run(Worker(ctx, build_adapters(), concurrency=1, tick_seconds=3600).drain())
    assert svc.get_campaign(ctx, owner, cid)["paused_reason"] == "all_keys_failed"
    whatsapp_server.restore_key(TOKEN)
    sign_in(client, "owner@acme.test")

    tested = client.post(f"/integrations/{iid}/test", data={"csrf": page_csrf(client)})
    assert "Connected." in tested.text and 'data-testid="key-fixed"' not in tested.text
    assert 'data-testid="key-trouble" data-state="account"' in tested.text
    assert "<code>whatsapp:131042</code>" in tested.text and "re-type the key's secret below" in tested.text
    assert f'href="/campaigns/{cid}" data-testid="resume-link"' in tested.text
