"""Who may call what: every route of users/workspace, integrations and campaigns, checked for
a missing or bad token, a role that is too low, and another workspace's ids."""

from __future__ import annotations

import json

import pytest

from drumbeat.services.workspaces import init_workspace
from tests.api.test_campaigns import API, SMS_STEP, create_campaign, create_sandbox, future

VIEWER, OPERATOR, OWNER = "viewer", "operator", "owner"

# (method, path, body, the lowest role allowed); {cid}, {iid}, {xid} (an import), {uid} (a user
# of workspace A, not one of the callers) and {tid} (that user's token) are filled per test.
# Tokens: anyone manages their own; the table's rows manage another user's (owner).
ROUTES = [
    ("POST", "/users", {"email": "new@acme.test", "role": "viewer"}, OWNER),
    ("GET", "/users", None, OWNER),
    ("POST", "/tokens", {"user_id": "{uid}"}, OWNER),
    ("GET", "/tokens", None, VIEWER),
    ("DELETE", "/tokens/{tid}", None, OWNER),
    ("PATCH", "/users/{uid}", {"role": "operator"}, OWNER),
    ("DELETE", "/users/{uid}", None, OWNER),
    ("GET", "/workspace", None, VIEWER),
    ("PUT", "/workspace/subscription", {"status": "active"}, OWNER),
    ("PATCH", "/workspace", {"opt_out_words": ["halt"]}, OWNER),
    ("POST", "/integrations", {"channel": "email", "provider": "sandbox", "label": "x"}, OWNER),
    ("GET", "/integrations", None, VIEWER),
    ("GET", "/integrations/{iid}", None, VIEWER),
    ("PATCH", "/integrations/{iid}", {"label": "renamed"}, OWNER),
    ("POST", "/integrations/{iid}/health", {"event": "reconnected"}, OPERATOR),
    ("POST", "/integrations/{iid}/test", None, OPERATOR),
    ("POST", "/integrations/{iid}/templates/sync", None, OPERATOR),
    ("GET", "/integrations/{iid}/templates", None, VIEWER),
    ("POST", "/campaigns", {"name": "New", "steps": [SMS_STEP]}, OPERATOR),
    ("GET", "/campaigns", None, VIEWER),
    ("GET", "/campaigns/{cid}", None, VIEWER),
    ("PATCH", "/campaigns/{cid}", {"name": "Renamed"}, OPERATOR),
    ("GET", "/campaigns/{cid}/timeline", None, VIEWER),
    ("POST", "/campaigns/{cid}/schedule", {"start_at": future()}, OPERATOR),
    ("POST", "/campaigns/{cid}/unschedule", None, OPERATOR),
    ("POST", "/campaigns/{cid}/start", None, OPERATOR),
    ("POST", "/campaigns/{cid}/pause", None, OPERATOR),
    ("POST", "/campaigns/{cid}/resume", None, OPERATOR),
    ("POST", "/campaigns/{cid}/cancel", {"confirm": "Spring promo"}, OPERATOR),
    ("POST", "/campaigns/{cid}/duplicate", {"include_leads": False}, OPERATOR),
    ("GET", "/campaigns/{cid}/preview", None, VIEWER),
    ("POST", "/campaigns/{cid}/test", {"step": 0, "to": {"phone": "+14155550100"}}, OPERATOR),
    ("GET", "/imports/{xid}/rejected.csv", None, VIEWER),
]
WITH_IDS = [r for r in ROUTES if "{" in r[1]]
RANK = {VIEWER: 0, OPERATOR: 1, OWNER: 2}
# Routes other engineers own, under the same prefixes.
NOT_OURS = ("/campaigns/{campaign_id}/leads",)


@pytest.fixture
def world(client, ctx, owner):
    """Workspace A with a user of each role, a campaign and an integration; workspace B's owner."""
    def user(role):
        response = client.post(f"{API}/users", json={"email": f"{role}@acme.test", "role": role},
                               headers=owner["headers"])
        return {"Authorization": f"Bearer {response.json()['token']}"}

    other = init_workspace(ctx, "Rival", "boss@rival.test")
    target = client.post(f"{API}/users", json={"email": "target@acme.test", "role": "viewer"},
                         headers=owner["headers"]).json()
    target_token = client.get(f"{API}/tokens", headers={"Authorization": f"Bearer {target['token']}"}).json()
    cid = create_campaign(client, owner["headers"])["id"]
    imported = client.post(f"{API}/campaigns/{cid}/leads/import", content=b"phone\nbad\n",
                           headers={**owner["headers"], "Content-Type": "text/csv"})
    return {
        OWNER: owner["headers"], OPERATOR: user(OPERATOR), VIEWER: user(VIEWER),
        "other": {"Authorization": f"Bearer {other['token']}"},
        "cid": cid,
        "iid": create_sandbox(client, owner["headers"])["id"],
        "xid": imported.json()["import_id"],
        "uid": target["id"],
        "tid": target_token["items"][0]["id"],
    }


def fill(text: str, world) -> str:
    return text.format(cid=world["cid"], iid=world["iid"], xid=world["xid"], uid=world["uid"], tid=world["tid"])


def call(client, world, route, headers):
    method, path, body, _ = route
    body = json.loads(fill(json.dumps(body).replace("{", "{{").replace("}", "}}").replace("{{uid}}", "{uid}"),
                           world)) if body is not None else None
    return client.request(method, API + fill(path, world), json=body, headers=headers)


