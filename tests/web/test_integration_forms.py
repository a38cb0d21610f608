"""Issue 19 on the dashboard, server side: adding an integration with named fields per
provider, editing it under the PATCH rule (a cleared field is cleared, secrets write-only),
health events and the connection test, without JavaScript. These pages write through the
storage layer, so they run on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from drumbeat.services import integrations
from tests.conftest import db_url  # noqa: F401 - both databases here, unlike tests/web/conftest.py
from tests.web.conftest import page_csrf, sign_in
from tests.web.test_browser import browser, page, server, shot, sign_in_with_password  # noqa: F401 - fixtures
from tests.web.test_content_pages import TOKEN, WABA, whatsapp_key


def signed_in(client: TestClient, role: str) -> TestClient:
    sign_in(client, f"{role}@acme.test")
    return client


def stored(ctx, users) -> list[dict]:
    """Every integration of the workspace with its credentials unsealed."""
    owner = users["owner"]["principal"]
    out = []
    for item in integrations.list_integrations(ctx, owner):
        with ctx.db.begin() as conn:
            from drumbeat.store import integrations as store
            row = store.get_integration(conn, owner.workspace_id, item["id"])
        out.append({**item, "secrets": ctx.box.open(row["credentials_encrypted"])})
    return out


def field_error(shown: str, name: str) -> str | None:
    """The error shown beside the input named `name`, if any."""
    block = re.search(rf'data-field-name="{re.escape(name)}".*?</div>', shown, re.S)
    if block is None:
        block = re.search(rf'name="{re.escape(name)}".*?(?=<div class="int-field|</form>)', shown, re.S)
    found = re.search(r'class="field-error"[^>]*>([^<]+)<', block.group(0)) if block else None
    return html.unescape(found.group(1)) if found else None


def input_value(shown: str, name: str) -> str | None:
    found = re.search(rf'<input id="[^"]+" name="{re.escape(name)}" value="([^"]*)"', shown)
    return html.unescape(found.group(1)) if found else None


WHATSAPP_FORM = {"provider": "whatsapp_cloud", "channel": "whatsapp", "label": "Acme WA",
                 "credentials.access_token": TOKEN, "credentials.app_secret": "appsecret-f00d",
                 "config.phone_number_id": "1065", "config.waba_id": WABA,
                 "config.base_url": "http://127.0.0.1:9/v23.0", "daily_cap": "500"}


# --- adding one --------------------------------------------------------------------------------

def test_the_add_page_offers_each_provider_and_then_its_named_fields(ctx, client, users):
    signed_in(client, "owner")
    assert 'href="/integrations/new"' in client.get("/integrations").text
    choose = client.get("/integrations/new").text
    assert all(f'value="{p}"' in choose for p in ("whatsapp_cloud", "twilio", "smtp", "unipile", "sandbox"))
    assert 'name="credentials.access_token"' not in choose
    whatsapp = client.get("/integrations/new?provider=whatsapp_cloud").text
    for label in ("Access token", "App secret", "Phone number ID", "WhatsApp Business Account ID", "Base URL"):
        assert f">{label}<" in whatsapp or f">{label} <" in whatsapp, label
    assert 'type="password"' in whatsapp and "<textarea" not in whatsapp
    twilio = client.get("/integrations/new?provider=twilio").text
    assert '<option value="sms"' in twilio and '<option value="voice"' in twilio
    assert "From number or messaging service SID" in twilio
    smtp = client.get("/integrations/new?provider=smtp").text
    assert input_value(smtp, "config.port") == "587" and 'name="config.starttls" id="f-config-starttls" checked' in smtp
    sandbox = client.get("/integrations/new?provider=sandbox").text
    assert '<option value="key">' in sandbox and 'name="config.latency_ms"' in sandbox


def test_an_owner_adds_a_whatsapp_integration_from_named_fields_and_lands_on_its_page(ctx, client, users):
    signed_in(client, "owner")
    response = client.post("/integrations/new", data={"csrf": page_csrf(client), **WHATSAPP_FORM},
                           follow_redirects=False)
    assert response.status_code == 303
    [made] = stored(ctx, users)
    assert response.headers["location"] == f"/integrations/{made['id']}?done=created"
    assert made["label"] == "Acme WA" and made["channel"] == "whatsapp" and made["daily_cap"] == 500
    assert made["secrets"] == {"access_token": TOKEN, "app_secret": "appsecret-f00d"}
    assert made["config"] == {"phone_number_id": "1065", "waba_id": WABA, "base_url": "http://127.0.0.1:9/v23.0"}
    shown = client.get(response.headers["location"]).text
    assert "Integration added." in shown and TOKEN not in shown and "appsecret-f00d" not in shown


def test_twilio_smtp_and_sandbox_forms_store_the_channel_numbers_switches_and_choices(ctx, client, users):
    signed_in(client, "owner")
    csrf = page_csrf(client)
    forms = [
        {"provider": "twilio", "channel": "voice", "credentials.account_sid": "AC123", "credentials.auth_token": "tok",
         "config.from": "MG0123456789"},
        {"provider": "smtp", "channel": "email", "config.host": "mail.acme.test", "config.port": "2525",
         "credentials.username": "u", "credentials.password": "p", "config.from": "Acme <hi@acme.test>"},
        {"provider": "sandbox", "channel": "sms", "config.fail": "key", "config.fail_after": "3",
         "config.latency_ms": "0"},
    ]
    for form in forms:
        assert client.post("/integrations/new", data={"csrf": csrf, **form}, follow_redirects=False).status_code == 303
    by_provider = {i["provider"]: i for i in stored(ctx, users)}
    assert by_provider["twilio"]["channel"] == "voice" and by_provider["twilio"]["config"] == {"from": "MG0123456789"}
    # STARTTLS unticked is stored as off (the adapter's default is on).
    assert by_provider["smtp"]["config"] == {"host": "mail.acme.test", "port": 2525, "from": "Acme <hi@acme.test>",
                                             "starttls": False}
    assert by_provider["sandbox"]["config"] == {"fail": "key", "fail_after": 3, "latency_ms": 0}
    assert by_provider["sandbox"]["channel"] == "sms"


def test_a_refused_add_shows_each_error_beside_its_field_keeps_what_was_typed_and_creates_nothing(
        ctx, client, users):
    signed_in(client, "owner")
    typed = {**WHATSAPP_FORM, "credentials.access_token": "", "config.phone_number_id": "",
             "config.base_url": "not a url", "label": "<b>Acme</b>"}
    response = client.post("/integrations/new", data={"csrf": page_csrf(client), **typed})
    assert response.status_code == 422
    shown = response.text
    assert field_error(shown, "credentials.access_token") == "Required."
    assert field_error(shown, "config.phone_number_id") == "Required."
    assert "should match pattern" in field_error(shown, "config.base_url")
    assert field_error(shown, "config.waba_id") is None
    assert 'data-testid="form-errors"' in shown and "3 fields to fix" in shown
    assert input_value(shown, "config.waba_id") == WABA and input_value(shown, "config.base_url") == "not a url"
    assert 'value="&lt;b&gt;Acme&lt;/b&gt;"' in shown and "<b>Acme</b>" not in shown
    assert stored(ctx, users) == []


def test_a_bad_daily_cap_or_a_channel_the_provider_does_not_serve_is_named_beside_its_field(ctx, client, users):
    signed_in(client, "owner")
    csrf = page_csrf(client)
    shown = client.post("/integrations/new", data={"csrf": csrf, **WHATSAPP_FORM, "daily_cap": "0"})
    assert shown.status_code == 422
    assert "at least 1" in re.search(r'id="f-daily_cap-error"[^>]*>([^<]+)<', shown.text).group(1)
    shown = client.post("/integrations/new", data={"csrf": csrf, **WHATSAPP_FORM, "channel": "sms"})
    assert shown.status_code == 422 and 'id="f-channel-error"' not in shown.text  # a hidden field: in the summary
    assert "Choose one of the channels" in shown.text
    assert stored(ctx, users) == []


def test_only_an_owner_may_add_an_integration_whatever_the_page_showed(ctx, client, users):
    for role in ("operator", "viewer"):
        other = signed_in(TestClient(client.app), role)
        assert 'href="/integrations/new"' not in other.get("/integrations").text
        assert other.get("/integrations/new?provider=sandbox").status_code == 403
        refused = other.post("/integrations/new", data={"csrf": page_csrf(other), **WHATSAPP_FORM})
        assert refused.status_code == 403 and "needs the owner role" in refused.text
    owner = signed_in(client, "owner")
    assert owner.post("/integrations/new", data={"csrf": "forged", **WHATSAPP_FORM}).status_code == 403
    assert stored(ctx, users) == []


# --- editing one -------------------------------------------------------------------------------

def test_a_config_field_cleared_in_the_form_is_gone_from_the_stored_config_after_saving(
        ctx, client, users, whatsapp_server):
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server, waba_id=WABA)
    signed_in(client, "owner")
    shown = client.get(f"/integrations/{iid}").text
    assert input_value(shown, "config.waba_id") == WABA
    form = {"csrf": page_csrf(client), "label": "Main number", "config.phone_number_id": "1065",
            "config.waba_id": "", "config.base_url": f"{whatsapp_server.base_url}/v23.0", "daily_cap": ""}
    response = client.post(f"/integrations/{iid}/edit", data=form, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/integrations/{iid}?done=saved#edit"
    [item] = stored(ctx, users)
    assert "waba_id" not in item["config"]
    assert item["config"] == {"phone_number_id": "1065", "base_url": f"{whatsapp_server.base_url}/v23.0"}
    assert item["secrets"] == {"access_token": TOKEN, "app_secret": "s3cret"}  # blank secrets kept
    assert "Saved." in client.get(response.headers["location"]).text


def test_a_secret_is_write_only_kept_when_blank_replaced_when_typed_and_removed_only_when_ticked(
        ctx, client, users, whatsapp_server):
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server)
    signed_in(client, "owner")
    shown = client.get(f"/integrations/{iid}").text
    masks = integrations.get_integration(ctx, users["owner"]["principal"], iid)["credentials"]
    assert f'placeholder="{masks["access_token"]}"' in shown and TOKEN not in shown and "s3cret" not in shown
    assert 'name="remove.credentials.app_secret"' in shown
    assert 'name="remove.credentials.access_token"' not in shown  # required: replaced, never removed
    base = {"csrf": page_csrf(client), "label": "Main number", "config.phone_number_id": "1065",
            "config.base_url": f"{whatsapp_server.base_url}/v23.0"}
    client.post(f"/integrations/{iid}/edit", data={**base, "credentials.access_token": "EAAG-new-token"})
    assert stored(ctx, users)[0]["secrets"] == {"access_token": "EAAG-new-token", "app_secret": "s3cret"}
    both = client.post(f"/integrations/{iid}/edit", data={
        **base, "credentials.app_secret": "x", "remove.credentials.app_secret": "on"})
    assert both.status_code == 422 and field_error(both.text, "credentials.app_secret") == (
        "Type a new value or remove it, not both.")
    client.post(f"/integrations/{iid}/edit", data={**base, "remove.credentials.app_secret": "on"})
    assert stored(ctx, users)[0]["secrets"] == {"access_token": "EAAG-new-token"}


def test_a_refused_edit_shows_the_error_beside_the_field_keeps_the_typing_and_changes_nothing(
        ctx, client, users, whatsapp_server):
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server, waba_id=WABA)
    before = stored(ctx, users)
    signed_in(client, "owner")
    response = client.post(f"/integrations/{iid}/edit", data={
        "csrf": page_csrf(client), "label": "Renamed", "config.phone_number_id": "", "config.waba_id": "999",
        "config.base_url": f"{whatsapp_server.base_url}/v23.0", "daily_cap": "lots"})
    assert response.status_code == 422
    assert re.search(r'id="f-daily_cap-error"[^>]*>A whole number', response.text)
    assert input_value(response.text, "label") == "Renamed" and input_value(response.text, "config.waba_id") == "999"
    response = client.post(f"/integrations/{iid}/edit", data={
        "csrf": page_csrf(client), "label": "Renamed", "config.phone_number_id": "", "config.waba_id": "999"})
    assert response.status_code == 422 and field_error(response.text, "config.phone_number_id") == "Required."
    response = client.post(f"/integrations/{iid}/edit", data={
        "csrf": page_csrf(client), "label": " ", "config.phone_number_id": "1065"})
    assert response.status_code == 422 and re.search(r'id="f-label-error"[^>]*>Required', response.text)
    assert stored(ctx, users) == before


def test_label_daily_cap_and_disabling_are_saved_and_only_an_owner_sees_or_may_send_the_form(
        ctx, client, users, whatsapp_server):
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server)
    form = {"label": "Renamed", "config.phone_number_id": "1065", "daily_cap": "40"}
    for role in ("operator", "viewer"):
        other = signed_in(TestClient(client.app), role)
        assert 'data-testid="edit-form"' not in other.get(f"/integrations/{iid}").text
        assert other.post(f"/integrations/{iid}/edit", data={"csrf": page_csrf(other), **form}).status_code == 403
        assert other.post(f"/integrations/{iid}/enabled",
                          data={"csrf": page_csrf(other), "enabled": "false"}).status_code == 403
    assert stored(ctx, users)[0]["label"] == "Main number"
    signed_in(client, "owner")
    csrf = page_csrf(client)
    assert client.post(f"/integrations/{iid}/edit", data={"csrf": csrf, **form}).status_code == 200
    client.post(f"/integrations/{iid}/enabled", data={"csrf": csrf, "enabled": "false"})
    [item] = stored(ctx, users)
    assert (item["label"], item["daily_cap"], item["state"]) == ("Renamed", 40, "disabled")
    assert "Enable integration" in client.get(f"/integrations/{iid}").text
    assert client.post(f"/integrations/{iid}/enabled", data={"csrf": csrf, "enabled": "maybe"}).status_code == 422


# --- health and the connection test -------------------------------------------------------------

def test_an_operator_marks_a_key_disconnected_and_reconnects_it_and_a_viewer_may_not(
        ctx, client, users, whatsapp_server):
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server)
    viewer = signed_in(TestClient(client.app), "viewer")
    assert ">Mark disconnected<" not in viewer.get(f"/integrations/{iid}").text
    assert viewer.post(f"/integrations/{iid}/health",
                       data={"csrf": page_csrf(viewer), "event": "disconnected"}).status_code == 403
    signed_in(client, "operator")
    csrf = page_csrf(client)
    shown = client.get(f"/integrations/{iid}").text
    assert ">Mark disconnected<" in shown and ">Reconnect<" not in shown
    done = client.post(f"/integrations/{iid}/health", data={"csrf": csrf, "event": "disconnected"})
    assert "Marked disconnected." in done.text and ">Reconnect<" in done.text
    assert stored(ctx, users)[0]["state"] == "disconnected"
    client.post(f"/integrations/{iid}/health", data={"csrf": csrf, "event": "reconnected"})
    assert stored(ctx, users)[0]["state"] == "active"
    assert client.post(f"/integrations/{iid}/health", data={"csrf": csrf, "event": "explode"}).status_code == 422


def test_a_restricted_key_offers_only_lift_restriction_and_lifting_it_makes_it_active(
        ctx, client, users, whatsapp_server):
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server)
    integrations.record_health_event(ctx, users["owner"]["principal"], iid, "restricted")
    signed_in(client, "operator")
    shown = client.get(f"/integrations/{iid}").text
    assert ">Lift restriction<" in shown and ">Reconnect<" not in shown and ">Mark disconnected<" not in shown
    done = client.post(f"/integrations/{iid}/health", data={"csrf": page_csrf(client), "event": "restriction_lifted"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=health-restriction_lifted#edit")
    assert stored(ctx, users)[0]["state"] == "active"


def test_test_connection_says_connected_or_the_providers_refusal_in_words(ctx, client, users, whatsapp_server):
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server)
    viewer = signed_in(TestClient(client.app), "viewer")
    assert ">Test connection<" not in viewer.get(f"/integrations/{iid}").text
    assert viewer.post(f"/integrations/{iid}/test", data={"csrf": page_csrf(viewer)}).status_code == 403
    assert whatsapp_server.calls(kind="probe", sends_only=False) == []
    signed_in(client, "operator")
    ok = client.post(f"/integrations/{iid}/test", data={"csrf": page_csrf(client)})
    assert ok.status_code == 200 and "✓ Connected." in ok.text
    whatsapp_server.fail_key(TOKEN, code=190, message="Invalid OAuth access token")
    refused = client.post(f"/integrations/{iid}/test", data={"csrf": page_csrf(client)})
    text = html.unescape(re.search(r'data-testid="connection-result">\s*<p[^>]*>([^<]+)<', refused.text).group(1))
    assert text == "✗ Refused: whatsapp:190 — Invalid OAuth access token"
    assert stored(ctx, users)[0]["state"] == "active"  # a test records nothing
    assert client.post("/integrations/nope/test", data={"csrf": page_csrf(client)}).status_code == 404


# --- in a real browser ---------------------------------------------------------------------------

@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_in_chromium_an_owner_adds_a_whatsapp_key_tests_it_sees_a_refusal_and_replaces_the_token(
        db_url, ctx, users, whatsapp_server, request):  # noqa: F811
    """tests/web/test_browser.py's conventions: Debian Chromium, role and label selectors. Once,
    on SQLite: the server-side tests above cover PostgreSQL."""
    from playwright.sync_api import expect

    tab, base = request.getfixturevalue("page"), request.getfixturevalue("server")
    sign_in_with_password(tab, base, "owner@acme.test")
    tab.get_by_role("link", name="Integrations").click()
    tab.get_by_role("link", name="Add integration").click()
    tab.wait_for_url("**/integrations/new")  # loaded: the chooser's script is in place
    tab.get_by_label("Provider").select_option("whatsapp_cloud")  # submits itself: the fields appear
    expect(tab.get_by_role("heading", name="WhatsApp Cloud API")).to_be_visible()
    tab.get_by_label("Label").fill("Acme WA")
    tab.get_by_label("Access token").fill(TOKEN)
    tab.get_by_label("Phone number ID").fill("1065")
    tab.get_by_text("Advanced").click()
    tab.get_by_label("Base URL").fill(f"{whatsapp_server.base_url}/v23.0")
    shot(tab, "integration-add-whatsapp")
    tab.get_by_role("button", name="Add integration").click()
    expect(tab.get_by_test_id("toast")).to_have_text("Integration added.")
    expect(tab.get_by_test_id("integration-label")).to_have_text("Acme WA")

    tab.get_by_role("button", name="Test connection").click()
    expect(tab.get_by_test_id("connection-result")).to_have_text("✓ Connected.")
    whatsapp_server.fail_key(TOKEN, code=190, message="Invalid OAuth access token")
    tab.get_by_role("button", name="Test connection").click()
    expect(tab.get_by_test_id("connection-result")).to_have_text(
        "✗ Refused: whatsapp:190 — Invalid OAuth access token")
    shot(tab, "integration-test-refused")

    # The stored token shows only as its mask; typing a new one replaces it.
    token_input = tab.get_by_label("Access token")
    expect(token_input).to_have_value("")
    assert token_input.get_attribute("placeholder").startswith("****")
    token_input.fill("EAAG-rotated-token-8")
    tab.get_by_role("button", name="Save changes").click()
    expect(tab.get_by_test_id("toast")).to_have_text("Saved.")
    tab.get_by_role("button", name="Test connection").click()
    expect(tab.get_by_test_id("connection-result")).to_have_text("✓ Connected.")
    shot(tab, "integration-token-replaced")
    [item] = stored(ctx, users)
    assert item["secrets"] == {"access_token": "EAAG-rotated-token-8"}
    assert item["config"] == {"phone_number_id": "1065", "base_url": f"{whatsapp_server.base_url}/v23.0"}
    assert [c.key for c in whatsapp_server.calls(kind="probe", sends_only=False)][-1] == "EAAG-rotated-token-8"
    assert tab.js_dialogs == []
