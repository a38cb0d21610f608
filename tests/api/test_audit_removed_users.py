"""Issue 23, on SQLite and PostgreSQL: a removed user's entries in the audit log still name
them by email, and the log can still be filtered by them (the log's own record of the user)."""

from __future__ import annotations

from drumbeat.services import access, audit
from drumbeat.services.context import Principal
from drumbeat.services.workspaces import create_user
from tests.api.test_campaigns import API
from tests.api.test_revocable_access import add_user


def test_a_removed_users_entries_still_name_them_and_filter_by_them(client, owner):
    ops = add_user(client, owner, "ops@acme.test", "operator")
    assert client.post(f"{API}/tokens", headers=ops["headers"]).status_code == 201
    assert client.delete(f"{API}/users/{ops['id']}", headers=owner["headers"]).status_code == 204
    theirs = client.get(f"{API}/audit", params={"actor": ops["id"]}, headers=owner["headers"])
    assert theirs.status_code == 200
    assert [(e["action"], e["object_type"]) for e in theirs.json()["items"]] == [("created", "token")]
    unknown = client.get(f"{API}/audit", params={"actor": "0" * 32}, headers=owner["headers"])
    assert unknown.status_code == 404


def test_the_dashboard_log_names_a_removed_user_by_email(ctx, owner):
    boss = Principal(owner["user_id"], owner["workspace_id"], "owner", "owner@acme.test")
    ops = create_user(ctx, boss, "ops@acme.test", "operator", None)
    access.create_token(ctx, Principal(ops["id"], owner["workspace_id"], "operator", "ops@acme.test"))
    access.remove_user(ctx, boss, ops["id"])
    texts = [e["text"] for e in audit.described(ctx, boss, audit.list_events(ctx, boss)["items"])]
    assert "ops@acme.test created an API token of ops@acme.test" in texts
    assert [p for p in audit.people(ctx, boss) if p["removed"]] == [
        {"id": ops["id"], "email": "ops@acme.test", "removed": True}]
