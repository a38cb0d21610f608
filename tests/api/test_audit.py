"""The audit log over HTTP (API.md v1.1, Consent): who created, changed or deleted what,
and every campaign action, newest first; never a secret value."""

from __future__ import annotations

import pytest

from drumbeat.services.workspaces import init_workspace
from tests.api.test_campaigns import API, act, create_campaign, create_sandbox, enroll, fields_of
from tests.api.test_integrations import APP_SECRET, TOKEN, WHATSAPP
from tests.api.test_template_catalogue import CATALOGUE, synced  # noqa: F401 - fixture
from tests.api.test_template_catalogue import TOKEN as CATALOGUE_TOKEN


def audit(client, headers, **params) -> dict:
    response = client.get(f"{API}/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def entries(client, headers, **params) -> list[dict]:
    return audit(client, headers, limit=500, **params)["items"]


def token_id_of(client, headers) -> str:
    """The id of the caller's token, as the audit log names it (its own entries say)."""
    created = [e for e in entries(client, headers, object_type="token")]
    return created[-1]["object_id"]


def add_user(client, headers, email: str, role: str) -> dict:
    response = client.post(f"{API}/users", json={"email": email, "role": role}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_new_workspace_starts_with_its_creation_its_owner_and_the_owners_token(client, owner):
    items = entries(client, owner["headers"])

    assert [(e["action"], e["object_type"]) for e in items] == [
        ("created", "token"), ("created", "user"), ("created", "workspace")]
    assert all(e["actor"] == {"type": "system", "id": "init_workspace", "user_id": None} for e in items)
    assert items[1]["object_id"] == owner["user_id"]
    assert items[1]["details"] == {"email": "owner@acme.test", "role": "owner"}


def test_a_credential_change_names_the_key_and_never_its_value(client, owner):
    h = owner["headers"]
    integration = client.post(f"{API}/integrations", json=WHATSAPP, headers=h).json()
    rotated = "EAAG-the-new-secret-c0ffee"
    response = client.patch(f"{API}/integrations/{integration['id']}",
                            json={"credentials": {"access_token": rotated}, "label": "Acme WA"}, headers=h)
    assert response.status_code == 200, response.text

    page = client.get(f"{API}/audit", params={"object_type": "integration"}, headers=h)
    changed, created = page.json()["items"]

    for secret in (TOKEN, APP_SECRET, rotated, TOKEN[-4:] + "x"):
        assert secret not in page.text
    assert (created["action"], created["object_id"]) == ("created", integration["id"])
    assert created["details"]["credentials"] == ["access_token", "app_secret"]
    assert changed["action"] == "updated"
    assert changed["details"]["credentials"] == ["access_token"]
    assert changed["details"]["changes"] == {"label": {"from": "Main number", "to": "Acme WA"}}
    token = token_id_of(client, h)
    assert changed["actor"] == {"type": "token", "id": token, "user_id": owner["user_id"]}


def test_a_patch_that_changes_nothing_records_nothing(client, owner):
    h = owner["headers"]
    integration = client.post(f"{API}/integrations", json=WHATSAPP, headers=h).json()
    before = len(entries(client, h))

    same = client.patch(f"{API}/integrations/{integration['id']}",
                        json={"label": "Main number", "credentials": {"access_token": TOKEN}}, headers=h)

    assert same.status_code == 200
    assert len(entries(client, h)) == before


def test_a_refused_change_records_nothing(client, owner):
    h = owner["headers"]
    integration = client.post(f"{API}/integrations", json=WHATSAPP, headers=h).json()
    before = entries(client, h)

    refused = client.patch(f"{API}/integrations/{integration['id']}",
                           json={"label": "Gone", "credentials": {"access_token": None}}, headers=h)
    bad_campaign = client.post(f"{API}/campaigns", json={"name": "x", "steps": []}, headers=h)
    twice = [client.post(f"{API}/users", json={"email": "ops@acme.test", "role": "operator"}, headers=h)
             for _ in range(2)]

    assert fields_of(refused) == ["credentials.access_token"]
    assert bad_campaign.status_code == 422
    assert [r.status_code for r in twice] == [201, 422]
    after = entries(client, h)
    assert [(e["action"], e["object_type"]) for e in after[:-len(before)]] == [("created", "token"),
                                                                                ("created", "user")]


def test_a_refused_campaign_action_records_nothing(client, ctx, owner):
    h = owner["headers"]
    campaign = create_campaign(client, h, name="Spring")
    enroll(ctx, campaign["id"])  # no integration: the key_pool gate is closed
    before = entries(client, h)

    refused = act(client, h, campaign["id"], "start")
    wrong_name = act(client, h, campaign["id"], "cancel", {"confirm": "Autumn"})

    assert (refused.status_code, wrong_name.status_code) == (409, 409)  # resume_blocked, confirmation_required
    assert entries(client, h) == before


def test_users_webhooks_suppressions_and_the_subscription_are_recorded_with_their_actor(client, owner):
    h = owner["headers"]
    ops = add_user(client, h, "ops@acme.test", "operator")
    ops_h = {"Authorization": f"Bearer {ops['token']}"}
    hook = client.post(f"{API}/webhooks", json={"url": "https://hooks.example/drumbeat",
                                                "secret": "whsec-super-secret-value",
                                                "events": ["campaign.paused"]}, headers=h)
    suppressed = client.post(f"{API}/suppressions", json={"phone": "+4915112345678"}, headers=ops_h)
    again = client.post(f"{API}/suppressions", json={"phone": "+4915112345678"}, headers=ops_h)
    canceled = client.put(f"{API}/workspace/subscription", json={"status": "canceled"}, headers=h)
    assert (hook.status_code, suppressed.status_code, again.status_code, canceled.status_code) == (201, 201, 201, 200)

    page = client.get(f"{API}/audit", params={"limit": 500}, headers=h)
    items = page.json()["items"]

    assert "whsec-super-secret-value" not in page.text
    newest = [(e["action"], e["object_type"]) for e in items[:5]]
    assert newest == [("updated", "workspace"), ("created", "suppression"), ("created", "webhook"),
                      ("created", "token"), ("created", "user")]
    workspace, suppression, webhook, token, user = items[:5]
    assert workspace["details"] == {"changes": {"subscription_status": {"from": "active", "to": "canceled"}}}
    assert suppression["details"] == {"phone": "+4915112345678", "reason": "manual"}
    assert suppression["actor"]["user_id"] == ops["id"] and suppression["actor"]["type"] == "token"
    assert webhook["details"] == {"url": "https://hooks.example/drumbeat", "events": ["campaign.paused"]}
    assert webhook["object_id"] == hook.json()["id"]
    assert (user["object_id"], user["details"]) == (ops["id"], {"email": "ops@acme.test", "role": "operator"})
    assert token["details"]["user_id"] == ops["id"]
    assert ops["token"] not in page.text


def test_workspace_settings_changes_are_recorded_field_by_field_and_a_conflict_records_nothing(client, owner):
    h = owner["headers"]
    first = client.patch(f"{API}/workspace", json={"opt_out_words": ["Halt"], "contact_cap": {"max": 3, "days": 30}},
                         headers=h)
    same = client.patch(f"{API}/workspace", json={"opt_out_words": ["Halt"]}, headers=h)
    conflict = client.patch(f"{API}/workspace", json={"opt_in_words": ["halt"]}, headers=h)
    assert (first.status_code, same.status_code, conflict.status_code) == (200, 200, 422)

    updates = [e for e in entries(client, h, object_type="workspace") if e["action"] == "updated"]

    assert len(updates) == 1
    assert updates[0]["details"] == {"changes": {"opt_out_words": {"from": [], "to": ["Halt"]},
                                                 "contact_cap": {"from": None, "to": {"max": 3, "days": 30}}}}


def test_a_stop_suppression_and_its_lifting_by_start_are_the_systems(client, ctx, owner):
    from datetime import UTC, datetime

    from drumbeat.services.suppressions import lift_stop_keyword, suppress

    now = datetime.now(UTC)
    with ctx.db.begin() as conn:
        row, _ = suppress(conn, owner["workspace_id"], phone="+4915112345678", reason="stop_keyword",
                          source={"channel": "sms"}, now=now)
    with ctx.db.begin() as conn:
        assert lift_stop_keyword(conn, owner["workspace_id"], phone="+4915112345678", now=now)

    lifted, added = entries(client, owner["headers"], object_type="suppression")
    assert (added["action"], added["object_id"], added["actor"]["type"], added["actor"]["id"]) == (
        "created", str(row["id"]), "system", "stop_keyword")
    assert added["details"] == {"phone": "+4915112345678", "reason": "stop_keyword", "source": {"channel": "sms"}}
    assert (lifted["action"], lifted["object_id"], lifted["actor"]["id"]) == ("deleted", str(row["id"]), "opt_in")
    assert lifted["details"]["opted_in"] is True


def test_every_campaign_action_is_recorded_once_with_who_did_it(client, ctx, owner):
    h = owner["headers"]
    create_sandbox(client, h)
    campaign = create_campaign(client, h, name="Spring")
    enroll(ctx, campaign["id"])
    for action, body in (("start", None), ("pause", None), ("resume", None), ("cancel", {"confirm": "Spring"})):
        assert act(client, h, campaign["id"], action, body).status_code == 200

    items = entries(client, h, object_type="campaign")

    assert [e["action"] for e in items] == ["leads_canceled", "cancel", "resume", "pause", "start", "create"]
    assert {e["object_id"] for e in items} == {campaign["id"]}
    assert {e["actor"]["user_id"] for e in items} == {owner["user_id"]}
    cancel, pause = items[1], items[3]
    assert (cancel["details"]["from"], cancel["details"]["to"]) == ("sending", "canceled")
    assert pause["details"]["reason"] == "manual"


def test_an_auto_pause_is_recorded_as_the_systems(client, ctx, owner):
    h = owner["headers"]
    sms = create_sandbox(client, h)
    campaign = create_campaign(client, h, name="Spring")
    enroll(ctx, campaign["id"])
    assert act(client, h, campaign["id"], "start").status_code == 200

    response = client.post(f"{API}/integrations/{sms['id']}/health", json={"event": "disconnected"}, headers=h)
    assert response.status_code == 200

    auto_pause, held, health = entries(client, h)[:3]
    assert (health["object_type"], health["details"]["changes"]) == (
        "integration", {"health": {"from": "active", "to": "disconnected"}})
    assert health["actor"]["type"] == "token"
    assert (held["action"], held["details"]["channel"], held["details"]["reason"]) == (
        "hold_placed", "sms", "account_disconnected")
    assert (auto_pause["action"], auto_pause["details"]["reason"]) == ("auto_pause", "account_disconnected")
    assert auto_pause["actor"] == {"type": "system", "id": "health:disconnected", "user_id": None}


def test_a_template_sync_is_recorded_on_its_integration_with_the_count(client, owner, synced):  # noqa: F811
    page = client.get(f"{API}/audit", params={"object_type": "integration"}, headers=owner["headers"])

    newest = page.json()["items"][0]
    assert (newest["action"], newest["object_id"]) == ("updated", synced["id"])
    assert newest["details"] == {"label": "Main number", "templates_synced": len(CATALOGUE)}
    assert CATALOGUE_TOKEN not in page.text


def test_a_subscription_stop_and_the_sweepers_resume_name_the_owner_and_the_system(client, ctx, owner):
    from drumbeat.engine.sweeper import Sweeper

    h = owner["headers"]
    create_sandbox(client, h)
    campaign = create_campaign(client, h, name="Spring")
    enroll(ctx, campaign["id"])
    assert act(client, h, campaign["id"], "start").status_code == 200
    start_id = entries(client, h)[0]["id"]
    client.put(f"{API}/workspace/subscription", json={"status": "canceled"}, headers=h)
    client.put(f"{API}/workspace/subscription", json={"status": "active"}, headers=h)
    Sweeper(ctx).sweep_once()

    since_start = [e for e in entries(client, h) if int(e["id"]) > int(start_id)]

    said = [(e["action"], e["object_type"], e["actor"]["type"], e["actor"]["id"]) for e in since_start]
    token = token_id_of(client, h)
    assert said == [
        ("hold_lifted", "campaign", "system", "sweeper"),
        ("resume", "campaign", "system", "sweeper"),
        ("updated", "workspace", "token", token),
        ("auto_pause", "campaign", "system", "subscription_canceled"),
        ("hold_placed", "campaign", "system", "subscription_canceled"),
        ("updated", "workspace", "token", token),
    ]


def test_another_workspaces_entries_never_appear_and_its_users_are_not_a_filter(client, ctx, owner):
    rival = init_workspace(ctx, "Rival", "boss@rival.test")
    rival_h = {"Authorization": f"Bearer {rival['token']}"}
    create_sandbox(client, rival_h)
    create_campaign(client, rival_h)

    mine = entries(client, owner["headers"])
    theirs = entries(client, rival_h)

    assert {e["object_id"] for e in mine}.isdisjoint({e["object_id"] for e in theirs})
    assert {e["object_type"] for e in mine} == {"workspace", "user", "token"}
    unknown = client.get(f"{API}/audit", params={"actor": rival["user_id"]}, headers=owner["headers"])
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")


def test_pages_walk_every_entry_newest_first_without_repeats(client, owner):
    h = owner["headers"]
    for n in range(5):
        create_sandbox(client, h, label=f"sandbox {n}")
    everything = entries(client, h)

    seen, cursor = [], None
    while True:
        page = audit(client, h, limit=3, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 3
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == everything
    assert len(seen) == 8
    assert [int(e["id"]) for e in seen] == sorted((int(e["id"]) for e in seen), reverse=True)
    assert [e["details"].get("label") for e in seen[:5]] == [f"sandbox {n}" for n in range(4, -1, -1)]


def test_filters_by_object_type_and_by_user(client, owner):
    h = owner["headers"]
    ops = add_user(client, h, "ops@acme.test", "operator")
    ops_h = {"Authorization": f"Bearer {ops['token']}"}
    create_sandbox(client, h)
    create_campaign(client, ops_h)

    by_ops = entries(client, h, actor=ops["id"])
    integrations = entries(client, h, object_type="integration")

    assert [(e["action"], e["object_type"]) for e in by_ops] == [("create", "campaign")]
    assert [e["object_type"] for e in integrations] == ["integration"]
    assert entries(client, h, actor=ops["id"], object_type="integration") == []


@pytest.mark.parametrize(("params", "field"), [
    ({"object_type": "lead"}, "object_type"),
    ({"cursor": "abc"}, "cursor"),
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
    ({"actor": "no such user"}, "actor"),
    ({"actor": "x" * 65}, "actor"),
    ({"actor": "{"}, "actor"),
])
def test_a_bad_filter_is_a_422_naming_it(client, owner, params, field):
    assert fields_of(client.get(f"{API}/audit", params=params, headers=owner["headers"])) == [f"query.{field}"]


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_only_the_owner_reads_the_audit_log(client, owner, role):
    user = add_user(client, owner["headers"], f"{role}@acme.test", role)

    response = client.get(f"{API}/audit", headers={"Authorization": f"Bearer {user['token']}"})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
