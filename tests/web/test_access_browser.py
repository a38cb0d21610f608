"""Issue 23 in Chromium: the users and API tokens pages by role and label — a token revoked
on the page answers 401 at once; a removed user's open dashboard goes to the sign-in page on
its next load; a role changed; the last owner kept; a sign-in link that signs in; the pages
without JavaScript; a viewer sees none of the actions; axe finds nothing serious."""

from __future__ import annotations

import re

import httpx

from drumbeat.services import access, workspaces
from tests.web.test_accessibility import axe_page, axe_source, serious_violations  # noqa: F401 - fixture
from tests.web.test_browser import browser, server, shot, sign_in_with_password  # noqa: F401 - fixtures


def _context(browser, **options):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    context.set_default_timeout(20_000)
    return context


def _api_status(base: str, token: str) -> int:
    return httpx.get(f"{base}/api/v1/workspace", headers={"Authorization": f"Bearer {token}"}).status_code


def _failing(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in problems.items() if found)


def test_in_chromium_a_token_is_created_copied_and_once_revoked_the_api_answers_401(
        ctx, users, server, axe_page):  # noqa: F811
    from playwright.sync_api import expect

    source = axe_source()
    problems: dict[str, list[str]] = {}
    tab = axe_page
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    sign_in_with_password(tab, server, "operator@acme.test")
    tab.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens").click()
    expect(tab.get_by_role("heading", name="API tokens", level=1)).to_be_visible()
    expect(tab.get_by_test_id("token-row")).to_have_count(1)  # the one made with the user
    problems["tokens"] = serious_violations(tab, source)

    tab.get_by_role("button", name="Create token").click()
    expect(tab.get_by_test_id("toast")).to_have_text("API token created: copy it now.")
    field = tab.get_by_label("The token, shown this once")
    token = field.input_value()
    assert token.startswith("dbt_")
    tab.get_by_role("button", name="Copy the token").click()
    expect(tab.get_by_test_id("toast")).to_have_text("Copied to the clipboard.")
    assert tab.evaluate("navigator.clipboard.readText()") == token
    problems["tokens with a new token"] = serious_violations(tab, source)
    shot(tab, "tokens-new")
    assert _api_status(server, token) == 200

    tab.reload()  # the same form posted again: nothing more is made, the token is not shown again
    expect(tab.get_by_test_id("token-row")).to_have_count(2)
    expect(tab.get_by_label("The token, shown this once")).to_have_count(0)
    row = tab.get_by_test_id("token-row").filter(has_not_text="never")
    expect(row).to_have_count(1)  # the API call above is its last use
    row.get_by_role("link", name=re.compile("^Revoke")).click()
    expect(tab.get_by_role("heading", name="Revoke this API token?")).to_be_visible()
    problems["revoke confirmation"] = serious_violations(tab, source)
    tab.get_by_role("button", name="Revoke token").click()
    expect(tab.get_by_test_id("toast")).to_have_text("API token revoked: it no longer works.")
    expect(tab.get_by_test_id("token-row")).to_have_count(1)
    assert _api_status(server, token) == 401
    owner = users["owner"]["principal"]
    assert len(access.list_tokens(ctx, owner)["items"]) == 3  # one each, as before
    assert not _failing(problems), _failing(problems)


def test_in_chromium_a_removed_users_open_dashboard_goes_to_sign_in_on_its_next_load(
        ctx, users, server, browser):  # noqa: F811
    from playwright.sync_api import expect

    theirs, mine = _context(browser), _context(browser)
    try:
        operator = theirs.new_page()
        sign_in_with_password(operator, server, "operator@acme.test")
        expect(operator.get_by_text("operator@acme.test")).to_be_visible()

        tab = mine.new_page()
        sign_in_with_password(tab, server, "owner@acme.test")
        tab.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
        row = tab.get_by_role("row").filter(has=tab.get_by_role("rowheader", name="operator@acme.test"))
        row.get_by_role("link", name="Remove operator@acme.test").click()
        expect(tab.get_by_role("heading", name="Remove operator@acme.test?")).to_be_visible()
        expect(tab.get_by_text("their 1 API token stops working")).to_be_visible()
        tab.get_by_role("button", name="Remove user").click()
        expect(tab.get_by_test_id("toast")).to_have_text("User removed: signed out and their API tokens revoked.")
        expect(tab.get_by_role("rowheader", name="operator@acme.test")).to_have_count(0)

        operator.reload()
        expect(operator).to_have_url(re.compile(r"/login\?next="))
        expect(operator.get_by_role("heading", name="Sign in")).to_be_visible()
        assert _api_status(server, users["operator"]["token"]) == 401
    finally:
        theirs.close()
        mine.close()


