"""Integrations over HTTP: per-provider checks, masking, rotation, disabling, health events."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from drumbeat.store.tables import integrations
from tests.api.test_campaigns import API, create_campaign, create_sandbox, enroll, fields_of

TOKEN = "EAAG-very-secret-token-f00d"
APP_SECRET = "meta-app-secret-beef"
WHATSAPP = {"channel": "whatsapp", "provider": "whatsapp_cloud", "label": "Main number",
            "credentials": {"access_token": TOKEN, "app_secret": APP_SECRET},
            "config": {"phone_number_id": "1234567890", "base_url": "http://127.0.0.1:9/v19.0"},
            "daily_cap": 1000}


def create(client, headers, body: dict):
    return client.post(f"{API}/integrations", json=body, headers=headers)


def patch(client, headers, integration_id: str, body: dict):
    return client.patch(f"{API}/integrations/{integration_id}", json=body, headers=headers)


def health(client, headers, integration_id: str, event: str):
    return client.post(f"{API}/integrations/{integration_id}/health", json={"event": event}, headers=headers)


def test_a_new_integration_is_active_with_its_credentials_masked(client, owner):
    response = create(client, owner["headers"], WHATSAPP)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["state"] == "active" and body["enabled"] is True
    assert {k: body[k] for k in ("channel", "provider", "label", "config", "daily_cap")} == \
        {k: WHATSAPP[k] for k in ("channel", "provider", "label", "config", "daily_cap")}
    assert body["credentials"] == {"access_token": "****f00d", "app_secret": "****beef"}
    assert body["created_at"].endswith("+00:00")


def test_the_secret_never_appears_in_any_response_nor_in_the_database_row(client, ctx, owner):
    h = owner["headers"]
    integration_id = create(client, h, WHATSAPP).json()["id"]
    responses = [
        client.get(f"{API}/integrations", headers=h),
        client.get(f"{API}/integrations/{integration_id}", headers=h),
        patch(client, h, integration_id, {"label": "Renamed"}),
        health(client, h, integration_id, "disconnected"),
    ]

    for response in responses:
        assert response.status_code == 200
        assert TOKEN not in response.text and APP_SECRET not in response.text
        assert "very-secret" not in response.text
    with ctx.db.begin() as conn:
        stored = conn.execute(select(integrations.c.credentials_encrypted)).scalar_one()
    assert TOKEN not in stored
    assert ctx.box.open(stored) == WHATSAPP["credentials"]


def test_a_short_secret_is_masked_entirely(client, owner):
    body = create(client, owner["headers"], {**WHATSAPP, "credentials": {"access_token": "abc123"}}).json()

    assert body["credentials"] == {"access_token": "****"}


def test_a_sandbox_integration_takes_no_credentials_and_fills_its_config(client, owner):
    body = create_sandbox(client, owner["headers"], channel="voice")

    assert body["credentials"] == {}
    assert body["config"] == {"latency_ms": 0}
    scripted = create_sandbox(client, owner["headers"], config={"fail": "key", "fail_after": 3, "latency_ms": 20})
    assert scripted["config"] == {"fail": "key", "fail_after": 3, "latency_ms": 20}


@pytest.mark.parametrize(("channel", "provider"), [
    ("whatsapp", "twilio"), ("sms", "whatsapp_cloud"), ("email", "unipile"), ("linkedin", "smtp"),
])
def test_a_provider_that_does_not_serve_the_channel_is_refused(client, owner, channel, provider):
    response = create(client, owner["headers"], {**WHATSAPP, "channel": channel, "provider": provider})

    assert fields_of(response) == ["provider"]
    assert client.get(f"{API}/integrations", headers=owner["headers"]).json()["items"] == []


@pytest.mark.parametrize(("body", "fields"), [
    ({"channel": "sms", "provider": "twilio", "credentials": {"account_sid": "AC1"}, "config": {"from": "+1555"}},
     ["credentials.auth_token"]),
    ({"channel": "voice", "provider": "twilio", "credentials": {"account_sid": "AC1", "auth_token": "t"},
      "config": {}}, ["config.from"]),
    ({"channel": "email", "provider": "smtp", "credentials": {"username": "u", "password": "p"},
      "config": {"host": "mail", "port": 70000, "from": "a@b.test"}}, ["config.port"]),
    ({"channel": "linkedin", "provider": "unipile", "credentials": {"api_key": "k"},
      "config": {"account_id": "a", "base_url": "ftp://x"}}, ["config.base_url"]),
    ({"channel": "whatsapp", "provider": "whatsapp_cloud", "credentials": {"acess_token": "typo"},
      "config": {"phone_number_id": "1"}}, ["credentials.access_token", "credentials.acess_token"]),
    ({"channel": "sms", "provider": "sandbox", "credentials": {"key": "x"}}, ["credentials.key"]),
    ({"channel": "sms", "provider": "sandbox", "config": {"fail": "sometimes"}}, ["config.fail"]),
    ({"channel": "sms", "provider": "sandbox", "config": {"fail_after": -1}}, ["config.fail_after"]),
    ({"channel": "sms", "provider": "sandbox", "config": {"latency_ms": 10**12}}, ["config.latency_ms"]),
    ({"channel": "sms", "provider": "sandbox", "config": {"latency_ms": "slow"}}, ["config.latency_ms"]),
    ({"channel": "sms", "provider": "sandbox", "daily_cap": 0}, ["daily_cap"]),
    ({"channel": "fax", "provider": "sandbox"}, ["channel"]),
    ({"channel": "sms", "provider": "carrier-pigeon"}, ["provider"]),
    ({"channel": "sms", "provider": "sandbox", "label": ""}, ["label"]),
    ({"channel": "sms", "provider": "sandbox", "owner": "me"}, ["owner"]),
])
def test_credentials_and_config_are_checked_per_provider(client, owner, body, fields):
    assert sorted(fields_of(create(client, owner["headers"], body))) == fields


def test_every_provider_of_the_contract_accepts_its_documented_shape(client, owner):
    bodies = [
        WHATSAPP,
        {"channel": "sms", "provider": "twilio", "credentials": {"account_sid": "AC123", "auth_token": "tok"},
         "config": {"from": "+15550001111", "base_url": "http://localhost:9"}},
        {"channel": "voice", "provider": "twilio", "credentials": {"account_sid": "AC123", "auth_token": "tok"},
         "config": {"from": "+15550001111"}},
        {"channel": "email", "provider": "smtp",
         "credentials": {"username": "u", "password": "p", "inbound_secret": "s"},
         "config": {"host": "smtp.example.test", "port": 587, "from": "news@example.test", "starttls": True}},
        {"channel": "linkedin", "provider": "unipile", "credentials": {"api_key": "key"},
         "config": {"account_id": "acc", "base_url": "https://api.unipile.test"}},
    ]
    for body in bodies:
        response = create(client, owner["headers"], {"label": "x", **body})
        assert response.status_code == 201, response.text
        assert response.json()["config"] == body["config"]
        assert set(response.json()["credentials"]) == set(body["credentials"])


def test_rotating_one_key_keeps_the_others(client, ctx, owner):
    h = owner["headers"]
    integration_id = create(client, h, WHATSAPP).json()["id"]

    response = patch(client, h, integration_id, {"credentials": {"access_token": "EAAG-new-token-c0de"}})

    assert response.status_code == 200, response.text
    assert response.json()["credentials"] == {"access_token": "****c0de", "app_secret": "****beef"}
    with ctx.db.begin() as conn:
        stored = conn.execute(select(integrations.c.credentials_encrypted)).scalar_one()
    assert ctx.box.open(stored) == {"access_token": "EAAG-new-token-c0de", "app_secret": APP_SECRET}


def test_a_null_credential_removes_an_optional_key_but_not_a_required_one(client, owner):
    h = owner["headers"]
    integration_id = create(client, h, WHATSAPP).json()["id"]

    assert patch(client, h, integration_id, {"credentials": {"app_secret": None}}).json()["credentials"] == \
        {"access_token": "****f00d"}
    assert fields_of(patch(client, h, integration_id, {"credentials": {"access_token": None}})) == \
        ["credentials.access_token"]


def test_a_patched_config_replaces_the_stored_one_whole_so_a_key_left_out_is_gone(client, ctx, owner):
    h = owner["headers"]
    integration_id = create(client, h, {**WHATSAPP, "config": {**WHATSAPP["config"], "waba_id": "102290129340398"}}
                            ).json()["id"]

    response = patch(client, h, integration_id, {"config": {"phone_number_id": "999"}})

    assert response.status_code == 200, response.text
    assert response.json()["config"] == {"phone_number_id": "999"}
    assert response.json()["credentials"] == {"access_token": "****f00d", "app_secret": "****beef"}
    with ctx.db.begin() as conn:
        assert conn.execute(select(integrations.c.config)).scalar_one() == {"phone_number_id": "999"}


def test_patched_credentials_merge_key_by_key_given_replaces_null_removes_left_out_stays(client, ctx, owner):
    h = owner["headers"]
    body = {"channel": "email", "provider": "smtp", "label": "Mail",
            "credentials": {"username": "mailer-4444", "password": "old-pass-1111", "inbound_secret": "hook-2222"},
            "config": {"host": "smtp.example.com", "port": 587, "from": "a@example.com"}}
    integration_id = create(client, h, body).json()["id"]

    response = patch(client, h, integration_id, {"credentials": {"password": "new-pass-3333", "inbound_secret": None}})

    assert response.status_code == 200, response.text
    assert response.json()["credentials"] == {"username": "****4444", "password": "****3333"}
    assert response.json()["config"] == body["config"]  # config left out: unchanged
    with ctx.db.begin() as conn:
        stored = conn.execute(select(integrations.c.credentials_encrypted)).scalar_one()
    assert ctx.box.open(stored) == {"username": "mailer-4444", "password": "new-pass-3333"}


def test_removing_a_required_credential_is_a_422_naming_it_and_changes_nothing(client, ctx, owner):
    h = owner["headers"]
    integration_id = create(client, h, WHATSAPP).json()["id"]

    response = patch(client, h, integration_id, {"credentials": {"access_token": None, "app_secret": None},
                                                 "config": {"phone_number_id": "999"}})

    assert fields_of(response) == ["credentials.access_token"]
    assert "cannot be removed" in response.json()["error"]["details"]["fields"][0]["message"]
    stored = client.get(f"{API}/integrations/{integration_id}", headers=h).json()
    assert stored["credentials"] == {"access_token": "****f00d", "app_secret": "****beef"}
    assert stored["config"] == WHATSAPP["config"]


def test_a_patched_config_is_checked_as_on_create(client, owner):
    h = owner["headers"]
    integration_id = create(client, h, WHATSAPP).json()["id"]

    unknown = patch(client, h, integration_id, {"config": {"phone_number_id": "1", "acess_token": "x"}})
    missing = patch(client, h, integration_id, {"config": {"base_url": "http://127.0.0.1:9/v19.0"}})

    assert fields_of(unknown) == ["config.acess_token"]
    assert fields_of(missing) == ["config.phone_number_id"]
    assert client.get(f"{API}/integrations/{integration_id}", headers=h).json()["config"] == WHATSAPP["config"]


def test_a_patch_changes_label_config_and_cap_and_is_checked(client, owner):
    h = owner["headers"]
    integration = create_sandbox(client, h)

    body = patch(client, h, integration["id"], {"label": "Load test", "config": {"fail": "transient"},
                                                 "daily_cap": 50}).json()
    assert (body["label"], body["config"], body["daily_cap"]) == \
        ("Load test", {"fail": "transient", "latency_ms": 0}, 50)
    assert patch(client, h, integration["id"], {"daily_cap": None}).json()["daily_cap"] is None

    assert fields_of(patch(client, h, integration["id"], {"config": {"fail": "never"}})) == ["config.fail"]
    assert fields_of(patch(client, h, integration["id"], {"channel": "email"})) == ["channel"]
    assert fields_of(patch(client, h, integration["id"], {"label": None})) == ["label"]
    assert client.get(f"{API}/integrations/{integration['id']}", headers=h).json()["config"]["fail"] == "transient"


def test_disabling_shows_disabled_and_enabling_restores_the_health(client, owner):
    h = owner["headers"]
    integration = create_sandbox(client, h)

    assert patch(client, h, integration["id"], {"enabled": False}).json()["state"] == "disabled"
    assert health(client, h, integration["id"], "disconnected").json()["state"] == "disabled"
    assert patch(client, h, integration["id"], {"enabled": True}).json()["state"] == "disconnected"


def test_health_events_move_the_state(client, owner):
    h = owner["headers"]
    integration_id = create_sandbox(client, h)["id"]
    steps = [("disconnected", "disconnected"), ("reconnected", "active"), ("restricted", "restricted"),
             ("reconnected", "restricted"),  # a reconnect does not lift a restriction
             ("restriction_lifted", "active"), ("restriction_lifted", "active")]

    for event, state in steps:
        response = health(client, h, integration_id, event)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == state, event


def test_an_unknown_health_event_is_a_422(client, owner):
    integration_id = create_sandbox(client, owner["headers"])["id"]

    assert fields_of(health(client, owner["headers"], integration_id, "exploded")) == ["event"]


def test_a_disconnected_key_closes_the_key_pool_gate_until_it_reconnects(client, ctx, owner):
    h = owner["headers"]
    integration_id = create_sandbox(client, h)["id"]
    campaign = create_campaign(client, h)
    enroll(ctx, campaign["id"])
    health(client, h, integration_id, "disconnected")

    refused = client.post(f"{API}/campaigns/{campaign['id']}/start", headers=h)

    assert refused.status_code == 409
    gate = next(g for g in refused.json()["error"]["details"]["gates"] if g["gate"] == "key_pool")
    assert gate["ok"] is False and "disconnected" in gate["reason"]
    health(client, h, integration_id, "reconnected")
    assert client.post(f"{API}/campaigns/{campaign['id']}/start", headers=h).json()["status"] == "sending"


def test_the_list_holds_only_the_callers_integrations_and_filters_by_channel(client, ctx, owner):
    from drumbeat.services.workspaces import init_workspace

    other = init_workspace(ctx, "Rival", "boss@rival.test")
    create_sandbox(client, {"Authorization": f"Bearer {other['token']}"})
    sms = create_sandbox(client, owner["headers"], channel="sms")
    email = create_sandbox(client, owner["headers"], channel="email")

    everything = client.get(f"{API}/integrations", headers=owner["headers"]).json()
    only_email = client.get(f"{API}/integrations", params={"channel": "email"}, headers=owner["headers"]).json()

    assert [i["id"] for i in everything["items"]] == [sms["id"], email["id"]]
    assert everything["next_cursor"] is None
    assert [i["id"] for i in only_email["items"]] == [email["id"]]
