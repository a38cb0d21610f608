"""The WhatsApp template catalogue: synced from every page of Meta's message_templates,
kept by Meta's template-status and number-quality webhooks, checked at create/PATCH and by
gate `template` at start/resume."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, update

from drumbeat.domain.exceptions import ValidationFailed
from drumbeat.services import campaigns as campaign_service
from drumbeat.services import holds
from drumbeat.services import templates as template_service
from drumbeat.services.context import Principal
from drumbeat.store import integrations as integration_store
from drumbeat.store.tables import holds as holds_table
from drumbeat.store.tables import integrations, key_failures, template_catalogue
from tests.api.test_campaigns import API, act, enroll, fields_of, get, timeline
from tests.factory import campaign_data
from tests.fakes.providers import phone_number_quality_update, post_meta_webhook, template_status_update

TOKEN = "EAAG-catalogue-token-c0de"
APP_SECRET = "meta-app-secret-5ec7"
WABA = "102290129340398"

BODY_TWO = {"type": "BODY", "text": "Hi {{1}}, your order {{2}} is ready"}
URL_BUTTON = {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://x.test/{{1}}"},
                                             {"type": "QUICK_REPLY", "text": "Stop"}]}


def meta_template(name, language="en_US", status="APPROVED", components=None, parameter_format="POSITIONAL"):
    return {"name": name, "language": language, "status": status, "category": "MARKETING",
            "parameter_format": parameter_format, "id": f"id-{name}-{language}",
            "components": components if components is not None else [BODY_TWO]}


CATALOGUE = [
    meta_template("order_ready", components=[{"type": "HEADER", "format": "IMAGE"}, BODY_TWO, URL_BUTTON]),
    meta_template("order_ready", language="de"),
    meta_template("welcome", components=[{"type": "BODY", "text": "Welcome!"}]),
    meta_template("named", parameter_format="NAMED",
                  components=[{"type": "BODY", "text": "Hi {{first_name}}, code {{code}}"}]),
    meta_template("pending_one", status="PENDING", components=[{"type": "BODY", "text": "Soon"}]),
]


def body(*texts, named=None):
    return {"type": "body", "parameters": [
        {"type": "text", "text": t, **({"parameter_name": named[i]} if named else {})} for i, t in enumerate(texts)]}


def step(name="welcome", language="en_US", components=None):
    template = {"name": name, "language": language, "body": "Welcome"}
    if components is not None:
        template["components"] = components
    return {"channel": "whatsapp", "template": template, "delay_seconds": 0}


def whatsapp_integration(client, headers, server, **config):
    response = client.post(f"{API}/integrations", headers=headers, json={
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "Main number",
        "credentials": {"access_token": TOKEN, "app_secret": APP_SECRET},
        "config": {"phone_number_id": "1234567890", "waba_id": WABA, "base_url": f"{server.base_url}/v23.0",
                   **config}})
    assert response.status_code == 201, response.text
    return response.json()


def sync(client, headers, integration_id):
    return client.post(f"{API}/integrations/{integration_id}/templates/sync", headers=headers)


def listed(client, headers, integration_id):
    response = client.get(f"{API}/integrations/{integration_id}/templates", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.fixture
def synced(client, owner, whatsapp_server):
    """A WhatsApp integration whose catalogue holds CATALOGUE (three pages of two)."""
    whatsapp_server.set_templates(WABA, CATALOGUE)
    integration = whatsapp_integration(client, owner["headers"], whatsapp_server)
    response = sync(client, owner["headers"], integration["id"])
    assert response.status_code == 200, response.text
    return integration


def new_campaign(client, headers, steps, **fields):
    return client.post(f"{API}/campaigns", headers=headers, json={"name": "Orders", "steps": steps, **fields})


def sending(client, ctx, headers, steps=None):
    response = new_campaign(client, headers, steps or [step()])
    assert response.status_code == 201, response.text
    campaign = response.json()
    enroll(ctx, campaign["id"])
    started = act(client, headers, campaign["id"], "start")
    assert started.status_code == 200, started.text
    return campaign


def campaign_holds(ctx, campaign_id):
    with ctx.db.connect() as conn:
        return {r.channel: r.reason for r in conn.execute(
            select(holds_table.c.channel, holds_table.c.reason).where(holds_table.c.campaign_id == campaign_id))}


def integration_row(ctx, integration_id):
    with ctx.db.connect() as conn:
        return conn.execute(select(integrations).where(integrations.c.id == integration_id)).mappings().first()


# --- sync and list ---------------------------------------------------------------------------

def test_a_sync_reads_every_page_with_the_bearer_token_and_stores_the_whole_catalogue(client, owner, whatsapp_server,
                                                                                      synced):
    calls = whatsapp_server.template_calls()
    assert len(calls) == 3  # five templates, pages of two
    assert all(c.key == TOKEN and c.account == WABA for c in calls)
    assert "components" in calls[0].body["fields"]
    assert [c.body.get("after") is None for c in calls] == [True, False, False]
    items = listed(client, owner["headers"], synced["id"])
    assert sorted((i["name"], i["language"], i["status"]) for i in items) == sorted(
        (t["name"], t["language"], t["status"]) for t in CATALOGUE)
    assert all(i["category"] == "MARKETING" and i["synced_at"].endswith("+00:00") for i in items)


def test_the_list_gives_each_templates_parameter_counts(client, owner, synced):
    items = {(i["name"], i["language"]): i for i in listed(client, owner["headers"], synced["id"])}
    assert items[("order_ready", "en_US")]["parameters"] == {"header": 1, "body": 2, "buttons": [1, 0]}
    assert items[("welcome", "en_US")]["parameters"] == {"header": 0, "body": 0, "buttons": []}
    assert items[("named", "en_US")]["parameters"] == {"header": 0, "body": 2, "buttons": []}
    assert items[("order_ready", "en_US")]["components"] == CATALOGUE[0]["components"]


def test_a_second_sync_replaces_the_catalogue(client, owner, whatsapp_server, synced):
    whatsapp_server.set_templates(WABA, [meta_template("welcome", status="PAUSED")])
    assert sync(client, owner["headers"], synced["id"]).json() == {"synced": 1}
    assert [(i["name"], i["status"]) for i in listed(client, owner["headers"], synced["id"])] == [("welcome", "PAUSED")]


def test_a_failing_page_keeps_the_old_catalogue_and_answers_503_with_the_providers_code(client, owner,
                                                                                       whatsapp_server, synced):
    before = listed(client, owner["headers"], synced["id"])
    whatsapp_server.set_templates(WABA, [meta_template(f"t{i}") for i in range(6)])
    whatsapp_server.fail_templates_page(2, 131000)

    response = sync(client, owner["headers"], synced["id"])

    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["details"]["code"] == "whatsapp:131000" and error["details"]["message"] == "Something went wrong"
    assert listed(client, owner["headers"], synced["id"]) == before


def test_a_page_that_never_answers_keeps_the_old_catalogue(client, owner, whatsapp_server, synced, monkeypatch):
    before = listed(client, owner["headers"], synced["id"])
    monkeypatch.setattr(template_service, "SYNC_TIMEOUT", httpx.Timeout(0.3))
    whatsapp_server.set_templates(WABA, [meta_template(f"t{i}") for i in range(4)])
    whatsapp_server.fail_templates_page(1, hang=1.5)

    response = sync(client, owner["headers"], synced["id"])

    assert response.status_code == 503
    assert response.json()["error"]["details"]["code"] == "whatsapp:timeout"
    assert listed(client, owner["headers"], synced["id"]) == before


def test_an_expired_token_marks_the_key_failed_in_each_campaign_sending_through_it(client, ctx, owner,
                                                                                  whatsapp_server):
    integration = whatsapp_integration(client, owner["headers"], whatsapp_server)
    campaign = sending(client, ctx, owner["headers"], [step(name="promo", language="en")])
    whatsapp_server.fail_key(TOKEN, 190)

    response = sync(client, owner["headers"], integration["id"])

    assert response.status_code == 503
    assert response.json()["error"]["details"]["code"] == "whatsapp:190"
    with ctx.db.connect() as conn:
        marks = conn.execute(select(key_failures)).mappings().all()
    assert [(m["campaign_id"], m["integration_id"], m["error_code"]) for m in marks] == \
        [(campaign["id"], integration["id"], "whatsapp:190")]
    # its only key failed: the channel is held as a send's answer would hold it
    assert campaign_holds(ctx, campaign["id"]) == {"whatsapp": "all_keys_failed"}
    assert get(client, owner["headers"], campaign["id"])["status"] == "paused"


def test_a_sync_needs_a_whatsapp_integration_with_a_waba_id(client, owner, whatsapp_server):
    no_waba = whatsapp_integration(client, owner["headers"], whatsapp_server, waba_id=None)
    response = sync(client, owner["headers"], no_waba["id"])
    assert response.status_code == 422 and fields_of(response) == ["config.waba_id"]
    sms = client.post(f"{API}/integrations", headers=owner["headers"], json={
        "channel": "sms", "provider": "sandbox", "label": "sms", "config": {}}).json()
    response = sync(client, owner["headers"], sms["id"])
    assert response.status_code == 422 and fields_of(response) == ["provider"]
    assert listed(client, owner["headers"], sms["id"]) == []  # nothing to list, nothing refused
    assert whatsapp_server.template_calls() == []


# --- create/PATCH against the catalogue ----------------------------------------------------------

@pytest.mark.parametrize(("bad_step", "says"), [
    (step(name="unknown"), "'unknown' is not in the catalogue"),
    (step(language="fr"), "has no language 'fr'"),
    (step(name="order_ready", language="de"), "the body of 'order_ready' takes 2 parameter(s), the step gives 0"),
])
def test_a_step_that_does_not_fit_the_catalogue_is_refused_naming_the_step(client, owner, synced, bad_step, says):
    response = new_campaign(client, owner["headers"], [step(), bad_step])
    assert response.status_code == 422, response.text
    problems = response.json()["error"]["details"]["fields"]
    assert [p["field"] for p in problems] == ["steps[1].template"] * len(problems)
    assert any(says in p["message"] and p["message"].startswith("Main number: ") for p in problems), problems
    assert client.get(f"{API}/campaigns", headers=owner["headers"]).json()["items"] == []


@pytest.mark.parametrize(("components", "says"), [
    ([body("{{first_name}}")], "takes 2 parameter(s), the step gives 1"),
    ([body("{{first_name}}", "X", named=["first_name", "coupon"])], "takes the named parameters first_name, code"),
])
def test_parameters_that_do_not_fit_the_catalogue_are_refused(ctx, owner, synced, components, says):
    # components reach the service as the step schema gives them (its part of issue 18)
    principal = Principal(owner["user_id"], owner["workspace_id"], "owner")
    good = campaign_data(steps=[step(name="named", language="en_US",
                                     components=[body("{{first_name}}", "X", named=["first_name", "code"])])])
    assert campaign_service.create_campaign(ctx, principal, good)["status"] == "draft"
    with pytest.raises(ValidationFailed) as refused:
        campaign_service.create_campaign(ctx, principal, campaign_data(steps=[
            step(name="named", language="en_US", components=components) if "named" in says
            else step(name="order_ready", language="de", components=components)]))
    assert [f["field"] for f in refused.value.fields] == ["steps[0].template"]
    assert says in refused.value.fields[0]["message"]


def test_a_patch_is_checked_against_the_catalogue_and_changes_nothing_when_refused(client, owner, synced):
    campaign = new_campaign(client, owner["headers"], [step()]).json()
    response = client.patch(f"{API}/campaigns/{campaign['id']}", headers=owner["headers"],
                            json={"steps": [step(language="fr")]})
    assert response.status_code == 422 and fields_of(response) == ["steps[0].template"]
    assert get(client, owner["headers"], campaign["id"])["steps"][0]["template"]["language"] == "en_US"


def test_without_a_catalogue_any_template_may_be_saved(client, owner, whatsapp_server):
    whatsapp_integration(client, owner["headers"], whatsapp_server)
    assert new_campaign(client, owner["headers"], [step(name="anything")]).status_code == 201


def test_a_pending_template_is_saved_in_a_draft_but_the_template_gate_refuses_to_start(client, ctx, owner, synced):
    response = new_campaign(client, owner["headers"],
                            [step(name="pending_one", language="en_US")])
    assert response.status_code == 201, response.text
    campaign = response.json()
    enroll(ctx, campaign["id"])

    refused = act(client, owner["headers"], campaign["id"], "start")

    assert refused.status_code == 409
    gates = [g for g in refused.json()["error"]["details"]["gates"] if g["gate"] == "template"]
    assert gates == [{"gate": "template", "ok": False, "channel": "whatsapp", "integration_id": synced["id"],
                      "reason": "step 0: template 'pending_one' (en_US) is PENDING, not APPROVED"}]
    assert get(client, owner["headers"], campaign["id"])["status"] == "draft"


# --- Meta's webhooks -----------------------------------------------------------------------------

def test_a_rejected_template_holds_the_channel_until_a_person_resumes_after_approval(client, ctx, owner, synced):
    campaign = sending(client, ctx, owner["headers"])

    response = post_meta_webhook(client, synced["id"], template_status_update("welcome", "en_US", "REJECTED",
                                                                              reason="ABUSIVE_CONTENT"), APP_SECRET)

    assert response.status_code == 200, response.text
    assert campaign_holds(ctx, campaign["id"]) == {"whatsapp": "template_rejected"}
    view = get(client, owner["headers"], campaign["id"])
    assert view["status"] == "paused" and view["paused_reason"] == "template_rejected"
    placed = [e for e in timeline(client, owner["headers"], campaign["id"]) if e["action"] == "hold_placed"]
    assert placed[-1]["details"]["template"] == "welcome" and placed[-1]["details"]["reason"] == "ABUSIVE_CONTENT"
    statuses = {(i["name"], i["language"]): i["status"] for i in listed(client, owner["headers"], synced["id"])}
    assert statuses[("welcome", "en_US")] == "REJECTED"
    # a person's resume is refused while the catalogue says REJECTED
    refused = act(client, owner["headers"], campaign["id"], "resume")
    assert refused.status_code == 409
    assert any(g["gate"] == "template" and not g["ok"] for g in refused.json()["error"]["details"]["gates"])

    # APPROVED refreshes the catalogue only: the sweeper leaves the hold to a person
    post_meta_webhook(client, synced["id"], template_status_update("welcome", "en_US", "APPROVED"), APP_SECRET)
    with ctx.db.begin() as conn:
        assert holds.sweep_campaign(conn, campaign["id"], ctx.clock()) is None
    assert campaign_holds(ctx, campaign["id"]) == {"whatsapp": "template_rejected"}
    assert get(client, owner["headers"], campaign["id"])["status"] == "paused"

    resumed = act(client, owner["headers"], campaign["id"], "resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "sending"
    assert campaign_holds(ctx, campaign["id"]) == {}


def test_a_paused_template_of_another_campaign_holds_nothing_here(client, ctx, owner, synced):
    campaign = sending(client, ctx, owner["headers"])
    post_meta_webhook(client, synced["id"], template_status_update("order_ready", "en_US", "PAUSED"), APP_SECRET)
    assert campaign_holds(ctx, campaign["id"]) == {}
    assert get(client, owner["headers"], campaign["id"])["status"] == "sending"


def test_a_badly_signed_status_update_is_401_and_changes_nothing(client, ctx, owner, synced):
    campaign = sending(client, ctx, owner["headers"])
    payload = template_status_update("welcome", "en_US", "DISABLED")
    assert post_meta_webhook(client, synced["id"], payload, "not-the-secret").status_code == 401
    assert post_meta_webhook(client, synced["id"], payload, None).status_code == 401
    assert campaign_holds(ctx, campaign["id"]) == {}
    with ctx.db.connect() as conn:
        status = conn.execute(select(template_catalogue.c.status).where(
            template_catalogue.c.name == "welcome", template_catalogue.c.language == "en_US")).scalar()
    assert status == "APPROVED"


def test_a_restricted_number_marks_the_integration_restricted_and_holds_its_channel(client, ctx, owner, synced):
    campaign = sending(client, ctx, owner["headers"])

    response = post_meta_webhook(client, synced["id"], phone_number_quality_update("RESTRICTED"), APP_SECRET)

    assert response.status_code == 200
    assert client.get(f"{API}/integrations/{synced['id']}", headers=owner["headers"]).json()["state"] == "restricted"
    assert campaign_holds(ctx, campaign["id"]) == {"whatsapp": "account_restricted"}
    assert get(client, owner["headers"], campaign["id"])["paused_reason"] == "account_restricted"


def test_a_flagged_number_is_recorded_on_the_integration_and_the_timeline(client, ctx, owner, synced):
    campaign = sending(client, ctx, owner["headers"])
    post_meta_webhook(client, synced["id"], phone_number_quality_update("FLAGGED", current_limit="TIER_1K"),
                      APP_SECRET)
    row = integration_row(ctx, synced["id"])
    assert row["messaging_quality"]["event"] == "FLAGGED" and row["health"] == "active"
    entries = [e for e in timeline(client, owner["headers"], campaign["id"]) if e["action"] == "number_quality"]
    assert [(e["reason"], e["details"]["daily_limit"]) for e in entries] == [("FLAGGED", 1000)]
    assert campaign_holds(ctx, campaign["id"]) == {}


@pytest.mark.parametrize(("daily_cap", "update_", "expected"), [
    (None, {"current_limit": "TIER_250"}, 250),
    (100, {"current_limit": "TIER_250"}, 100),
    (None, {"current_limit": "TIER_UNLIMITED"}, None),
    (5000, {"current_limit": "TIER_1K", "max_daily": 2000}, 2000),
])
def test_the_providers_tier_caps_the_keys_daily_sends_unless_daily_cap_is_lower(client, ctx, owner, synced,
                                                                                daily_cap, update_, expected):
    client.patch(f"{API}/integrations/{synced['id']}", headers=owner["headers"], json={"daily_cap": daily_cap})
    post_meta_webhook(client, synced["id"], phone_number_quality_update("UPGRADE", **update_), APP_SECRET)
    row = integration_row(ctx, synced["id"])
    assert row["daily_cap"] == daily_cap  # the operator's cap is kept apart
    assert integration_store.daily_cap_of(row) == expected


def test_a_tier_holds_the_worker_to_that_many_sends_a_day_on_the_key(ctx):
    from tests.engine.test_windows_caps import clocked, drain, sent
    from tests.factory import add_leads, sandbox_key, workspace
    from tests.factory import new_campaign as factory_campaign

    c, _ = clocked(ctx)
    p = workspace(c)
    key = sandbox_key(c, p)
    with c.db.begin() as conn:  # what a TIER webhook records, at a size a test can send
        conn.execute(update(integrations).where(integrations.c.id == key).values(provider_daily_limit=12))
    campaign = factory_campaign(c, p)
    add_leads(c, campaign, 20)
    from drumbeat.services import campaigns as svc

    svc.start(c, p, campaign)
    drain(c)
    assert sent(c) == 12
    assert svc.get_campaign(c, p, campaign)["next_send_reason"] == "integration_cap"
