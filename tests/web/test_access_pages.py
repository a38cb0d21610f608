"""Issue 23: the users and API tokens pages — the API's users and tokens routes in the browser,
through the API's own models and services: invite with a role and a password or a sign-in
link, change a role, remove (never the last owner; their sessions and tokens end at once);
tokens created (shown once), listed with their last use, revoked (401 from then on).
Server side here; Chromium in test_access_browser.py."""

from __future__ import annotations

import html
import re

import pytest

from drumbeat.services import access, audit, workspaces
from tests.web.conftest import login_csrf, page_csrf, sign_in


def form_nonce(page: str, action: str) -> str:
    """The form_nonce of the form posting to `action`."""
    form = re.search(rf'action="{re.escape(action)}".*?name="form_nonce" value="([^"]+)"', page, re.S)
    return form.group(1)


def post(client, page_path: str, action: str, data: dict, **kwargs):
    page = client.get(page_path).text
    return client.post(action, data={"csrf": page_csrf(client), "form_nonce": form_nonce(page, action), **data},
                       **kwargs)


def field_error(page: str, field: str) -> str:
    found = re.search(rf'data-testid="field-error" data-field="{re.escape(field)}">(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


def roles_of(ctx, owner) -> dict[str, str]:
    return {u["email"]: u["role"] for u in workspaces.list_users(ctx, owner)}


def api(client, token: str, path: str = "/api/v1/workspace"):
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def texts(ctx, owner) -> list[str]:
    return [e["text"] for e in audit.described(ctx, owner, audit.list_events(ctx, owner)["items"])]


# --- navigation and who sees what -------------------------------------------------------------

def test_the_owner_finds_users_and_tokens_in_the_navigation_others_find_tokens_only(ctx, client, users):
    sign_in(client, "owner@acme.test")
    nav = client.get("/campaigns").text.split('aria-label="Main"')[1].split("</nav>")[0]
    assert '<a href="/users">Users</a>' in nav and '<a href="/tokens">API tokens</a>' in nav
    for role in ("operator", "viewer"):
        sign_in(client, f"{role}@acme.test")
        nav = client.get("/campaigns").text.split('aria-label="Main"')[1].split("</nav>")[0]
        assert "/users" not in nav and '<a href="/tokens">API tokens</a>' in nav, role
        page = client.get("/users")
        assert page.status_code == 403 and "owner role" in page.text
        assert client.get(f"/users/{users['owner']['user_id']}/remove").status_code == 403


def test_the_users_page_lists_every_user_with_their_role_and_one_form_per_action(ctx, client, users):
    sign_in(client, "owner@acme.test")
    page = client.get("/users").text
    rows = re.findall(r'data-testid="user-row" data-email="([^"]+)"', page)
    assert rows == ["operator@acme.test", "owner@acme.test", "viewer@acme.test"]
    for role in ("operator", "viewer"):
        user_id = users[role]["id"]
        assert re.search(rf'id="f-role-{user_id}" name="role"[^>]*>.*?<option value="{role}" selected>', page, re.S)
        assert f'href="/users/{user_id}/remove"' in page and f'action="/users/{user_id}/role"' in page
    assert 'method="post" action="/users"' in page and 'name="sign_in" value="link" checked' in page


def test_a_viewer_reads_their_own_tokens_with_no_action_an_owner_reads_everyones(ctx, client, users):
    access.create_token(ctx, users["owner"]["principal"], users["operator"]["id"])
    sign_in(client, "viewer@acme.test")
    page = client.get("/tokens").text
    assert len(re.findall('data-testid="token-row"', page)) == 1  # the one made with the user
    assert 'action="/tokens"' not in page and "/revoke" not in page and 'data-testid="read-only"' in page
    sign_in(client, "operator@acme.test")
    page = client.get("/tokens").text
    assert len(re.findall('data-testid="token-row"', page)) == 2 and page.count("/revoke\"") == 2
    assert 'name="user_id"' not in page  # an operator makes tokens for themselves only
    sign_in(client, "owner@acme.test")
    page = client.get("/tokens").text
    assert len(re.findall('data-testid="token-row"', page)) == 4
    assert re.search(r'<option value="[0-9a-f]{32}" selected>owner@acme.test \(owner\) — you</option>', page)
    assert page.count("<td>operator@acme.test</td>") == 2


# --- invitations --------------------------------------------------------------------------------

def test_an_invitation_with_a_sign_in_link_shows_the_link_once_and_the_link_signs_in(ctx, client, users):
    owner = users["owner"]["principal"]
    sign_in(client, "owner@acme.test")
    answer = post(client, "/users", "/users", {"email": "ops2@acme.test", "role": "operator", "sign_in": "link"})
    assert answer.status_code == 200 and 'data-testid="toast">ops2@acme.test added as operator.<' in answer.text
    link = re.search(r'id="f-invite-link" value="([^"]+)"', answer.text).group(1)
    token = re.search(r'id="f-invite-token" value="([^"]+)"', answer.text).group(1)
    assert link == f"{ctx.public_url}/login#token={token}" and token.startswith("dbt_")
    assert roles_of(ctx, owner)["ops2@acme.test"] == "operator"
    assert api(client, token).status_code == 200
    assert token not in client.get("/users").text  # shown in the answer only
    assert "owner@acme.test added user ops2@acme.test as operator" in texts(ctx, owner)
    # The link's fragment never reaches the server: the sign-in page posts the token.
    client.cookies.clear()
    done = client.post("/login", data={"csrf": login_csrf(client), "token": token}, follow_redirects=False)
    assert done.status_code == 303
    assert "ops2@acme.test" in client.get("/campaigns").text


def test_an_invitation_with_a_password_lets_them_sign_in_with_it(ctx, client, users):
    owner = users["owner"]["principal"]
    sign_in(client, "owner@acme.test")
    answer = post(client, "/users", "/users", {"email": "read@acme.test", "role": "viewer", "sign_in": "password",
                                               "password": "a long pass phrase"})
    assert answer.status_code == 200 and 'id="f-invite-link"' not in answer.text
    assert "Tell them the password you chose" in answer.text
    assert roles_of(ctx, owner)["read@acme.test"] == "viewer"
    client.cookies.clear()
    sign_in(client, "read@acme.test", "a long pass phrase")
    assert client.get("/users").status_code == 403


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"email": "not an address", "role": "operator", "sign_in": "link"}, "email", "email"),
    ({"email": "", "role": "operator", "sign_in": "link"}, "email", "Required."),
    ({"email": "x@acme.test", "role": "admin", "sign_in": "link"}, "role", "Choose one of the roles."),
    ({"email": "x@acme.test", "role": "viewer", "sign_in": "password", "password": ""}, "password", "Required."),
    ({"email": "viewer@acme.test", "role": "viewer", "sign_in": "link"}, "email",
     "A user with this email already exists."),
])
def test_an_invalid_invitation_shows_the_error_beside_its_field_keeps_what_was_typed_and_adds_no_one(
        ctx, client, users, data, field, message):
    owner = users["owner"]["principal"]
    before = roles_of(ctx, owner)
    sign_in(client, "owner@acme.test")
    answer = post(client, "/users", "/users", data)
    assert answer.status_code == 422
    assert message in field_error(answer.text, field), (field, answer.text[-3000:])
    assert 'data-testid="error-summary"' in answer.text and f'href="#f-{field}"' in answer.text
    assert f'value="{html.escape(data["email"], quote=True)}"' in answer.text
    assert roles_of(ctx, owner) == before


