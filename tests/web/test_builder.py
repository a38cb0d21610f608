"""Issue 19's campaign builder, server side and without JavaScript: "New campaign" and "Edit"
as one form validated by the API's own models, each error beside its input with what was
typed kept, "Add step" as a submit button, save as draft / schedule / start, the live
segment count's endpoint, and the viewer refused. These pages write through the storage
layer, so they run on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

from drumbeat.services import campaigns as svc
from drumbeat.services import templates as catalogue
from drumbeat.services import workspaces
from tests.conftest import db_url  # noqa: F401 - both databases here, unlike tests/web/conftest.py
from tests.factory import add_leads, campaign_data, sandbox_key
from tests.web.conftest import page_csrf, sign_in
from tests.web.test_content_pages import CATALOGUE, TEMPLATE, WABA, whatsapp_key


def form(csrf: str, **overrides) -> dict:
    """A two-step campaign as the browser posts it (blank inputs included)."""
    data = {
        "csrf": csrf, "name": "Spring promo", "pool": "all",
        "steps.0.channel": "whatsapp", "steps.0.delay": "0", "steps.0.delay_unit": "minutes",
        "steps.0.template.name": "order_ready", "steps.0.template.language": "en_US",
        "steps.0.template.body": "Hi {{first_name}}", "steps.0.template.components": "",
        "steps.0.template.subject": "", "steps.0.template.html": "", "steps.0.template.action": "message",
        "steps.0.template.wait_seconds": "",
        "steps.1.channel": "sms", "steps.1.delay": "2", "steps.1.delay_unit": "hours",
        "steps.1.template.body": "Your code {{attributes.code}}", "steps.1.template.name": "",
        "schedule.timezone": "Europe/Berlin", "schedule.days": ["mon", "tue", "wed"],
        "schedule.window_start": "09:00", "schedule.window_end": "18:00", "schedule.start_at": "",
        "limits.daily_cap": "500", "limits.weekly_cap": "", "limits.rate_per_second": "",
        "limits.ramp.start": "", "limits.ramp.increase": "", "limits.ramp.every_days": "",
        "failure_policy.window": "50", "failure_policy.threshold_percent": "40", "failure_policy.min_samples": "20",
        "op": "draft",
    }
    data.update(overrides)
    return data


def operator(client) -> str:
    sign_in(client, "operator@acme.test")
    return page_csrf(client)


def errors_of(page: str) -> dict[str, str]:
    """{input name: its messages beside it, joined by " | "}."""
    out: dict[str, str] = {}
    for field, message in re.findall(r'data-field="([^"]+)">([^<]*)</p>', page):
        out[field] = " | ".join(filter(None, [out.get(field), html.unescape(message)]))
    return out


def summary_of(page: str) -> list[str]:
    return [html.unescape(item) for item in re.findall(r'<li><a href="#[^"]*">([^<]*)</a></li>', page)]


def only_campaign(ctx, users) -> dict:
    items = svc.list_campaigns(ctx, users["owner"]["principal"])["items"]
    assert len(items) == 1
    return svc.get_campaign(ctx, users["owner"]["principal"], items[0]["id"])


def test_saving_a_new_campaign_as_a_draft_stores_what_the_form_says_and_opens_its_page(ctx, client, users):
    csrf = operator(client)
    assert 'data-testid="new-campaign"' in client.get("/campaigns").text
    page = client.get("/campaigns/new")
    assert page.status_code == 200 and "Add step" in page.text and "Europe/Berlin" in page.text
    response = client.post("/campaigns/new", data=form(csrf), follow_redirects=False)
    assert response.status_code == 303, response.text
    c = only_campaign(ctx, users)
    assert response.headers["location"] == f"/campaigns/{c['id']}"
    assert c["status"] == "draft" and c["name"] == "Spring promo" and c["integration_ids"] is None
    assert [(s["channel"], s["delay_seconds"]) for s in c["steps"]] == [("whatsapp", 0), ("sms", 7200)]
    assert c["steps"][0]["template"] == {"name": "order_ready", "language": "en_US", "body": "Hi {{first_name}}"}
    assert c["steps"][1]["template"] == {"body": "Your code {{attributes.code}}"}  # no WhatsApp field on SMS
    assert c["schedule"]["timezone"] == "Europe/Berlin" and c["schedule"]["days"] == ["mon", "tue", "wed"]
    assert (c["schedule"]["window_start"], c["schedule"]["window_end"]) == ("09:00", "18:00")
    assert c["limits"]["daily_cap"] == 500 and c["limits"]["ramp"] is None
    assert c["failure_policy"]["threshold"] == 0.4


def test_each_error_is_shown_beside_its_input_with_what_was_typed_kept_and_nothing_is_saved(ctx, client, users):
    csrf = operator(client)
    response = client.post("/campaigns/new", data=form(
        csrf, name="", **{"steps.1.template.body": "Hi {{nickname}}", "steps.1.delay": "soon",
                          "schedule.timezone": "Mars/Olympus", "schedule.window_end": "25:00",
                          "limits.daily_cap": "0", "failure_policy.threshold_percent": "150",
                          "steps.0.template.components": "[not json"}))
    assert response.status_code == 422
    errors = errors_of(response.text)
    assert set(errors) == {"name", "steps.1.template.body", "steps.1.delay", "schedule.timezone",
                           "schedule.window_end", "limits.daily_cap", "failure_policy.threshold_percent",
                           "steps.0.template.components"}
    assert errors["name"] == "this is required"
    assert "unknown template variable(s) nickname" in errors["steps.1.template.body"]
    assert "not a known IANA time zone" in errors["schedule.timezone"]
    assert 'data-testid="error-summary"' in response.text and 'href="#f-steps-1-template-body"' in response.text
    # What the user typed is still there, escaped.
    assert "Hi {{nickname}}</textarea>" in response.text and 'value="soon"' in response.text
    assert "[not json</textarea>" in response.text
    assert svc.list_campaigns(ctx, users["owner"]["principal"])["items"] == []


def test_an_email_step_without_subject_is_refused_on_the_step_and_user_text_is_escaped(ctx, client, users):
    csrf = operator(client)
    response = client.post("/campaigns/new", data=form(
        csrf, name="<script>alert(1)</script>", **{"steps.1.channel": "email"}))
    assert response.status_code == 422
    assert errors_of(response.text)["steps.1"] == "an email step needs template.subject"
    assert "<script>alert(1)</script>" not in response.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_add_step_shows_the_form_again_with_one_more_row_and_every_typed_value_kept(ctx, client, users):
    csrf = operator(client)
    response = client.post("/campaigns/new", data=form(csrf, op="add", name="Half typed"))
    assert response.status_code == 200
    assert response.text.count('data-testid="step-row"') == 3
    assert 'value="Half typed"' in response.text and "Your code {{attributes.code}}</textarea>" in response.text
    assert 'name="steps.2.channel"' in response.text
    removed = client.post("/campaigns/new", data=form(csrf, op="remove:0"))
    assert removed.text.count('data-testid="step-row"') == 1
    assert 'name="steps.0.template.body" rows="4" data-sms-text>Your code' in removed.text
    assert svc.list_campaigns(ctx, users["owner"]["principal"])["items"] == []


def test_the_server_shows_the_sms_segment_count_after_a_submit_and_the_endpoint_counts_the_same(
        ctx, client, users):
    csrf = operator(client)
    page = client.post("/campaigns/new", data=form(csrf, op="add", **{"steps.1.template.body": "ж" * 71})).text
    assert "UCS-2 · 2 segments as written" in page
    size = client.post("/campaigns/builder/sms-size", data={"text": "Hi {{first_name}}"},
                       headers={"X-CSRF-Token": csrf}).json()
    assert size == {"encoding": "GSM-7", "segments": 1, "units": 21, "max_segments": 10, "too_long": False,
                    "text": "GSM-7 · 1 segment as written"}  # a brace is an extension character: two units
    too_long = client.post("/campaigns/builder/sms-size", data={"text": "x" * 1600},
                           headers={"X-CSRF-Token": csrf}).json()
    assert too_long["too_long"] and too_long["segments"] == 11
    assert client.post("/campaigns/builder/sms-size", data={"text": "x"}).status_code == 403  # no CSRF token


def test_a_chosen_key_pool_is_stored_and_an_empty_choice_is_refused_beside_the_keys(ctx, client, users):
    key = sandbox_key(ctx, users["owner"]["principal"], "whatsapp", label="WA one")
    csrf = operator(client)
    assert "WA one" in client.get("/campaigns/new").text
    refused = client.post("/campaigns/new", data=form(csrf, pool="chosen"))
    assert refused.status_code == 422 and "tick at least one key" in errors_of(refused.text)["integration_ids"]
    unknown = client.post("/campaigns/new", data=form(csrf, pool="chosen", integration_ids=["99999"]))
    assert unknown.status_code == 422 and "unknown integration ids: 99999" in errors_of(unknown.text)["integration_ids"]
    saved = client.post("/campaigns/new", data=form(csrf, pool="chosen", integration_ids=[key]),
                        follow_redirects=False)
    assert saved.status_code == 303
    assert only_campaign(ctx, users)["integration_ids"] == [key]


def test_save_and_start_starts_the_campaign_and_a_refused_start_shows_each_gate_in_words(ctx, client, users):
    workspaces.set_subscription(ctx, users["owner"]["principal"], "canceled")
    csrf = operator(client)
    refused = client.post("/campaigns/new", data=form(csrf, op="start"))
    assert refused.status_code == 409
    assert "Saved as a draft, but not started" in refused.text and "✗ subscription" in refused.text
    assert only_campaign(ctx, users)["status"] == "draft"
    workspaces.set_subscription(ctx, users["owner"]["principal"], "active")
    sandbox_key(ctx, users["owner"]["principal"], "whatsapp")
    sandbox_key(ctx, users["owner"]["principal"], "sms")
    started = client.post("/campaigns/new", data=form(csrf, op="start", name="Go"), follow_redirects=False)
    assert started.status_code == 303
    cid = started.headers["location"].rsplit("/", 1)[1]
    assert svc.get_campaign(ctx, users["owner"]["principal"], cid)["status"] == "sending"


def test_save_and_schedule_needs_a_future_start_time_read_in_the_campaigns_time_zone(ctx, client, users):
    csrf = operator(client)
    missing = client.post("/campaigns/new", data=form(csrf, op="schedule"))
    assert missing.status_code == 422 and "give a start time" in errors_of(missing.text)["schedule.start_at"]
    assert svc.list_campaigns(ctx, users["owner"]["principal"])["items"] == []
    local = (datetime.now(UTC) + timedelta(days=3)).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Berlin")).replace(second=0, microsecond=0)
    response = client.post("/campaigns/new", data=form(
        csrf, op="schedule", **{"schedule.start_at": local.strftime("%Y-%m-%dT%H:%M")}), follow_redirects=False)
    assert response.status_code == 303
    c = only_campaign(ctx, users)
    assert c["status"] == "scheduled"
    assert datetime.fromisoformat(c["schedule"]["start_at"]) == local


def test_editing_a_draft_shows_its_values_and_saves_the_changes(ctx, client, users):
    owner = users["owner"]["principal"]
    cid = svc.create_campaign(ctx, owner, campaign_data("Old name", steps=[
        {"channel": "sms", "template": {"body": "Hello"}, "delay_seconds": 5400},
        {"channel": "linkedin", "template": {"action": "invite", "body": "Hi", "wait_seconds": 60},
         "delay_seconds": 86400}], limits={"daily_cap": None, "weekly_cap": None, "rate_per_second": 2.5,
                                           "ramp": {"start": 10, "increase": 5, "every_days": 2}}))["id"]
    csrf = operator(client)
    assert 'data-testid="edit-link"' in client.get(f"/campaigns/{cid}").text
    page = client.get(f"/campaigns/{cid}/edit").text
    assert 'value="Old name"' in page and 'value="90"' in page and 'value="1"' in page  # 90 minutes, 1 day
    assert '<option value="invite" selected>' in page and 'value="2.5"' in page
    response = client.post(f"/campaigns/{cid}/edit", data={
        "csrf": csrf, "name": "New name", "pool": "all", "steps.0.channel": "sms", "steps.0.delay": "0",
        "steps.0.delay_unit": "minutes", "steps.0.template.body": "Changed {{first_name}}",
        "schedule.timezone": "UTC", "schedule.days": ["sat"], "schedule.window_start": "00:00",
        "schedule.window_end": "24:00", "failure_policy.window": "50", "failure_policy.threshold_percent": "50",
        "failure_policy.min_samples": "20", "op": "draft"}, follow_redirects=False)
    assert response.status_code == 303
    c = svc.get_campaign(ctx, owner, cid)
    assert c["name"] == "New name" and c["steps"] == [
        {"channel": "sms", "template": {"body": "Changed {{first_name}}"}, "delay_seconds": 0}]
    assert c["schedule"]["days"] == ["sat"] and c["limits"]["ramp"] is None and c["limits"]["rate_per_second"] is None


def test_a_paused_campaign_changes_its_templates_but_keeps_its_steps_channels_and_delays(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner, "sms")
    cid = svc.create_campaign(ctx, owner, campaign_data("Paused", steps=[
        {"channel": "sms", "template": {"body": "Hello"}, "delay_seconds": 60}]))["id"]
    svc.start(ctx, owner, cid)
    svc.pause(ctx, owner, cid)
    csrf = operator(client)
    page = client.get(f"/campaigns/{cid}/edit").text
    assert 'data-testid="paused-note"' in page and "Add step" not in page and "Remove step" not in page
    response = client.post(f"/campaigns/{cid}/edit", data={
        "csrf": csrf, "name": "Paused", "pool": "all", "steps.0.channel": "email", "steps.0.delay": "9",
        "steps.0.delay_unit": "hours", "steps.0.template.body": "Hello again", "schedule.timezone": "UTC",
        "schedule.days": ["mon"], "schedule.window_start": "08:00", "schedule.window_end": "20:00",
        "limits.daily_cap": "30", "op": "draft"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    c = svc.get_campaign(ctx, owner, cid)
    assert c["status"] == "paused" and c["limits"]["daily_cap"] == 30
    assert c["steps"] == [{"channel": "sms", "template": {"body": "Hello again"}, "delay_seconds": 60}]


def test_a_sending_campaign_has_no_edit_page(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner, "whatsapp")
    cid = svc.create_campaign(ctx, owner, campaign_data())["id"]
    svc.start(ctx, owner, cid)
    operator(client)
    assert 'data-testid="edit-link"' not in client.get(f"/campaigns/{cid}").text
    page = client.get(f"/campaigns/{cid}/edit")
    assert page.status_code == 409 and "only a draft, scheduled or paused campaign can be edited" in page.text


def test_a_viewer_sees_no_builder_and_the_server_refuses_its_posts(ctx, client, users):
    owner = users["owner"]["principal"]
    cid = svc.create_campaign(ctx, owner, campaign_data("Kept"))["id"]
    sign_in(client, "viewer@acme.test")
    csrf = page_csrf(client)
    assert 'data-testid="new-campaign"' not in client.get("/campaigns").text
    assert 'data-testid="edit-link"' not in client.get(f"/campaigns/{cid}").text
    assert client.get("/campaigns/new").status_code == 403
    assert client.get(f"/campaigns/{cid}/edit").status_code == 403
    assert client.post("/campaigns/new", data=form(csrf)).status_code == 403
    assert client.post(f"/campaigns/{cid}/edit", data=form(csrf, name="Changed")).status_code == 403
    assert len(svc.list_campaigns(ctx, owner)["items"]) == 1
    assert svc.get_campaign(ctx, owner, cid)["name"] == "Kept"


def test_a_post_without_the_forms_csrf_token_changes_nothing(ctx, client, users):
    operator(client)
    assert client.post("/campaigns/new", data=form("forged")).status_code == 403
    assert svc.list_campaigns(ctx, users["owner"]["principal"])["items"] == []


def synced_catalogue(ctx, users, whatsapp_server) -> str:
    owner = users["owner"]["principal"]
    whatsapp_server.set_templates(WABA, CATALOGUE)
    key = whatsapp_key(ctx, owner, whatsapp_server, waba_id=WABA)
    catalogue.sync_catalogue(ctx, owner, key)
    return key


PICKED = {"steps.0.catalogue": "order_ready|en_US", "steps.0.template.name": "", "steps.0.template.language": ""}
PARAMETERS = {"steps.0.param.header.1": "{{first_name|there}}", "steps.0.param.body.1": "{{first_name}}",
              "steps.0.param.body.2": "{{attributes.order}}", "steps.0.param.button.0": "{{attributes.order}}",
              "steps.0.param.button.1": ""}


def inputs_of(page: str) -> dict[str, str]:
    """{name: value} of the parameter form's inputs."""
    return {name: html.unescape(value) for name, value in
            re.findall(r'<input type="text" id="[^"]+" name="(steps\.\d+\.param\.[^"]+)" value="([^"]*)"', page)}


