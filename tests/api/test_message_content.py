"""Step templates of issue 18 at the API: WhatsApp components, email html and SMS length
are refused with the field path of each problem (nothing stored), and a campaign not yet
sending says how many leads miss each variable. Both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from drumbeat.services.context import Principal
from drumbeat.store.tables import leads
from tests.factory import add_leads, sandbox_key

API = "/api/v1"


def wa_step(components, **extra) -> dict:
    return {"channel": "whatsapp", "template": {"name": "order_ready", "language": "en_US",
                                                "components": components, **extra}}


def refused_fields(client, owner, steps) -> dict[str, str]:
    response = client.post(f"{API}/campaigns", headers=owner["headers"], json={"name": "x", "steps": steps})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    return {f["field"]: f["message"] for f in error["details"]["fields"]}


def no_campaign_stored(client, owner) -> bool:
    return client.get(f"{API}/campaigns", headers=owner["headers"]).json()["items"] == []


@pytest.mark.parametrize(("components", "field", "says"), [
    ([{"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"}]},
      {"type": "button", "sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "{{ordr}}"}]}],
     "steps.0.template.components.1.parameters.0.text", "unknown template variable(s) ordr"),
    ([{"type": "header", "parameters": [{"type": "image", "image": {"link": "http://cdn.example.com/a.png"}}]}],
     "steps.0.template.components.0.parameters.0.image.link", "https://"),
    ([{"type": "body", "parameters": [{"type": "text", "text": 7}]}],
     "steps.0.template.components.0.parameters.0.text", "non-empty string"),
    ([{"type": "footer", "parameters": []}], "steps.0.template.components.0.type", "header, body or button"),
    ([{"type": "body", "parameters": [{"type": "text", "text": "x" * 1025}]}],
     "steps.0.template.components", "1024"),
    ([{"type": "button", "sub_type": "url", "index": i % 10, "parameters": [{"type": "text", "text": "a"}]}
      for i in range(11)], "steps.0.template.components", "at most 10 buttons"),
    ({"type": "body"}, "steps.0.template.components", "list"),
])
def test_a_whatsapp_template_not_in_metas_shape_is_refused_with_the_path_of_the_problem(
        client, owner, components, field, says):
    fields = refused_fields(client, owner, [wa_step(components)])
    assert field in fields and says in fields[field], fields
    assert no_campaign_stored(client, owner)


def test_every_problem_of_the_components_is_named(client, owner):
    fields = refused_fields(client, owner, [
        {"channel": "sms", "template": {"body": "Hi"}},
        wa_step([{"type": "body", "parameters": [{"type": "text", "text": "{{frist_name}}"}]},
                 {"type": "button", "sub_type": "call", "index": 0, "parameters": [{"type": "text", "text": "a"}]}])])
    assert set(fields) == {"steps.1.template.components.0.parameters.0.text", "steps.1.template.components.1.sub_type"}


def test_a_whatsapp_template_step_may_leave_body_out_but_other_steps_may_not(client, owner):
    created = client.post(f"{API}/campaigns", headers=owner["headers"], json={"name": "x", "steps": [
        wa_step([{"type": "body", "parameters": [{"type": "text", "text": "{{first_name|there}}"}]}])]})
    assert created.status_code == 201, created.text
    assert created.json()["steps"][0]["template"]["components"][0]["parameters"][0]["text"] == "{{first_name|there}}"
    fields = refused_fields(client, owner, [{"channel": "sms", "template": {"name": "x", "language": "en"}}])
    assert list(fields) == ["steps.0.template.body"]


def test_components_and_html_belong_to_their_own_channels(client, owner):
    fields = refused_fields(client, owner, [
        {"channel": "sms", "template": {"body": "Hi", "components": [], "html": "<p>Hi</p>"}}])
    assert set(fields) == {"steps.0.template.components", "steps.0.template.html"}


def test_email_html_variables_are_checked(client, owner):
    fields = refused_fields(client, owner, [{"channel": "email", "template": {
        "subject": "Hi", "body": "Hi", "html": "<p>{{compnay}}</p>"}}])
    assert list(fields) == ["steps.0.template.html"] and "compnay" in fields["steps.0.template.html"]
    created = client.post(f"{API}/campaigns", headers=owner["headers"], json={"name": "x", "steps": [
        {"channel": "email", "template": {"subject": "Hi", "body": "Hi", "html": "<p>{{first_name}}</p>"}}]})
    assert created.status_code == 201 and created.json()["steps"][0]["template"]["html"] == "<p>{{first_name}}</p>"


def test_an_sms_body_over_ten_segments_as_written_is_refused(client, owner):
    at_limit = "a" * 1530  # 10 segments of 153 GSM-7 characters
    ok = client.post(f"{API}/campaigns", headers=owner["headers"], json={
        "name": "x", "steps": [{"channel": "sms", "template": {"body": at_limit}}]})
    assert ok.status_code == 201, ok.text
    fields = refused_fields(client, owner, [{"channel": "sms", "template": {"body": at_limit + "a"}}])
    assert "11 SMS segments (GSM-7)" in fields["steps.0.template.body"]
    fields = refused_fields(client, owner, [{"channel": "sms", "template": {"body": "😀" * 336}}])
    assert "UCS-2" in fields["steps.0.template.body"]


def test_a_paused_campaigns_template_patch_is_validated_the_same_and_changes_nothing(ctx, client, owner):
    principal = Principal(owner["user_id"], owner["workspace_id"], "owner")
    sandbox_key(ctx, principal)
    good = [wa_step([{"type": "body", "parameters": [{"type": "text", "text": "{{first_name|there}}"}]}])]
    cid = client.post(f"{API}/campaigns", headers=owner["headers"], json={"name": "x", "steps": good}).json()["id"]
    add_leads(ctx, cid, 1)
    assert client.post(f"{API}/campaigns/{cid}/start", headers=owner["headers"]).status_code == 200
    assert client.post(f"{API}/campaigns/{cid}/pause", headers=owner["headers"]).status_code == 200

    bad = [wa_step([{"type": "body", "parameters": [{"type": "text", "text": "a\n{{nope}}"}]}])]
    response = client.patch(f"{API}/campaigns/{cid}", headers=owner["headers"], json={"steps": bad})
    assert response.status_code == 422
    fields = [f["field"] for f in response.json()["error"]["details"]["fields"]]
    assert fields == ["steps.0.template.components.0.parameters.0.text"]
    stored = client.get(f"{API}/campaigns/{cid}", headers=owner["headers"]).json()
    assert stored["steps"][0]["template"] == good[0]["template"]


# --- missing variables before start -----------------------------------------------------------

def test_a_draft_campaign_counts_the_leads_missing_each_variable(ctx, client, owner):
    steps = [
        {"channel": "sms", "template": {"body": "Hi {{first_name|there}}, code {{attributes.code}}"}},
        {"channel": "sms", "template": {"body": "{{last_name}}: {{ attributes.city }}"}, "delay_seconds": 60}]
    cid = client.post(f"{API}/campaigns", headers=owner["headers"], json={"name": "x", "steps": steps}).json()["id"]
    imported = client.post(f"{API}/campaigns/{cid}/leads", headers=owner["headers"], json={"leads": [
        {"phone": "+4915112345670", "last_name": "Lovelace", "attributes": {"code": "A1", "city": "London"}},
        {"phone": "+4915112345671", "attributes": {"code": "  ", "city": 0}},  # blank: missing; 0 is a value
        {"phone": "+4915112345672", "attributes": {"code": None, "city": "Paris"}},
        {"phone": "+4915112345673", "last_name": "Smith", "attributes": {}}]})
    assert imported.json()["accepted"] == 4
    page = client.get(f"{API}/campaigns/{cid}/leads", headers=owner["headers"]).json()["items"]
    ids = {lead["phone"]: lead["id"] for lead in page}
    # The last lead has already run step 0 (no longer needs attributes.code) and is at step 1.
    with ctx.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id == int(ids["+4915112345673"]))
                     .values(state="in_progress", current_step=1))

    shown = client.get(f"{API}/campaigns/{cid}", headers=owner["headers"]).json()

    assert shown["missing_variables"] == [  # first_name has a fallback: never missing
        {"variable": "attributes.city", "leads": 1, "sample_lead_ids": [ids["+4915112345673"]]},
        {"variable": "attributes.code", "leads": 2,
         "sample_lead_ids": sorted([ids["+4915112345671"], ids["+4915112345672"]], key=int)},
        {"variable": "last_name", "leads": 2,
         "sample_lead_ids": sorted([ids["+4915112345671"], ids["+4915112345672"]], key=int)},
    ]
    listed = client.get(f"{API}/campaigns", headers=owner["headers"]).json()["items"]
    assert "missing_variables" not in listed[0]  # the detail only: it reads the leads


def test_a_campaign_whose_leads_have_every_value_misses_nothing(ctx, client, owner):
    steps = [{"channel": "sms", "template": {"body": "Hi {{first_name}}"}}]
    cid = client.post(f"{API}/campaigns", headers=owner["headers"], json={"name": "x", "steps": steps}).json()["id"]
    client.post(f"{API}/campaigns/{cid}/leads", headers=owner["headers"], json={"leads": [
        {"phone": "+4915112345670", "first_name": "Ada"}]})
    assert client.get(f"{API}/campaigns/{cid}", headers=owner["headers"]).json()["missing_variables"] == []