def test_an_invitation_posted_twice_adds_one_user_and_shows_no_token_the_second_time(ctx, client, users):
    owner = users["owner"]["principal"]
    sign_in(client, "owner@acme.test")
    page = client.get("/users").text
    data = {"csrf": page_csrf(client), "form_nonce": form_nonce(page, "/users"), "email": "twice@acme.test",
            "role": "viewer", "sign_in": "link"}
    assert client.post("/users", data=data).status_code == 200
    again = client.post("/users", data=data, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/users?done=again"
    assert list(roles_of(ctx, owner)).count("twice@acme.test") == 1


# --- roles and removal ------------------------------------------------------------------------

def test_an_owner_changes_a_role_and_it_counts_from_the_users_next_request(ctx, client, users):
    owner = users["owner"]["principal"]
    operator_id = users["operator"]["id"]
    sign_in(client, "owner@acme.test")
    done = post(client, "/users", f"/users/{operator_id}/role", {"role": "viewer"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/users?done=role-changed"
    assert roles_of(ctx, owner)["operator@acme.test"] == "viewer"
    assert "owner@acme.test made user operator@acme.test viewer (was operator)" in texts(ctx, owner)
    assert api(client, users["operator"]["token"], "/api/v1/campaigns").status_code == 200
    headers = {"Authorization": f"Bearer {users['operator']['token']}"}
    refused = client.post("/api/v1/campaigns", json={}, headers=headers)
    assert refused.status_code == 403


def test_the_last_owner_can_be_neither_demoted_nor_removed_and_the_page_says_why(ctx, client, users):
    owner = users["owner"]["principal"]
    sign_in(client, "owner@acme.test")
    demote = post(client, "/users", f"/users/{owner.user_id}/role", {"role": "operator"})
    assert demote.status_code == 409
    assert "last owner" in field_error(demote.text, f"role-{owner.user_id}")
    confirm = client.get(f"/users/{owner.user_id}/remove").text
    action = f"/users/{owner.user_id}/remove"
    remove = client.post(action, data={"csrf": page_csrf(client), "form_nonce": form_nonce(confirm, action)})
    assert remove.status_code == 409 and "last owner and cannot be removed" in remove.text
    assert roles_of(ctx, owner)["owner@acme.test"] == "owner"
    assert client.get("/users").status_code == 200  # still signed in, still the owner


def test_removing_a_user_ends_their_dashboard_session_and_their_tokens_at_once(ctx, client, users):
    from fastapi.testclient import TestClient

    owner = users["owner"]["principal"]
    operator = users["operator"]
    extra = access.create_token(ctx, owner, operator["id"])["token"]
    with TestClient(client.app) as theirs:
        sign_in(theirs, "operator@acme.test")
        assert theirs.get("/campaigns").status_code == 200
        sign_in(client, "owner@acme.test")
        confirm = client.get(f"/users/{operator['id']}/remove")
        assert confirm.status_code == 200 and "their 2 API tokens stop working" in confirm.text
        done = client.post(f"/users/{operator['id']}/remove", follow_redirects=False, data={
            "csrf": page_csrf(client), "form_nonce": form_nonce(confirm.text, f"/users/{operator['id']}/remove")})
        assert done.status_code == 303 and done.headers["location"] == "/users?done=user-removed"
        gone = theirs.get("/campaigns", follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
    assert api(client, operator["token"]).status_code == 401 and api(client, extra).status_code == 401
    assert "operator@acme.test" not in roles_of(ctx, owner)
    assert ("owner@acme.test removed user operator@acme.test (2 API tokens revoked, signed out everywhere)"
            in texts(ctx, owner))


# --- tokens -------------------------------------------------------------------------------------

def test_a_token_made_on_the_page_is_shown_once_works_and_once_revoked_answers_401(ctx, client, users):
    owner = users["owner"]["principal"]
    sign_in(client, "operator@acme.test")
    made = post(client, "/tokens", "/tokens", {})
    assert made.status_code == 200 and "API token created: copy it now." in made.text
    token = re.search(r'id="f-new-token" value="([^"]+)"', made.text).group(1)
    assert api(client, token).status_code == 200
    listing = client.get("/tokens").text
    assert token not in listing
    token_id = next(t["id"] for t in access.list_tokens(ctx, users["operator"]["principal"])["items"]
                    if t["last_used_at"] is not None)
    row = listing.split(f'data-token-id="{token_id}"')[1].split("</tr>")[0]
    assert "never" not in row and "<time" in row.split('data-testid="last-used"')[1]
    confirm = client.get(f"/tokens/{token_id}/revoke")
    assert confirm.status_code == 200 and token_id[:8] in confirm.text
    done = client.post(f"/tokens/{token_id}/revoke", follow_redirects=False, data={
        "csrf": page_csrf(client), "form_nonce": form_nonce(confirm.text, f"/tokens/{token_id}/revoke")})
    assert done.status_code == 303 and done.headers["location"] == "/tokens?done=token-revoked"
    assert api(client, token).status_code == 401
    assert f'data-token-id="{token_id}"' not in client.get("/tokens").text
    assert "operator@acme.test revoked an API token of operator@acme.test" in texts(ctx, owner)


def test_an_owner_makes_a_token_for_another_user_and_revokes_anyones(ctx, client, users):
    viewer = users["viewer"]
    sign_in(client, "owner@acme.test")
    made = post(client, "/tokens", "/tokens", {"user_id": viewer["id"]})
    assert made.status_code == 200 and "New token for viewer@acme.test" in made.text
    token = re.search(r'id="f-new-token" value="([^"]+)"', made.text).group(1)
    assert access.authenticate(ctx, token).user_id == viewer["id"]
    unknown = post(client, "/tokens", "/tokens", {"user_id": "0" * 32})
    assert unknown.status_code == 422 and "Choose a user of the list." in unknown.text


def test_an_operator_cannot_see_or_revoke_another_users_token(ctx, client, users):
    owners_token = access.list_tokens(ctx, users["owner"]["principal"])["items"]
    theirs = next(t["id"] for t in owners_token if t["user_id"] == users["owner"]["principal"].user_id)
    sign_in(client, "operator@acme.test")
    assert client.get(f"/tokens/{theirs}/revoke").status_code == 404
    refused = client.post(f"/tokens/{theirs}/revoke", data={"csrf": page_csrf(client)})
    assert refused.status_code == 403
    assert api(client, users["owner"]["token"]).status_code == 200


def test_revoking_the_token_a_session_was_opened_with_ends_that_session(ctx, client, users):
    sign_in(client, "owner@acme.test")
    made = post(client, "/tokens", "/tokens", {})
    token = re.search(r'id="f-new-token" value="([^"]+)"', made.text).group(1)
    token_id = re.search(r'data-token-id="([0-9a-f]{32})">\s*<td><code>[0-9a-f]{8}</code> <span class="chip">new',
                         made.text).group(1)
    client.cookies.clear()
    client.post("/login", data={"csrf": login_csrf(client), "token": token})
    confirm = client.get(f"/tokens/{token_id}/revoke")
    done = client.post(f"/tokens/{token_id}/revoke", data={
        "csrf": page_csrf(client), "form_nonce": form_nonce(confirm.text, f"/tokens/{token_id}/revoke")},
        follow_redirects=False)
    assert done.status_code == 303
    after = client.get("/tokens", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/login")


def test_a_removed_users_entries_still_name_them_and_the_audit_log_filters_by_them(ctx, client, users):
    owner = users["owner"]["principal"]
    operator = users["operator"]
    access.create_token(ctx, operator["principal"])  # something they did, while they could
    access.remove_user(ctx, owner, operator["id"])
    sign_in(client, "owner@acme.test")
    page = client.get("/audit").text
    assert f'<option value="{operator["id"]}">operator@acme.test (removed)</option>' in page
    filtered = client.get(f"/audit?actor={operator['id']}").text
    entries = [html.unescape(t) for t in re.findall(
        r'data-testid="audit-entry"[^>]*><td>.*?</td>\s*<td>(.*?)</td></tr>', filtered, re.S)]
    assert entries == ["operator@acme.test created an API token of operator@acme.test"], entries
    assert f"user {operator['id']}" not in page
    answer = client.get(f"/api/v1/audit?actor={operator['id']}",
                        headers={"Authorization": f"Bearer {users['owner']['token']}"})
    assert answer.status_code == 200 and len(answer.json()["items"]) == 1
    assert client.get("/api/v1/audit?actor=" + "0" * 32,
                      headers={"Authorization": f"Bearer {users['owner']['token']}"}).status_code == 404


def test_an_owner_who_removes_themselves_is_signed_out_and_one_who_steps_down_leaves_the_users_page(
        ctx, client, users):
    owner = users["owner"]["principal"]
    for other in ("operator", "viewer"):  # three owners: two stay when one steps down
        access.change_role(ctx, owner, users[other]["id"], "owner")
    sign_in(client, "owner@acme.test")
    done = post(client, "/users", f"/users/{owner.user_id}/role", {"role": "operator"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/campaigns?done=role-changed"
    assert client.get("/users").status_code == 403
    sign_in(client, "operator@acme.test")  # the new owner
    confirm = client.get(f"/users/{users['operator']['id']}/remove").text
    assert 'data-testid="remove-yourself"' in confirm
    action = f"/users/{users['operator']['id']}/remove"
    gone = client.post(action, data={"csrf": page_csrf(client), "form_nonce": form_nonce(confirm, action)},
                       follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/login"
    assert client.get("/campaigns", follow_redirects=False).headers["location"].startswith("/login")


@pytest.mark.parametrize("path", ["/users", "/users/{user_id}/role", "/users/{user_id}/remove"])
def test_an_operator_is_refused_every_users_action_and_nothing_changes(ctx, client, users, path):
    owner = users["owner"]["principal"]
    before = (roles_of(ctx, owner), access.list_tokens(ctx, owner)["items"])
    sign_in(client, "operator@acme.test")
    data = {"csrf": page_csrf(client), "email": "friend@acme.test", "role": "owner", "sign_in": "link"}
    refused = client.post(path.format(user_id=users["viewer"]["id"]), data=data, follow_redirects=False)
    assert refused.status_code == 403 and "owner role" in refused.text
    assert (roles_of(ctx, owner), access.list_tokens(ctx, owner)["items"]) == before


def test_a_viewer_is_refused_the_revoke_confirmation_of_even_their_own_token(ctx, client, users):
    own = access.list_tokens(ctx, users["viewer"]["principal"])["items"][0]["id"]
    sign_in(client, "viewer@acme.test")
    assert client.get(f"/tokens/{own}/revoke").status_code == 403
    refused = client.post(f"/tokens/{own}/revoke", data={"csrf": page_csrf(client)}, follow_redirects=False)
    assert refused.status_code == 403
    assert api(client, users["viewer"]["token"]).status_code == 200