def test_the_picker_lists_every_catalogue_template_and_only_approved_ones_can_be_chosen(
        ctx, client, users, whatsapp_server):
    synced_catalogue(ctx, users, whatsapp_server)
    operator(client)
    page = client.get("/campaigns/new").text
    options = dict(re.findall(r'<option value="([^"|]+\|en_US)"[^>]*?( disabled)?>', page))
    assert options == {"order_ready|en_US": "", "spring_sale|en_US": " disabled", "old_promo|en_US": " disabled",
                       "too_bold|en_US": " disabled", "retired|en_US": " disabled"}
    assert "Main number: order_ready (en_US) · header 1 · body 2 · buttons 1, 0" in page
    assert "spring_sale (en_US) · Pending review: not selectable" in page
    assert "too_bold (en_US) · Rejected: not selectable" in page
    assert 'value="template:0"' in page and "Use template" in page
    assert 'data-testid="template-parameters"' not in page  # nothing chosen yet: no parameter form


def test_use_template_shows_one_labelled_input_per_parameter_and_keeps_everything_typed(
        ctx, client, users, whatsapp_server):
    synced_catalogue(ctx, users, whatsapp_server)
    csrf = operator(client)
    page = client.post("/campaigns/new", data=form(csrf, op="template:0", name="Half typed", **PICKED))
    assert page.status_code == 200
    assert list(inputs_of(page.text)) == ["steps.0.param.header.1", "steps.0.param.body.1", "steps.0.param.body.2",
                                          "steps.0.param.button.0", "steps.0.param.button.1"]
    labels = [re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", label))).strip() for label in
              re.findall(r'<label for="f-steps-0-param-[^"]+">(.*?)</label>', page.text, re.S)]
    assert labels == ["Header {{1}} in ‘For {{1}}’", "Body {{1}} in ‘Hi {{1}}, order {{2}} is ready’",
                      "Body {{2}} in ‘Hi {{1}}, order {{2}} is ready’",
                      'Button 1 "Track" link {{1}} in ‘https://x.test/{{1}}’',
                      'Button 2 "Stop" reply payload optional · sent back when the lead taps it; blank: '
                      "the button's text"]
    assert 'name="steps.0.param.header.1" value="" data-testid="template-parameter" autofocus' in page.text
    assert 'value="Half typed"' in page.text and "Your code {{attributes.code}}</textarea>" in page.text
    assert 'name="steps.0.template.components"' not in page.text  # the form replaces the JSON
    assert svc.list_campaigns(ctx, users["owner"]["principal"])["items"] == []


