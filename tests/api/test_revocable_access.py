"""Access that can be taken back (API.md v1.1, Trust without a person), on SQLite and
PostgreSQL: API tokens created (shown once), listed and revoked; users listed, re-roled
and removed, never the last owner; removing a user ends their tokens and dashboard
sessions; each change in the audit log; other workspaces' ids are 404; roles are checked."""

from __future__ import annotations

import dataclasses
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from drumbeat.app import create_app
from drumbeat.services.passwords import hash_password
from drumbeat.services.workspaces import init_workspace
from drumbeat.store.tables import tokens, web_sessions
from tests.api.test_campaigns import API
from tests.fakes.providers import _ThreadedUvicorn

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def add_user(client, owner, email: str, role: str, **body) -> dict:
    response = client.post(f"{API}/users", json={"email": email, "role": role, **body}, headers=owner["headers"])
    assert response.status_code == 201, response.text
    user = response.json()
    return {**user, "headers": bearer(user["token"])}


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def audit_texts(client, headers, object_type: str) -> list[dict]:
    response = client.get(f"{API}/audit", params={"object_type": object_type, "limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


# --- tokens ---------------------------------------------------------------------------------------

def test_a_revoked_token_answers_401_over_real_http_right_after(ctx, owner):
    served = _ThreadedUvicorn(create_app(ctx))
    served.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{served.port}", timeout=10) as http:
            created = http.post(f"{API}/tokens", headers=owner["headers"])
            assert created.status_code == 201, created.text
            assert set(created.json()) == {"id", "token"}
            token = created.json()
            assert http.get(f"{API}/workspace", headers=bearer(token["token"])).status_code == 200

            assert http.delete(f"{API}/tokens/{token['id']}", headers=owner["headers"]).status_code == 204
            refused = http.get(f"{API}/workspace", headers=bearer(token["token"]))
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
            assert http.get(f"{API}/workspace", headers=owner["headers"]).status_code == 200  # others unaffected
    finally:
        served.stop()


def test_a_token_is_shown_once_and_only_its_hash_is_kept(client, ctx, owner):
    token = client.post(f"{API}/tokens", headers=owner["headers"]).json()
    listed = client.get(f"{API}/tokens", headers=owner["headers"]).json()["items"]

    assert token["id"] in [t["id"] for t in listed]
    assert all(set(t) == {"id", "user_id", "created_at", "last_used_at"} for t in listed)
    assert token["token"] not in str(listed)
    with ctx.db.begin() as conn:
        stored = conn.execute(select(tokens.c.token_hash).where(tokens.c.id == token["id"])).scalar_one()
    assert stored != token["token"] and token["token"] not in stored


def test_everyone_manages_their_own_tokens_and_sees_only_theirs(client, owner):
    viewer = add_user(client, owner, "viewer@acme.test", "viewer")
    mine = client.post(f"{API}/tokens", json={}, headers=viewer["headers"])
    assert mine.status_code == 201

    listed = client.get(f"{API}/tokens", headers=viewer["headers"]).json()["items"]
    assert {t["user_id"] for t in listed} == {viewer["id"]} and len(listed) == 2  # the first one, and this
    assert client.delete(f"{API}/tokens/{mine.json()['id']}", headers=viewer["headers"]).status_code == 204
    assert client.get(f"{API}/workspace", headers=bearer(mine.json()["token"])).status_code == 401
    assert client.get(f"{API}/workspace", headers=viewer["headers"]).status_code == 200


def test_only_an_owner_manages_another_users_tokens(client, owner):
    operator = add_user(client, owner, "ops@acme.test", "operator")
    viewer = add_user(client, owner, "viewer@acme.test", "viewer")
    owners_token = client.get(f"{API}/tokens", headers=owner["headers"]).json()["items"][0]
    assert owners_token["user_id"] == owner["user_id"]

    for caller in (operator, viewer):
        assert error_of(client.post(f"{API}/tokens", json={"user_id": owner["user_id"]}, headers=caller["headers"]),
                        403)["code"] == "forbidden"
        assert error_of(client.delete(f"{API}/tokens/{owners_token['id']}", headers=caller["headers"]),
                        403)["code"] == "forbidden"
    assert client.get(f"{API}/workspace", headers=owner["headers"]).status_code == 200

    made = client.post(f"{API}/tokens", json={"user_id": viewer["id"]}, headers=owner["headers"])
    assert made.status_code == 201
    assert client.get(f"{API}/workspace", headers=bearer(made.json()["token"])).status_code == 200
    every = client.get(f"{API}/tokens", headers=owner["headers"]).json()["items"]
    assert {t["user_id"] for t in every} == {owner["user_id"], operator["id"], viewer["id"]}
    assert client.delete(f"{API}/tokens/{made.json()['id']}", headers=owner["headers"]).status_code == 204
    assert client.get(f"{API}/workspace", headers=bearer(made.json()["token"])).status_code == 401


def test_the_last_use_is_noted_at_most_once_a_minute(ctx, clock, owner):
    with TestClient(create_app(dataclasses.replace(ctx, clock=clock))) as client:
        token = client.post(f"{API}/tokens", headers=owner["headers"]).json()

        def last_used():
            items = client.get(f"{API}/tokens", headers=owner["headers"]).json()["items"]
            return next(t["last_used_at"] for t in items if t["id"] == token["id"])

        assert last_used() is None
        client.get(f"{API}/workspace", headers=bearer(token["token"]))
        first = clock.now
        assert last_used() == first.isoformat()
        clock.advance(seconds=59)
        client.get(f"{API}/workspace", headers=bearer(token["token"]))
        assert last_used() == first.isoformat()  # not written again within the minute
        clock.advance(seconds=1)
        client.get(f"{API}/workspace", headers=bearer(token["token"]))
        assert last_used() == clock.now.isoformat()


# --- users ----------------------------------------------------------------------------------------

def test_the_owner_lists_users_and_changes_a_role_which_counts_at_once(client, owner):
    operator = add_user(client, owner, "ops@acme.test", "operator")
    listed = client.get(f"{API}/users", headers=owner["headers"]).json()["items"]
    assert [(u["email"], u["role"]) for u in listed] == [("ops@acme.test", "operator"), ("owner@acme.test", "owner")]

    changed = client.patch(f"{API}/users/{operator['id']}", json={"role": "viewer"}, headers=owner["headers"])
    assert changed.status_code == 200
    assert changed.json() == {"id": operator["id"], "email": "ops@acme.test", "role": "viewer"}
    refused = client.post(f"{API}/integrations", json={"channel": "sms", "provider": "sandbox", "label": "k",
                                                        "credentials": {}, "config": {}}, headers=operator["headers"])
    assert refused.status_code == 403
    assert client.post(f"{API}/campaigns", json={"name": "x", "steps": []},
                       headers=operator["headers"]).status_code == 403  # an operator's action, now refused


def test_the_last_owner_can_be_neither_demoted_nor_removed(client, owner):
    alone = client.patch(f"{API}/users/{owner['user_id']}", json={"role": "operator"}, headers=owner["headers"])
    assert error_of(alone, 409) == {"code": "invalid_transition", "message": error_of(alone, 409)["message"],
                                    "details": {"from": "owner", "action": "change_role"}}
    gone = client.delete(f"{API}/users/{owner['user_id']}", headers=owner["headers"])
    assert error_of(gone, 409)["details"] == {"from": "owner", "action": "remove"}
    assert client.get(f"{API}/workspace", headers=owner["headers"]).status_code == 200  # still the owner

    second = add_user(client, owner, "boss@acme.test", "owner")
    assert client.patch(f"{API}/users/{owner['user_id']}", json={"role": "operator"},
                        headers=owner["headers"]).status_code == 200
    # Now `second` is the last owner.
    assert error_of(client.delete(f"{API}/users/{second['id']}", headers=second["headers"]), 409)[
        "code"] == "invalid_transition"
    assert client.patch(f"{API}/users/{second['id']}", json={"role": "owner"},
                        headers=second["headers"]).status_code == 200  # no change is no demotion


def test_removing_a_user_ends_their_tokens_and_dashboard_sessions(client, ctx, owner):
    victim = add_user(client, owner, "bo@acme.test", "operator", password=PASSWORD)
    extra = client.post(f"{API}/tokens", headers=victim["headers"]).json()
    with TestClient(create_app(ctx)) as browser:
        page = browser.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        signed_in = browser.post("/login", data={"csrf": csrf, "email": "bo@acme.test", "password": PASSWORD},
                                 follow_redirects=False)
        assert signed_in.status_code == 303
        assert browser.get("/campaigns").status_code == 200

        assert client.delete(f"{API}/users/{victim['id']}", headers=owner["headers"]).status_code == 204

        assert browser.get("/campaigns", follow_redirects=False).status_code == 303  # signed out
    for token in (victim["token"], extra["token"]):
        assert client.get(f"{API}/workspace", headers=bearer(token)).status_code == 401
    with ctx.db.begin() as conn:
        assert conn.execute(select(web_sessions)).first() is None
    assert [u["email"] for u in client.get(f"{API}/users", headers=owner["headers"]).json()["items"]] == [
        "owner@acme.test"]
    assert client.post(f"{API}/users", json={"email": "bo@acme.test", "role": "viewer"},
                       headers=owner["headers"]).status_code == 201  # the address may be added again


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_operators_and_viewers_may_not_manage_users(client, owner, role):
    caller = add_user(client, owner, f"{role}@acme.test", role)
    h = caller["headers"]
    assert error_of(client.get(f"{API}/users", headers=h), 403)["code"] == "forbidden"
    assert error_of(client.patch(f"{API}/users/{caller['id']}", json={"role": "owner"}, headers=h), 403)
    assert error_of(client.delete(f"{API}/users/{owner['user_id']}", headers=h), 403)
    assert error_of(client.post(f"{API}/users", json={"email": "x@acme.test", "role": "owner"}, headers=h), 403)
    assert [u["role"] for u in client.get(f"{API}/users", headers=owner["headers"]).json()["items"]
            if u["id"] == caller["id"]] == [role]


def test_another_workspaces_ids_are_not_found(client, ctx, owner):
    other = init_workspace(ctx, "Other", "owner@other.test", hash_password(PASSWORD))
    theirs = client.post(f"{API}/tokens", headers=bearer(other["token"])).json()
    h = owner["headers"]

    assert error_of(client.delete(f"{API}/tokens/{theirs['id']}", headers=h), 404)["code"] == "not_found"
    assert error_of(client.post(f"{API}/tokens", json={"user_id": other["user_id"]}, headers=h), 404)
    assert error_of(client.patch(f"{API}/users/{other['user_id']}", json={"role": "viewer"}, headers=h), 404)
    assert error_of(client.delete(f"{API}/users/{other['user_id']}", headers=h), 404)
    assert error_of(client.delete(f"{API}/tokens/no-such-token", headers=h), 404)
    assert theirs["id"] not in str(client.get(f"{API}/tokens", headers=h).json())
    assert client.get(f"{API}/workspace", headers=bearer(theirs["token"])).status_code == 200  # untouched


def test_every_change_is_in_the_audit_log_in_words(client, owner):
    bo = add_user(client, owner, "bo@acme.test", "operator")
    made = client.post(f"{API}/tokens", json={"user_id": bo["id"]}, headers=owner["headers"]).json()
    client.delete(f"{API}/tokens/{made['id']}", headers=owner["headers"])
    client.patch(f"{API}/users/{bo['id']}", json={"role": "viewer"}, headers=owner["headers"])
    client.delete(f"{API}/users/{bo['id']}", headers=owner["headers"])

    token_entries = audit_texts(client, owner["headers"], "token")
    assert [(e["action"], e["object_id"]) for e in token_entries[:2]] == [("deleted", made["id"]),
                                                                         ("created", made["id"])]
    assert token_entries[0]["details"] == {"user_id": bo["id"], "user_email": "bo@acme.test"}
    assert all(made["token"] not in str(e) for e in token_entries)
    user_entries = audit_texts(client, owner["headers"], "user")
    assert [(e["action"], e["details"].get("changes")) for e in user_entries[:2]] == [
        ("deleted", None), ("updated", {"role": {"from": "operator", "to": "viewer"}})]
    assert user_entries[0]["details"]["tokens_revoked"] == 1  # the one made with the user

    from drumbeat.domain.audit import describe
    assert describe(token_entries[0], actor_email="owner@acme.test") == \
        "owner@acme.test (API token) revoked an API token of bo@acme.test"


# --- dashboard sessions and passwords ---------------------------------------------------------------

def sign_in(browser: TestClient, email: str, password: str = PASSWORD):
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text).group(1)
    return browser.post("/login", data={"csrf": csrf, "email": email, "password": password},
                        follow_redirects=False)


def test_signing_out_ends_the_session_on_the_server_so_a_copied_cookie_is_signed_out(client, ctx, owner):
    add_user(client, owner, "bo@acme.test", "operator", password=PASSWORD)
    app = create_app(ctx)
    with TestClient(app) as browser, TestClient(app) as thief:
        assert sign_in(browser, "bo@acme.test").status_code == 303
        page = browser.get("/campaigns")
        copied = browser.cookies.get("drumbeat_session")
        thief.cookies.set("drumbeat_session", copied)
        assert thief.get("/campaigns").status_code == 200  # the copy works while the session lives

        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        assert browser.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303

        assert thief.get("/campaigns", follow_redirects=False).status_code == 303  # to the sign-in page
        assert thief.get("/campaigns/abc/live.json").status_code == 401
    with ctx.db.begin() as conn:
        assert conn.execute(select(web_sessions)).first() is None


def test_a_session_row_holds_the_secrets_hash_never_the_cookie(client, ctx, owner):
    add_user(client, owner, "bo@acme.test", "viewer", password=PASSWORD)
    with TestClient(create_app(ctx)) as browser:
        sign_in(browser, "bo@acme.test")
        cookie = browser.cookies.get("drumbeat_session")
    with ctx.db.begin() as conn:
        rows = conn.execute(select(web_sessions)).mappings().all()
    assert len(rows) == 1 and len(rows[0]["secret_hash"]) == 64
    assert rows[0]["secret_hash"] not in cookie
    assert all(str(v) not in cookie for v in rows[0].values() if v is not None)  # neither the id nor the user


def test_a_user_with_an_old_scrypt_hash_signs_in_and_their_hash_becomes_argon2id(client, ctx, owner):
    from drumbeat.services.passwords import scrypt_hash
    from drumbeat.store.tables import users

    bo = add_user(client, owner, "bo@acme.test", "operator")
    with ctx.db.begin() as conn:
        conn.execute(users.update().where(users.c.id == bo["id"])
                     .values(password_hash=scrypt_hash(PASSWORD, b"salt-of-2025-ab")))
    with TestClient(create_app(ctx)) as browser:
        assert sign_in(browser, "bo@acme.test", "wrong").status_code == 401
        with ctx.db.begin() as conn:
            assert conn.execute(select(users.c.password_hash).where(users.c.id == bo["id"])).scalar_one() \
                .startswith("scrypt$")  # a wrong password changes nothing
        assert sign_in(browser, "bo@acme.test").status_code == 303
    with ctx.db.begin() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.id == bo["id"])).scalar_one()
    assert stored.startswith("$argon2id$")
    with TestClient(create_app(ctx)) as browser:  # and the new hash signs in
        assert sign_in(browser, "bo@acme.test").status_code == 303
        assert sign_in(browser, "bo@acme.test", "wrong").status_code == 401


