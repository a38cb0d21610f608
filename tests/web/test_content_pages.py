"""Issue 18 on the dashboard, server side: an integration's template catalogue and its sync,
a campaign's preview for a chosen lead, and the test send, without JavaScript. These pages
read and write through the storage layer, so they run on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from drumbeat.services import campaigns as svc
from drumbeat.services import integrations
from drumbeat.services import templates as catalogue
from tests.conftest import db_url  # noqa: F401 - both databases here, unlike tests/web/conftest.py
from tests.factory import add_leads, campaign_data, sandbox_key
from tests.web.conftest import page_csrf, sign_in

TOKEN = "EAAG-dashboard-token-7"
WABA = "2290129340398"
TEMPLATE = {"name": "order_ready", "language": "en_US", "body": "Hi {{first_name}}",
            "components": [{"type": "header", "parameters": [{"type": "text", "text": "{{first_name|there}}"}]},
                           {"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"},
                                                           {"type": "text", "text": "{{attributes.order}}"}]},
                           {"type": "button", "sub_type": "url", "index": 0,
                            "parameters": [{"type": "text", "text": "{{attributes.order}}"}]}]}


def meta_template(name, status="APPROVED", language="en_US", components=None):
    return {"name": name, "language": language, "status": status, "category": "MARKETING", "id": f"id-{name}",
            "parameter_format": "POSITIONAL", "components": components or [{"type": "BODY", "text": "Hello"}]}


CATALOGUE = [
    meta_template("order_ready", components=[
        {"type": "HEADER", "format": "TEXT", "text": "For {{1}}"},
        {"type": "BODY", "text": "Hi {{1}}, order {{2}} is ready"},
        {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://x.test/{{1}}"},
                                        {"type": "QUICK_REPLY", "text": "Stop"}]}]),
    meta_template("spring_sale", status="PENDING"),
    meta_template("old_promo", status="PAUSED"),
    meta_template("too_bold", status="REJECTED"),
    meta_template("retired", status="DISABLED"),
]


def whatsapp_key(ctx, owner, server, **config) -> str:
    return integrations.create_integration(ctx, owner, {
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "Main number",
        "credentials": {"access_token": TOKEN, "app_secret": "s3cret"},
        "config": {"phone_number_id": "1065", "base_url": f"{server.base_url}/v23.0", **config}})["id"]


def signed_in(client, users, role) -> TestClient:
    sign_in(client, f"{role}@acme.test")
    return client


def lead(ctx, campaign_id, **fields) -> str:
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from drumbeat.store.tables import leads

    now = datetime.now(UTC)
    values = {"phone": "+4915112345678", "first_name": "Ada", "attributes": {}, **fields}
    with ctx.db.begin() as conn:
        return str(conn.execute(insert(leads).values(
            campaign_id=campaign_id, state="not_contacted", current_step=0, next_action_at=now, created_at=now,
            updated_at=now, **values)).inserted_primary_key[0])


# --- the integration page and its catalogue -----------------------------------------------------

def test_the_integration_page_shows_each_template_with_its_status_in_words_and_its_parameter_counts(
        ctx, client, users, whatsapp_server):
    owner = users["owner"]["principal"]
    whatsapp_server.set_templates(WABA, CATALOGUE)
    iid = whatsapp_key(ctx, owner, whatsapp_server, waba_id=WABA)
    catalogue.sync_catalogue(ctx, owner, iid)
    page = signed_in(client, users, "viewer").get(f"/integrations/{iid}").text
    rows = dict(re.findall(r'data-template="([^"]+)".*?data-testid="template-status"[^>]*>([^<]+)<', page, re.S))
    assert rows == {"order_ready": "Approved", "spring_sale": "Pending review", "old_promo": "Paused by Meta",
                    "too_bold": "Rejected", "retired": "Disabled"}
    for status in ("approved", "pending", "paused", "rejected", "disabled"):
        assert f'class="chip tpl-{status}"' in page
    assert "header 1 · body 2 · buttons 1, 0" in page and "header 0 · body 0 · no buttons" in page
    # A viewer reads the catalogue but is offered no sync; the list page links here.
    assert 'data-testid="sync-templates"' not in page
    assert f'href="/integrations/{iid}"' in client.get("/integrations").text


def test_syncing_from_the_page_reads_every_page_and_says_how_many_templates(ctx, client, users, whatsapp_server):
    whatsapp_server.set_templates(WABA, CATALOGUE)
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server, waba_id=WABA)
    signed_in(client, users, "operator")
    assert 'data-testid="sync-templates"' in client.get(f"/integrations/{iid}").text
    response = client.post(f"/integrations/{iid}/templates/sync", data={"csrf": page_csrf(client)},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/integrations/{iid}?synced=5"
    page = client.get(response.headers["location"]).text
    assert "Synced 5 templates." in page and page.count("data-template=") == 5
    assert len(whatsapp_server.template_calls()) == 3  # pages of two


def test_a_sync_without_the_csrf_token_or_by_a_viewer_is_refused_and_reads_nothing(ctx, client, users,
                                                                                   whatsapp_server):
    whatsapp_server.set_templates(WABA, CATALOGUE)
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server, waba_id=WABA)
    signed_in(client, users, "operator")
    assert client.post(f"/integrations/{iid}/templates/sync", data={"csrf": "forged"}).status_code == 403
    viewer = signed_in(TestClient(client.app), users, "viewer")
    refused = viewer.post(f"/integrations/{iid}/templates/sync", data={"csrf": page_csrf(viewer)})
    assert refused.status_code == 403 and "needs the operator role" in refused.text
    assert whatsapp_server.template_calls() == []
    assert catalogue.list_templates(ctx, users["owner"]["principal"], iid) == []


def test_a_provider_error_is_shown_with_its_code_and_message_and_the_old_catalogue_stays(
        ctx, client, users, whatsapp_server):
    owner = users["owner"]["principal"]
    whatsapp_server.set_templates(WABA, CATALOGUE)
    iid = whatsapp_key(ctx, owner, whatsapp_server, waba_id=WABA)
    catalogue.sync_catalogue(ctx, owner, iid)
    whatsapp_server.set_templates(WABA, CATALOGUE[:1])
    whatsapp_server.fail_templates_page(0, 131000)
    signed_in(client, users, "owner")
    response = client.post(f"/integrations/{iid}/templates/sync", data={"csrf": page_csrf(client)})
    assert response.status_code == 503
    assert "WhatsApp did not give the whole template catalogue (whatsapp:131000 — Something went wrong)" \
        in response.text
    assert "The templates below are the ones stored before" in response.text
    assert response.text.count("data-template=") == 5
    assert len(catalogue.list_templates(ctx, owner, iid)) == 5


def test_without_a_waba_id_the_page_says_it_is_needed_and_a_sync_is_a_422(ctx, client, users, whatsapp_server):
    iid = whatsapp_key(ctx, users["owner"]["principal"], whatsapp_server)
    signed_in(client, users, "operator")
    page = client.get(f"/integrations/{iid}").text
    assert "needs its WhatsApp Business Account id" in page and "waba_id" in page
    assert 'data-testid="sync-templates"' not in page
    response = client.post(f"/integrations/{iid}/templates/sync", data={"csrf": page_csrf(client)})
    assert response.status_code == 422 and "config.waba_id" in response.text
    assert whatsapp_server.template_calls() == []


def test_an_integration_of_another_provider_has_no_catalogue_and_an_unknown_one_is_not_found(ctx, client, users):
    key = sandbox_key(ctx, users["owner"]["principal"], "sms", label="Test SMS")
    signed_in(client, users, "operator")
    page = client.get(f"/integrations/{key}")
    assert page.status_code == 200 and "Test SMS" in page.text and 'data-testid="catalogue"' not in page.text
    assert client.post(f"/integrations/{key}/templates/sync", data={"csrf": page_csrf(client)}).status_code == 422
    assert client.get("/integrations/nope").status_code == 404
    assert client.post("/integrations/nope/templates/sync", data={"csrf": page_csrf(client)}).status_code == 404


# --- the preview ------------------------------------------------------------------------------------

STEPS = [
    {"channel": "whatsapp", "template": TEMPLATE, "delay_seconds": 0},
    {"channel": "sms", "template": {"body": "Hi {{first_name}}, your order {{attributes.order}} is ready. "
                                            + "x" * 130}, "delay_seconds": 60},
    {"channel": "email", "template": {"subject": "Order {{attributes.order}}", "body": "Hi {{first_name}}",
                                      "html": "<p>Hi <b>{{first_name}}</b></p>"}, "delay_seconds": 60},
]


def test_the_preview_renders_every_step_for_the_chosen_lead(ctx, client, users):
    owner = users["owner"]["principal"]
    cid = svc.create_campaign(ctx, owner, campaign_data("Orders", steps=STEPS))["id"]
    lead(ctx, cid, first_name="Ada", email="ada@example.com", attributes={"order": "A-17"})
    second = lead(ctx, cid, phone="+4915112345679", email="bo@example.com", first_name="<i>Bo</i>",
                  attributes={"order": "B-2"})
    signed_in(client, users, "viewer")
    first = client.get(f"/campaigns/{cid}/preview").text
    assert "A-17" in first and "B-2" not in first
    page = client.get(f"/campaigns/{cid}/preview", params={"lead_id": second}).text
    assert re.search(rf'<option value="{second}" selected>', page)
    # WhatsApp: name, language, each rendered parameter, and the exact request body.
    assert "<code>order_ready</code>" in page and "<dd>en_US</dd>" in page
    assert re.findall(r'data-testid="param">([^<]*)<', page) == ["&lt;i&gt;Bo&lt;/i&gt;", "&lt;i&gt;Bo&lt;/i&gt;",
                                                                 "B-2", "B-2"]
    assert "Button 0 (url)" in page and "&#34;to&#34;: &#34;4915112345679&#34;" in page
    # SMS: its encoding and segments; email: subject, text, and the HTML never injected raw.
    assert "GSM-7 · 2 segments" in page and "Order B-2" in page
    assert "<i>Bo</i>" not in page and "<b>" not in page
    assert 'sandbox=""' in page and "&lt;p&gt;Hi &lt;b&gt;&amp;lt;i&amp;gt;Bo" in page


def test_missing_variables_are_named_in_words_on_the_preview_and_counted_on_the_campaign_page(ctx, client, users):
    owner = users["owner"]["principal"]
    steps = [{"channel": "sms", "template": {"body": "Hi {{first_name}}, code {{attributes.code|none}}"},
              "delay_seconds": 0}]
    cid = svc.create_campaign(ctx, owner, campaign_data("Codes", steps=steps))["id"]
    nameless = lead(ctx, cid, first_name=None)
    lead(ctx, cid, phone="+4915112345679")
    signed_in(client, users, "viewer")
    page = client.get(f"/campaigns/{cid}/preview", params={"lead_id": nameless}).text
    assert "No value for first_name — this lead would fail with &#39;missing variable&#39;." in page
    assert page.count("would fail with &#39;missing variable&#39;") == 2  # said once per step, once per campaign
    assert "1 lead has no value for first_name and would fail with &#39;missing variable&#39;." in page
    detail = client.get(f"/campaigns/{cid}").text
    assert "1 lead has no value for first_name" in detail and f"preview?lead_id={nameless}" in detail
    assert client.get(f"/campaigns/{cid}/live.json").json()["missing_variables"][0]["leads"] == 1


def test_a_steps_other_problem_is_shown_in_words(ctx, client, users):
    owner = users["owner"]["principal"]
    steps = [{"channel": "sms", "template": {"body": "{{attributes.note}}"}, "delay_seconds": 0}]
    cid = svc.create_campaign(ctx, owner, campaign_data("Long", steps=steps))["id"]
    lead(ctx, cid, attributes={"note": "ж" * 700})
    page = signed_in(client, users, "viewer").get(f"/campaigns/{cid}/preview").text
    assert "This lead would fail: drumbeat:message_too_long — the SMS takes 11 segments" in page
    assert "UCS-2 · 11 segments" in page


def test_a_campaign_without_leads_previews_with_empty_fields_and_a_foreign_lead_is_not_found(ctx, client, users):
    owner = users["owner"]["principal"]
    steps = [{"channel": "sms", "template": {"body": "Hi {{first_name|there}}"}, "delay_seconds": 0}]
    cid = svc.create_campaign(ctx, owner, campaign_data("Empty", steps=steps))["id"]
    other = svc.create_campaign(ctx, owner, campaign_data("Other", steps=steps))["id"]
    foreign = lead(ctx, other)
    signed_in(client, users, "viewer")
    page = client.get(f"/campaigns/{cid}/preview").text
    assert "Hi there" in page and "no lead yet" in page
    assert client.get(f"/campaigns/{cid}/preview", params={"lead_id": foreign}).status_code == 404
    assert client.get(f"/campaigns/{cid}/preview", params={"lead_id": "x' or 1=1"}).status_code == 404
    assert client.get("/campaigns/nope/preview").status_code == 404


# --- the test send ----------------------------------------------------------------------------------

def whatsapp_campaign(ctx, owner, server) -> str:
    whatsapp_key(ctx, owner, server)
    steps = [{"channel": "whatsapp", "template": TEMPLATE, "delay_seconds": 0},
             {"channel": "email", "template": {"subject": "Hi", "body": "Hi {{first_name}}"}, "delay_seconds": 0}]
    cid = svc.create_campaign(ctx, owner, campaign_data("Orders", steps=steps))["id"]
    lead(ctx, cid, attributes={"order": "A-17"})
    return cid


def test_a_test_send_from_the_page_shows_whatsapps_verdict_and_the_phone_gets_the_rendered_step(
        ctx, client, users, whatsapp_server):
    cid = whatsapp_campaign(ctx, users["owner"]["principal"], whatsapp_server)
    signed_in(client, users, "operator")
    page = client.get(f"/campaigns/{cid}/preview").text
    assert 'name="to.phone"' in page and 'name="to.email"' in page
    response = client.post(f"/campaigns/{cid}/test", data={"csrf": page_csrf(client), "step": "0",
                                                           "to.phone": "+44 7911 123456"})
    assert response.status_code == 200
    [call] = whatsapp_server.calls(to="+447911123456")
    assert re.search(r'data-testid="test-verdict">Accepted by WhatsApp, message id wamid\.[^<]+<', response.text)
    assert call.body["template"]["components"][1]["parameters"][1]["text"] == "A-17"
    assert svc.get_campaign(ctx, users["owner"]["principal"], cid)["progress"]["not_contacted"] == 1


def test_a_refused_test_send_shows_the_providers_code_and_message(ctx, client, users, whatsapp_server):
    cid = whatsapp_campaign(ctx, users["owner"]["principal"], whatsapp_server)
    whatsapp_server.fail_recipient("+447911123456", code=131026)
    signed_in(client, users, "operator")
    response = client.post(f"/campaigns/{cid}/test", data={"csrf": page_csrf(client), "step": "0",
                                                           "to.phone": "+447911123456"})
    verdict = re.search(r'data-testid="test-verdict">([^<]+)<', response.text).group(1)
    assert verdict.startswith("Refused: whatsapp:131026 — ")


def test_a_bad_address_is_shown_beside_its_field_with_what_was_typed_and_nothing_is_sent(
        ctx, client, users, whatsapp_server):
    cid = whatsapp_campaign(ctx, users["owner"]["principal"], whatsapp_server)
    signed_in(client, users, "operator")
    response = client.post(f"/campaigns/{cid}/test", data={"csrf": page_csrf(client), "step": "1",
                                                           "to.email": "not-an-address"})
    assert response.status_code == 422
    form = re.search(r'data-testid="test-form-1".*?</form>', response.text, re.S).group(0)
    assert 'value="not-an-address"' in form and 'aria-invalid="true"' in form
    assert re.search(r'data-testid="test-error">Email address: [^<]+<', form)
    assert 'data-testid="test-error"' not in response.text.replace(form, "")
    past = client.post(f"/campaigns/{cid}/test", data={"csrf": page_csrf(client), "step": "7",
                                                       "to.phone": "+447911123456"})
    assert past.status_code == 422 and 'data-testid="test-alert"' in past.text and "steps 0 to 1" in past.text
    assert whatsapp_server.calls() == []


def test_no_usable_key_and_the_rate_limit_are_refused_in_words(ctx, client, users):
    owner = users["owner"]["principal"]
    key = sandbox_key(ctx, owner, "sms")
    cid = svc.create_campaign(ctx, owner, campaign_data("Texts", steps=[
        {"channel": "sms", "template": {"body": "Hi {{first_name|there}}"}, "delay_seconds": 0}]))["id"]
    signed_in(client, users, "operator")
    data = {"csrf": page_csrf(client), "step": "0", "to.phone": "+447911123456"}
    integrations.update_integration(ctx, owner, key, {"enabled": False})
    blocked = client.post(f"/campaigns/{cid}/test", data=data)
    assert blocked.status_code == 409
    assert "no key of this campaign may send on this channel now" in blocked.text
    assert "key_pool (sms): no active integration on this channel" in blocked.text
    integrations.update_integration(ctx, owner, key, {"enabled": True})
    verdicts = [client.post(f"/campaigns/{cid}/test", data=data) for _ in range(10)]
    assert all("Accepted by the sandbox" in r.text for r in verdicts)
    limited = client.post(f"/campaigns/{cid}/test", data=data)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert re.search(r"Too many test sends: at most 10 test sends a minute per workspace\. Try again in \d+ seconds",
                     limited.text)


def test_a_viewer_sees_no_test_form_and_the_server_refuses_the_test_send(ctx, client, users, whatsapp_server):
    cid = whatsapp_campaign(ctx, users["owner"]["principal"], whatsapp_server)
    signed_in(client, users, "viewer")
    page = client.get(f"/campaigns/{cid}/preview").text
    assert "/test" not in page and "Send test" not in page
    refused = client.post(f"/campaigns/{cid}/test", data={"csrf": page_csrf(client), "step": "0",
                                                          "to.phone": "+447911123456"})
    assert refused.status_code == 403
    operator = signed_in(TestClient(client.app), users, "operator")
    forged = operator.post(f"/campaigns/{cid}/test", data={"csrf": "forged", "step": "0", "to.phone": "+447911123456"})
    assert forged.status_code == 403 and whatsapp_server.calls() == []


def test_a_finished_campaign_offers_no_test_send_and_refuses_one(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    cid = svc.create_campaign(ctx, owner, campaign_data("Done"))["id"]
    add_leads(ctx, cid, 1)
    svc.cancel(ctx, owner, cid, "Done")
    signed_in(client, users, "operator")
    assert "Send test" not in client.get(f"/campaigns/{cid}/preview").text
    refused = client.post(f"/campaigns/{cid}/test", data={"csrf": page_csrf(client), "step": "0",
                                                          "to.phone": "+447911123456"})
    assert refused.status_code == 409 and "the campaign is canceled" in refused.text


def test_the_new_pages_and_forms_need_a_session(client):
    for path in ("/integrations/abc", "/campaigns/abc/preview?lead_id=1"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path
    for path in ("/integrations/abc/templates/sync", "/campaigns/abc/test"):
        assert client.post(path, data={"step": "0"}, follow_redirects=False).status_code == 303, path