def test_a_blank_or_wrong_parameter_is_refused_beside_its_input_and_every_typed_value_is_kept(
        ctx, client, users, whatsapp_server):
    synced_catalogue(ctx, users, whatsapp_server)
    csrf = operator(client)
    response = client.post("/campaigns/new", data=form(csrf, **PICKED, **{
        **PARAMETERS, "steps.0.param.body.2": "", "steps.0.param.button.0": "{{nickname}}"}))
    assert response.status_code == 422
    errors = errors_of(response.text)
    assert set(errors) == {"steps.0.param.body.2", "steps.0.param.button.0"}  # beside the inputs, not the step
    assert errors["steps.0.param.body.2"] == "this is required"
    assert "unknown template variable(s) nickname" in errors["steps.0.param.button.0"]
    assert 'href="#f-steps-0-param-body-2"' in response.text and "Step 1 · Body {{2}}: this is required" in \
        summary_of(response.text)
    typed = inputs_of(response.text)
    assert typed["steps.0.param.header.1"] == "{{first_name|there}}" and typed["steps.0.param.body.2"] == ""
    assert typed["steps.0.param.button.0"] == "{{nickname}}"
    assert 'id="f-steps-0-param-body-2" name="steps.0.param.body.2" value="" data-testid="template-parameter" ' \
           'aria-invalid="true" aria-describedby="f-steps-0-param-body-2-error"' in response.text
    assert svc.list_campaigns(ctx, users["owner"]["principal"])["items"] == []