def test_sign_in_throttling_holds_across_two_app_instances_sharing_the_database(db_url, secret_key, owner, client):
    """Two apps with their own engines, as two `drumbeat serve` processes: failures at one
    refuse the right password at the other (429 with Retry-After)."""
    from drumbeat.services.context import Context
    from drumbeat.store.db import make_engine
    from drumbeat.store.secrets import SecretBox

    add_user(client, owner, "bo@acme.test", "operator", password=PASSWORD)
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        first, second = (create_app(Context(db=e, box=SecretBox(secret_key))) for e in engines)
        with TestClient(first) as a, TestClient(second) as b:
            for i in range(5):
                assert sign_in(a if i % 2 else b, "bo@acme.test", "wrong").status_code == 401
            refused = sign_in(b, "bo@acme.test")
            assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 15 * 60
            assert sign_in(a, "bo@acme.test").status_code == 429
    finally:
        for e in engines:
            e.dispose()


def test_revoking_a_token_ends_the_dashboard_session_opened_with_it(client, ctx, owner):
    bo = add_user(client, owner, "bo@acme.test", "operator", password=PASSWORD)
    pasted = client.post(f"{API}/tokens", headers=bo["headers"]).json()
    app = create_app(ctx)
    with TestClient(app) as by_token, TestClient(app) as by_password:
        csrf = re.search(r'name="csrf" value="([^"]+)"', by_token.get("/login").text).group(1)
        assert by_token.post("/login", data={"csrf": csrf, "token": pasted["token"]},
                             follow_redirects=False).status_code == 303
        assert sign_in(by_password, "bo@acme.test").status_code == 303

        assert client.delete(f"{API}/tokens/{pasted['id']}", headers=bo["headers"]).status_code == 204

        assert by_token.get("/campaigns", follow_redirects=False).status_code == 303
        assert by_password.get("/campaigns").status_code == 200  # the password's session is another