def test_in_chromium_an_owner_changes_a_role_and_cannot_remove_the_last_owner(
        ctx, users, server, axe_page):  # noqa: F811
    from playwright.sync_api import expect

    source = axe_source()
    owner = users["owner"]["principal"]
    problems: dict[str, list[str]] = {}
    tab = axe_page
    sign_in_with_password(tab, server, "owner@acme.test")
    tab.goto(f"{server}/users")
    problems["users"] = serious_violations(tab, source)

    tab.get_by_label("Role of operator@acme.test").select_option(label="Viewer")
    tab.get_by_role("button", name="Change role of operator@acme.test").click()
    expect(tab.get_by_test_id("toast")).to_have_text("Role changed.")
    expect(tab.get_by_label("Role of operator@acme.test")).to_have_value("viewer")
    assert {u["email"]: u["role"] for u in workspaces.list_users(ctx, owner)}["operator@acme.test"] == "viewer"

    # The last owner: demoting is refused beside the field, removing on the confirmation page.
    tab.get_by_label("Role of owner@acme.test").select_option(label="Operator")
    tab.get_by_role("button", name="Change role of owner@acme.test").click()
    expect(tab.get_by_test_id("error-summary")).to_contain_text("last owner")
    expect(tab.get_by_label("Role of owner@acme.test")).to_have_attribute("aria-invalid", "true")
    problems["users with an error"] = serious_violations(tab, source)
    tab.get_by_role("link", name="Remove owner@acme.test").click()
    tab.get_by_role("button", name="Remove user").click()
    expect(tab.get_by_role("alert")).to_contain_text("last owner and cannot be removed: make another user owner first")
    problems["remove refused"] = serious_violations(tab, source)
    shot(tab, "users-last-owner")
    assert {u["email"]: u["role"] for u in workspaces.list_users(ctx, owner)}["owner@acme.test"] == "owner"

    # An invitation by sign-in link: the link, opened in another browser, signs the person in.
    tab.goto(f"{server}/users")
    tab.get_by_label("Email", exact=True).fill("new@acme.test")
    tab.get_by_label("Role", exact=True).select_option("operator")
    tab.get_by_role("button", name="Invite user").click()
    expect(tab.get_by_role("heading", name="new@acme.test can sign in now")).to_be_visible()
    link = tab.get_by_label("Sign-in link", exact=True).input_value()
    assert link.startswith(f"{ctx.public_url}/login#token=dbt_")  # the public URL, as the notifications' links
    link = server + link.removeprefix(ctx.public_url)
    problems["users with an invitation"] = serious_violations(tab, source)
    shot(tab, "users-invitation")
    other = _context(tab.context.browser)
    try:
        newcomer = other.new_page()
        newcomer.goto(link)
        expect(newcomer.get_by_test_id("toast")).to_have_text(
            "Your sign-in link filled in the token: press Sign in with token.")
        assert "#" not in newcomer.url  # the token is out of the address bar and the history entry
        sign_in_button = newcomer.get_by_role("button", name="Sign in with token")
        expect(sign_in_button).to_be_focused()
        sign_in_button.click()
        expect(newcomer).to_have_url(re.compile(r"/campaigns$"))
        expect(newcomer.get_by_text("new@acme.test")).to_be_visible()
    finally:
        other.close()
    assert not _failing(problems), _failing(problems)


def test_in_chromium_a_viewer_sees_none_of_the_actions(ctx, users, server, axe_page):  # noqa: F811
    from playwright.sync_api import expect

    source = axe_source()
    tab = axe_page
    sign_in_with_password(tab, server, "viewer@acme.test")
    nav = tab.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    nav.get_by_role("link", name="API tokens").click()
    expect(tab.get_by_test_id("token-row")).to_have_count(1)
    expect(tab.get_by_role("button", name="Create token")).to_have_count(0)
    expect(tab.get_by_role("link", name=re.compile("^Revoke"))).to_have_count(0)
    expect(tab.get_by_test_id("read-only")).to_be_visible()
    problems = {"tokens read-only": serious_violations(tab, source)}
    assert tab.goto(f"{server}/users").status == 403
    expect(tab.get_by_role("button", name="Invite user")).to_have_count(0)
    assert not _failing(problems), _failing(problems)


def test_without_javascript_a_new_token_is_shown_selectable_and_an_invitation_works(
        ctx, users, server, browser):  # noqa: F811
    from playwright.sync_api import expect

    context = _context(browser, java_script_enabled=False)
    try:
        tab = context.new_page()
        sign_in_with_password(tab, server, "owner@acme.test")
        tab.goto(f"{server}/tokens")
        tab.get_by_label("For").select_option(label="viewer@acme.test (viewer)")
        tab.get_by_role("button", name="Create token").click()
        expect(tab.get_by_role("heading", name="New token for viewer@acme.test")).to_be_visible()
        field = tab.get_by_label("The token, shown this once")
        expect(field).to_be_visible()
        expect(field).not_to_be_editable()
        expect(tab.get_by_role("button", name="Copy the token")).to_be_hidden()
        token = field.input_value()
        assert access.authenticate(ctx, token).user_id == users["viewer"]["id"]

        tab.goto(f"{server}/users")
        tab.get_by_label("Email", exact=True).fill("pw@acme.test")
        tab.get_by_label("With a password you choose now").check()
        tab.get_by_label("Password", exact=True).fill("a long pass phrase")
        tab.get_by_role("button", name="Invite user").click()
        expect(tab.get_by_test_id("toast")).to_have_text("pw@acme.test added as operator.")
        expect(tab.get_by_label("Their API token")).to_be_visible()
    finally:
        context.close()