def test_the_saved_step_carries_exactly_metas_components_and_editing_shows_them_in_their_inputs(
        ctx, client, users, whatsapp_server):
    synced_catalogue(ctx, users, whatsapp_server)
    csrf = operator(client)
    response = client.post("/campaigns/new", data=form(csrf, **PICKED, **{**PARAMETERS,
                                                                          "steps.0.param.button.1": "STOP"}),
                           follow_redirects=False)
    assert response.status_code == 303, summary_of(response.text)
    c = only_campaign(ctx, users)
    assert c["steps"][0]["template"] == {"name": "order_ready", "language": "en_US", "body": "Hi {{first_name}}",
                                         "components": [
        {"type": "header", "parameters": [{"type": "text", "text": "{{first_name|there}}"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"},
                                        {"type": "text", "text": "{{attributes.order}}"}]},
        {"type": "button", "sub_type": "url", "index": "0",
         "parameters": [{"type": "text", "text": "{{attributes.order}}"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "1",
         "parameters": [{"type": "payload", "payload": "STOP"}]}]}
    page = client.get(f"/campaigns/{c['id']}/edit").text
    assert inputs_of(page) == {**PARAMETERS, "steps.0.param.button.1": "STOP"}
    assert re.search(r'<option value="order_ready\|en_US"[^>]* selected>', page)
    # Saved again unchanged, the step is the same.
    again = client.post(f"/campaigns/{c['id']}/edit", data=form(csrf, **PICKED, **{
        **PARAMETERS, "steps.0.param.button.1": "STOP"}), follow_redirects=False)
    assert again.status_code == 303
    assert svc.get_campaign(ctx, users["owner"]["principal"], c["id"])["steps"][0] == c["steps"][0]


def test_components_typed_as_json_for_a_picked_template_become_its_parameter_form(
        ctx, client, users, whatsapp_server):
    synced_catalogue(ctx, users, whatsapp_server)
    csrf = operator(client)
    response = client.post("/campaigns/new", data=form(csrf, **PICKED, **{
        "steps.0.template.components": json.dumps(TEMPLATE["components"])}), follow_redirects=False)
    assert response.status_code == 303, summary_of(response.text)
    stored = only_campaign(ctx, users)["steps"][0]["template"]
    assert stored["name"] == "order_ready" and stored["components"][2]["index"] == "0"
    assert [c["parameters"] for c in stored["components"]] == [c["parameters"] for c in TEMPLATE["components"]]


def test_a_named_template_asks_for_each_name_and_the_saved_parameters_carry_it(ctx, client, users, whatsapp_server):
    owner = users["owner"]["principal"]
    named = {"name": "welcome", "language": "de", "status": "APPROVED", "category": "MARKETING", "id": "id-w",
             "parameter_format": "NAMED",
             "components": [{"type": "BODY", "text": "Hallo {{first_name}}, dein Code: {{code}}"}]}
    whatsapp_server.set_templates(WABA, [named])
    catalogue.sync_catalogue(ctx, owner, whatsapp_key(ctx, owner, whatsapp_server, waba_id=WABA))
    csrf = operator(client)
    picked = {"steps.0.catalogue": "welcome|de", "steps.0.template.name": "", "steps.0.template.language": ""}
    page = client.post("/campaigns/new", data=form(csrf, op="template:0", **picked)).text
    assert list(inputs_of(page)) == ["steps.0.param.body.first_name", "steps.0.param.body.code"]
    assert "Body {{code}}" in page and "in ‘Hallo {{first_name}}, dein Code: {{code}}’" in page
    response = client.post("/campaigns/new", data=form(csrf, **picked, **{
        "steps.0.param.body.first_name": "{{first_name|du}}", "steps.0.param.body.code": "{{attributes.code}}"}),
        follow_redirects=False)
    assert response.status_code == 303, summary_of(response.text)
    assert only_campaign(ctx, users)["steps"][0]["template"]["components"] == [{"type": "body", "parameters": [
        {"type": "text", "text": "{{first_name|du}}", "parameter_name": "first_name"},
        {"type": "text", "text": "{{attributes.code}}", "parameter_name": "code"}]}]


def test_a_paused_campaign_shows_its_stored_parameters_and_saves_a_changed_one_keeping_its_delay(
        ctx, client, users, whatsapp_server):
    synced_catalogue(ctx, users, whatsapp_server)
    owner = users["owner"]["principal"]
    cid = svc.create_campaign(ctx, owner, campaign_data("Paused", steps=[
        {"channel": "whatsapp", "template": TEMPLATE, "delay_seconds": 120}]))["id"]
    add_leads(ctx, cid, 2)
    svc.start(ctx, owner, cid)
    svc.pause(ctx, owner, cid)
    csrf = operator(client)
    page = client.get(f"/campaigns/{cid}/edit").text
    assert 'data-testid="paused-note"' in page
    assert inputs_of(page) == PARAMETERS  # the stored components, one per input
    response = client.post(f"/campaigns/{cid}/edit", data={
        "csrf": csrf, "name": "Paused", "pool": "all", "steps.0.channel": "whatsapp", "steps.0.delay": "2",
        "steps.0.delay_unit": "minutes", **PICKED, **{**PARAMETERS, "steps.0.param.body.1": "Dear {{first_name}}"},
        "steps.0.template.body": "Hi {{first_name}}", "schedule.timezone": "UTC", "schedule.days": ["mon"],
        "schedule.window_start": "08:00", "schedule.window_end": "20:00", "op": "draft"}, follow_redirects=False)
    assert response.status_code == 303, summary_of(response.text)
    step = svc.get_campaign(ctx, owner, cid)["steps"][0]
    assert step["delay_seconds"] == 120 and step["template"]["components"][1]["parameters"][0] == {
        "type": "text", "text": "Dear {{first_name}}"}


def test_stored_components_the_form_cannot_show_stay_as_json_on_the_edit_page(ctx, client, users, whatsapp_server):
    synced_catalogue(ctx, users, whatsapp_server)
    owner = users["owner"]["principal"]
    components = [{"type": "header", "parameters": [{"type": "text", "text": "x"}]},
                  {"type": "body", "parameters": [
                      {"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}},
                      {"type": "text", "text": "y"}]},
                  {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "z"}]}]
    cid = svc.create_campaign(ctx, owner, campaign_data("Money", steps=[{"channel": "whatsapp", "template": {
        "name": "order_ready", "language": "en_US", "components": components}}]))["id"]
    operator(client)
    page = client.get(f"/campaigns/{cid}/edit").text
    assert inputs_of(page) == {} and "amount_1000" in page and 'name="steps.0.template.components"' in page


def test_a_scheduled_campaign_changes_its_limits_while_its_steps_stay_as_they_are(ctx, client, users):
    owner = users["owner"]["principal"]
    cid = svc.create_campaign(ctx, owner, campaign_data("Later", steps=[
        {"channel": "sms", "template": {"body": "Hello"}, "delay_seconds": 0}]))["id"]
    start_at = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    svc.schedule(ctx, owner, cid, start_at)
    csrf = operator(client)
    page = client.get(f"/campaigns/{cid}/edit").text
    assert 'data-testid="scheduled-note"' in page and "Add step" not in page and "Save changes" in page
    assert f'value="{start_at.strftime("%Y-%m-%dT%H:%M")}"' in page  # shown in the campaign's zone (UTC)
    response = client.post(f"/campaigns/{cid}/edit", data={
        "csrf": csrf, "name": "Later", "pool": "all", "steps.0.channel": "sms", "steps.0.delay": "0",
        "steps.0.delay_unit": "minutes", "steps.0.template.body": "Typed anyway", "schedule.timezone": "UTC",
        "schedule.days": ["mon", "fri"], "schedule.window_start": "08:00", "schedule.window_end": "20:00",
        "limits.weekly_cap": "700", "op": "draft"}, follow_redirects=False)
    assert response.status_code == 303, summary_of(response.text)
    c = svc.get_campaign(ctx, owner, cid)
    assert c["status"] == "scheduled" and c["limits"]["weekly_cap"] == 700 and c["schedule"]["days"] == ["mon", "fri"]
    assert c["steps"][0]["template"] == {"body": "Hello"}
    assert datetime.fromisoformat(c["schedule"]["start_at"]) == start_at  # left out: the start time stays
