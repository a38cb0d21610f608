"""Users and the workspace over HTTP: adding users, their tokens, the subscription."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from drumbeat.services.passwords import verify_password
from drumbeat.store.tables import users
from tests.api.test_campaigns import API, create_campaign, create_sandbox, enroll, fields_of


def add_user(client, headers, **body):
    return client.post(f"{API}/users", json={"email": "ops@acme.test", "role": "operator", **body}, headers=headers)


def test_the_owner_adds_a_user_whose_token_works_in_the_same_workspace(client, owner):
    response = add_user(client, owner["headers"])

    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == {"id", "email", "role", "token"}
    assert (user["email"], user["role"]) == ("ops@acme.test", "operator")
    workspace = client.get(f"{API}/workspace", headers={"Authorization": f"Bearer {user['token']}"})
    assert workspace.status_code == 200
    assert workspace.json()["id"] == owner["workspace_id"]


def test_a_password_is_stored_hashed_never_in_clear(client, ctx, owner):
    add_user(client, owner["headers"], password="correct horse battery")

    with ctx.db.begin() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.email == "ops@acme.test")).scalar_one()
    assert "correct horse" not in stored
    assert verify_password("correct horse battery", stored)


def test_the_same_email_cannot_be_added_twice(client, owner):
    assert add_user(client, owner["headers"]).status_code == 201

    assert fields_of(add_user(client, owner["headers"], role="viewer")) == ["email"]


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "not-an-address"}, "email"),
    ({"email": "a@b@c.test"}, "email"),
    ({"role": "admin"}, "role"),
    ({"password": ""}, "password"),
    ({"nickname": "bob"}, "nickname"),
])
def test_a_bad_user_is_a_422_naming_the_field(client, owner, body, field):
    assert fields_of(add_user(client, owner["headers"], **body)) == [field]


def test_the_workspace_shows_its_name_and_subscription(client, owner):
    body = client.get(f"{API}/workspace", headers=owner["headers"]).json()

    assert {k: body[k] for k in ("id", "name", "subscription_status")} == {
        "id": owner["workspace_id"], "name": "Acme", "subscription_status": "active"}
    # Consent settings (API.md v1.1): none of its own until an owner sets them.
    assert body["opt_out_words"] == [] and body["opt_in_words"] == [] and body["contact_cap"] is None
    assert body["auto_replies"] == {"stop": None, "help": None}


def test_a_canceled_subscription_blocks_starting_and_renewing_reopens_it(client, ctx, owner):
    h = owner["headers"]
    create_sandbox(client, h)
    campaign = create_campaign(client, h)
    enroll(ctx, campaign["id"])

    canceled = client.put(f"{API}/workspace/subscription", json={"status": "canceled"}, headers=h)
    assert canceled.status_code == 200
    assert canceled.json()["subscription_status"] == "canceled"
    refused = client.post(f"{API}/campaigns/{campaign['id']}/start", headers=h)
    assert refused.status_code == 409
    gates = {g["gate"]: g["ok"] for g in refused.json()["error"]["details"]["gates"]}
    assert gates["subscription"] is False and gates["key_pool"] is True

    renewed = client.put(f"{API}/workspace/subscription", json={"status": "active"}, headers=h)
    assert renewed.json()["subscription_status"] == "active"
    assert client.post(f"{API}/campaigns/{campaign['id']}/start", headers=h).json()["status"] == "sending"


@pytest.mark.parametrize("body", [{"status": "paused"}, {}, {"status": "active", "plan": "gold"}])
def test_a_bad_subscription_status_is_a_422(client, owner, body):
    response = client.put(f"{API}/workspace/subscription", json=body, headers=owner["headers"])

    assert response.status_code == 422
    assert client.get(f"{API}/workspace", headers=owner["headers"]).json()["subscription_status"] == "active"