def failures(client, world, routes, headers, status, code) -> list[str]:
    """Every route that did not answer `status` with error `code` (all are tried, then reported)."""
    wrong = []
    for route in routes:
        response = call(client, world, route, headers)
        if response.status_code != status or response.json()["error"]["code"] != code:
            wrong.append(f"{route[0]} {route[1]}: {response.status_code} {response.text[:200]}")
    return wrong


def test_the_table_covers_every_route_of_users_integrations_and_campaigns(client):
    paths = client.get("/openapi.json").json()["paths"]
    served = {
        (method.upper(), path.removeprefix(API).replace("{campaign_id}", "{cid}").replace("{integration_id}", "{iid}")
         .replace("{import_id}", "{xid}").replace("{user_id}", "{uid}").replace("{token_id}", "{tid}"))
        for path, operations in paths.items()
        if path.startswith((f"{API}/users", f"{API}/workspace", f"{API}/integrations", f"{API}/campaigns",
                            f"{API}/imports", f"{API}/tokens"))
        and not path.removeprefix(API).startswith(NOT_OURS)
        for method in operations
    }

    assert served == {(method, path) for method, path, _, _ in ROUTES}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer dbt_not-a-real-token"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic b3duZXI6cGFzcw=="},
    {"Authorization": "dbt_token-without-a-scheme"},
], ids=["no token", "unknown token", "empty token", "basic auth", "no scheme"])
def test_without_a_valid_token_every_route_is_401(client, world, headers):
    assert failures(client, world, ROUTES, headers, 401, "unauthorized") == []


def test_a_viewer_may_read_but_every_write_is_403_and_changes_nothing(client, world):
    before = client.get(f"{API}/campaigns/{world['cid']}", headers=world[OWNER]).json()
    writes = [r for r in ROUTES if r[0] != "GET"]

    assert failures(client, world, writes, world[VIEWER], 403, "forbidden") == []
    assert client.get(f"{API}/campaigns/{world['cid']}", headers=world[OWNER]).json() == before
    assert len(client.get(f"{API}/campaigns", headers=world[OWNER]).json()["items"]) == 1


def test_an_operator_gets_403_on_every_owner_only_route(client, world):
    owner_only = [r for r in ROUTES if r[3] == OWNER]

    assert {r[1] for r in owner_only} == {"/users", "/workspace", "/workspace/subscription", "/integrations",
                                          "/integrations/{iid}", "/users/{uid}", "/tokens", "/tokens/{tid}"}
    assert failures(client, world, owner_only, world[OPERATOR], 403, "forbidden") == []
    integration = client.get(f"{API}/integrations/{world['iid']}", headers=world[OWNER]).json()
    assert integration["label"] == "sms sandbox"


def test_another_workspaces_ids_are_not_found_and_stay_untouched(client, world):
    before = client.get(f"{API}/campaigns/{world['cid']}", headers=world[OWNER]).json()

    assert failures(client, world, WITH_IDS, world["other"], 404, "not_found") == []
    assert client.get(f"{API}/campaigns/{world['cid']}", headers=world[OWNER]).json() == before
    assert client.get(f"{API}/integrations/{world['iid']}", headers=world[OWNER]).json()["label"] == "sms sandbox"
    assert client.get(f"{API}/campaigns", headers=world["other"]).json()["items"] == []
    assert client.get(f"{API}/integrations", headers=world["other"]).json()["items"] == []


def test_another_workspaces_id_answers_exactly_like_an_unknown_id(client, world):
    foreign = client.get(f"{API}/campaigns/{world['cid']}", headers=world["other"])
    unknown = client.get(f"{API}/campaigns/{'0' * 32}", headers=world["other"])

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert set(foreign.json()["error"]) == set(unknown.json()["error"])


@pytest.mark.parametrize("role", [VIEWER, OPERATOR, OWNER])
def test_each_role_may_call_every_route_its_rank_allows(client, world, role):
    allowed = [r for r in ROUTES if RANK[r[3]] <= RANK[role]]

    for route in allowed:
        response = call(client, world, route, world[role])
        # Refusals by state (409) are fine here; only the gatekeeping is under test. The
        # world's integration is a sandbox one, which has no template catalogue to sync (422).
        expected = (200, 201, 409, 422) if route[1].endswith("/templates/sync") else (200, 201, 204, 409)
        assert response.status_code in expected, f"{route[0]} {route[1]}: {response.text[:200]}"


RAW_BODIES = [b"{", b"null", b"[]", b'"text"', b"1e999", b'{"a": NaN}', b"\xff\xfe", b"[" * 50_000,
              b'{"name": "\\u0000"}', b'{"name": "\\ud800"}']
ODD_VALUES = [None, 10**40, -1, 1e308, True, [], {}, "\x00", "\ud800", "x" * 100_000, {"nested": {"x": [None]}}]


def test_no_malformed_or_odd_body_makes_any_route_answer_500(client, world):
    """Every write route, fed broken JSON and every top-level field replaced by odd values."""
    server_errors = []
    for route in [r for r in ROUTES if r[0] != "GET"]:
        method, path, body, _ = route
        url = API + fill(path, world)
        attempts = [{"content": raw} for raw in RAW_BODIES]
        # json.dumps escapes lone surrogates (ensure_ascii), which httpx's own encoder cannot send.
        attempts += [{"content": json.dumps({**(body or {}), key: value})}
                     for key in [*(body or {}), "extra"] for value in ODD_VALUES]
        for attempt in attempts:
            response = client.request(method, url, headers={**world[OWNER], "Content-Type": "application/json"},
                                      **attempt)
            if response.status_code >= 500 or response.status_code >= 400 and "error" not in response.json():
                server_errors.append(f"{method} {path} {str(attempt)[:80]}: {response.status_code}")

    assert server_errors == []
