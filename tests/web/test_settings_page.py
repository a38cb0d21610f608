"""The workspace settings page (issue 23): the opt-out and opt-in words, the contact cap and
the SMS auto-replies of `GET/PATCH /api/v1/workspace` in the browser — the owner edits,
everyone else reads, the server refuses anyone else's post; errors beside their fields with
what was typed kept and nothing saved; a word added here stops the inbound path."""

from __future__ import annotations

import html
import re

import pytest

from drumbeat.services import workspaces
from drumbeat.store.tables import suppressions
from tests.engine.test_stop_keyword import _inbound, _twilio
from tests.web.conftest import page_csrf, sign_in
from tests.web.test_accessibility import axe_page, axe_source, serious_violations  # noqa: F401 - fixture
from tests.web.test_browser import browser, server, shot, sign_in_with_password  # noqa: F401 - fixtures

SETTINGS = ("opt_out_words", "opt_in_words", "contact_cap", "auto_replies")
VALID = {"opt_out_words": "Abmelden\nhalt, Stopp", "opt_in_words": "anmelden", "cap": "on", "cap_max": "3",
         "cap_days": "7", "stop_on": "on", "stop_text": " Sie bekommen keine Nachrichten mehr. ",
         "help_on": "", "help_text": "unused while off"}


def settings_of(ctx, principal) -> dict:
    view = workspaces.get_workspace(ctx, principal)
    return {k: view[k] for k in SETTINGS}


def form_nonce(page: str) -> str:
    return re.search(r'name="form_nonce" value="([^"]+)"', page).group(1)


def post(client, data: dict, **kwargs):
    page = client.get("/settings").text
    return client.post("/settings", data={"csrf": page_csrf(client), "form_nonce": form_nonce(page), **data},
                       **kwargs)


def field_error(page: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="[^"]+" data-testid="field-error" data-field="{re.escape(field)}">'
                      r"(.*?)</p>", page, re.S)
    return html.unescape(found.group(1)) if found else ""


def test_every_role_finds_the_page_in_the_navigation_and_only_the_owner_gets_a_form(ctx, client, users):
    owner = users["owner"]["principal"]
    workspaces.update_settings(ctx, owner, {"opt_out_words": ["ABMELDEN"], "contact_cap": {"max": 3, "days": 7},
                                            "auto_replies": {"stop": "Bye <b>now</b>"}})
    for role in ("viewer", "operator"):
        sign_in(client, f"{role}@acme.test")
        assert '<a href="/settings">Settings</a>' in client.get("/campaigns").text
        page = client.get("/settings").text
        assert 'action="/settings"' not in page and "<textarea" not in page, role
        assert "Only an owner can change these settings." in page
        assert "<strong>ABMELDEN</strong>" in page and "STOP, STOPALL" in page
        assert "At most 3 messages to one person in any 7 days" in page
        assert "Bye &lt;b&gt;now&lt;/b&gt;" in page and "<b>now</b>" not in page
        assert re.search(r'data-testid="view-help">Off<', page)
    sign_in(client, "owner@acme.test")
    page = client.get("/settings").text
    assert 'method="post" action="/settings"' in page and 'name="form_nonce"' in page
    assert ">ABMELDEN</textarea>" in page and 'name="cap_max"' in page and 'value="3"' in page
    assert re.search(r'id="f-cap-on" name="cap" value="on" checked', page)
    assert re.search(r'id="f-stop_on" name="stop_on" value="on" checked', page)
    assert not re.search(r'id="f-help_on" name="help_on" value="on" checked', page)


def test_an_owner_saves_and_the_api_answers_with_the_new_settings(ctx, client, users):
    sign_in(client, "owner@acme.test")
    response = post(client, VALID, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/settings?done=settings-saved"
    page = client.get(response.headers["location"]).text
    assert re.search(r'<div id="toast" [^>]*>Workspace settings saved.</div>', page)
    assert ">Abmelden\nhalt\nStopp</textarea>" in page  # shown back one per line
    api = client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {users['owner']['token']}"}).json()
    assert api["opt_out_words"] == ["Abmelden", "halt", "Stopp"] and api["opt_in_words"] == ["anmelden"]
    assert api["contact_cap"] == {"max": 3, "days": 7}
    assert api["auto_replies"] == {"stop": "Sie bekommen keine Nachrichten mehr.", "help": None}

    # No cap, no words, no replies: each can be turned off again.
    response = post(client, {"opt_out_words": "", "opt_in_words": " \n ", "cap": "none", "cap_max": "3",
                             "cap_days": "7", "stop_text": "kept in the box, but off"}, follow_redirects=False)
    assert response.status_code == 303
    assert settings_of(ctx, users["owner"]["principal"]) == {
        "opt_out_words": [], "opt_in_words": [], "contact_cap": None, "auto_replies": {"stop": None, "help": None}}


def test_invalid_fields_are_shown_beside_them_as_typed_and_nothing_is_saved(ctx, client, users):
    owner = users["owner"]["principal"]
    workspaces.update_settings(ctx, owner, {"opt_out_words": ["halt"], "contact_cap": {"max": 2, "days": 30}})
    before = settings_of(ctx, owner)
    sign_in(client, "owner@acme.test")
    long_word = "x" * 33
    response = post(client, {"opt_out_words": f"Abmelden\n{long_word}\n!!!", "opt_in_words": "anmelden",
                             "cap": "on", "cap_max": "0", "cap_days": "366", "stop_on": "on", "stop_text": "   ",
                             "help_on": "on", "help_text": "h" * 641})
    assert response.status_code == 422
    page = response.text
    assert 'data-testid="error-summary"' in page and "nothing was saved" in page
    assert field_error(page, "opt_out_words") == (f"“{long_word}”: must be at most 32 characters.<br>"
                                                  "“!!!”: must hold a word (not only spaces or punctuation).")
    assert field_error(page, "contact_cap.max") == "Must be at least 1."
    assert field_error(page, "contact_cap.days") == "Must be at most 365."
    assert field_error(page, "auto_replies.stop") == "Required."
    assert field_error(page, "auto_replies.help") == "Must be at most 640 characters."
    assert field_error(page, "opt_in_words") == ""  # a valid field has no error, and is not saved either
    # What was typed is kept, and each invalid input says so to a screen reader.
    assert f">Abmelden\n{long_word}\n!!!</textarea>" in page and ">anmelden</textarea>" in page
    assert re.search(r'id="f-contact_cap-max" [^>]*value="0"[^>]*aria-invalid="true"', page)
    assert 'value="366"' in page and ">" + "h" * 641 + "</textarea>" in page
    assert settings_of(ctx, owner) == before

    response = post(client, {**VALID, "cap_max": "three"})
    assert response.status_code == 422 and field_error(response.text, "contact_cap.max") == "Enter a whole number."
    assert settings_of(ctx, owner) == before


def test_a_word_that_would_both_opt_out_and_opt_in_is_refused_beside_the_list_that_holds_it(ctx, client, users):
    owner = users["owner"]["principal"]
    before = settings_of(ctx, owner)
    sign_in(client, "owner@acme.test")
    page = post(client, {**VALID, "opt_out_words": "Abmelden\nStart!"}).text  # START opts in by default
    assert field_error(page, "opt_out_words") == "A word cannot both opt out and opt in: start."
    assert field_error(page, "opt_in_words") == ""
    page = post(client, {**VALID, "opt_in_words": "anmelden, HALT"}).text  # halt is typed as an opt-out word
    assert "halt" in field_error(page, "opt_in_words") and "halt" in field_error(page, "opt_out_words")
    assert settings_of(ctx, owner) == before


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_a_viewer_or_operator_post_is_refused_with_a_403_page_and_changes_nothing(ctx, client, users, role):
    owner = users["owner"]["principal"]
    before = settings_of(ctx, owner)
    sign_in(client, f"{role}@acme.test")
    response = client.post("/settings", data={"csrf": page_csrf(client), **VALID})
    assert response.status_code == 403 and "text/html" in response.headers["content-type"]
    assert "owner role" in response.text
    assert settings_of(ctx, owner) == before


def test_the_same_form_posted_twice_saves_once_and_the_audit_log_says_what_changed(ctx, client, users):
    owner = users["owner"]["principal"]
    sign_in(client, "owner@acme.test")
    page = client.get("/settings").text
    data = {"csrf": page_csrf(client), "form_nonce": form_nonce(page), **VALID}
    assert client.post("/settings", data=data, follow_redirects=False).headers["location"].endswith(
        "done=settings-saved")
    workspaces.update_settings(ctx, owner, {"contact_cap": None})  # someone else changes it meanwhile
    again = client.post("/settings", data=data, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/settings?done=again"
    assert settings_of(ctx, owner)["contact_cap"] is None  # the old form did not put its cap back
    audit = client.get("/audit", params={"object_type": "workspace"}).text
    assert ("owner@acme.test changed the opt-out words, the opt-in words, the contact cap and the automatic "
            "replies of the workspace") in html.unescape(audit)


def test_a_stop_in_a_word_added_on_the_page_suppresses_the_sender(ctx, client, users, twilio_server):
    owner = users["owner"]["principal"]
    key = _twilio(ctx, owner, twilio_server)

    def suppressed() -> dict:
        with ctx.db.connect() as conn:
            return {r.phone: r.reason for r in conn.execute(suppressions.select())}

    _inbound(client, key, "+4915123456701", "abmelden")
    assert suppressed() == {}  # not a stop word yet: a reply
    sign_in(client, "owner@acme.test")
    assert post(client, {**VALID, "opt_out_words": "ABMELDEN"}, follow_redirects=False).status_code == 303
    _inbound(client, key, "+4915123456702", "Abmelden!")
    assert suppressed() == {"+4915123456702": "stop_keyword"}


def test_in_chromium_an_owner_edits_the_words_and_the_cap_and_sees_the_toast(ctx, users, server, axe_page):  # noqa: F811
    from playwright.sync_api import expect

    source = axe_source()
    owner = users["owner"]["principal"]
    tab = axe_page
    problems: dict[str, list[str]] = {}
    sign_in_with_password(tab, server, "owner@acme.test")
    tab.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(tab.get_by_role("heading", name="Workspace settings")).to_be_visible()
    problems["settings"] = serious_violations(tab, source)

    tab.get_by_label("Your own opt-out words").fill("Abmelden\nHalt")
    tab.get_by_label("Cap contacts per person").check()
    tab.get_by_label("Messages per person, at most").fill("3")
    tab.get_by_label("Within any period of (days)").fill("400")
    tab.get_by_role("button", name="Save settings").click()
    expect(tab.get_by_test_id("error-summary")).to_be_visible()
    expect(tab.get_by_label("Within any period of (days)")).to_have_value("400")
    expect(tab.get_by_label("Your own opt-out words")).to_have_value("Abmelden\nHalt")
    problems["settings with an error"] = serious_violations(tab, source)
    shot(tab, "settings-error")
    assert settings_of(ctx, owner)["contact_cap"] is None

    tab.get_by_label("Within any period of (days)").fill("7")
    tab.get_by_label("Answer STOP automatically").check()
    tab.get_by_label("Reply to STOP").fill("Sie bekommen keine Nachrichten mehr.")
    tab.get_by_role("button", name="Save settings").click()
    expect(tab.get_by_test_id("toast")).to_have_text("Workspace settings saved.")
    expect(tab.get_by_label("Messages per person, at most")).to_have_value("3")
    shot(tab, "settings-saved")
    assert settings_of(ctx, owner) == {
        "opt_out_words": ["Abmelden", "Halt"], "opt_in_words": [], "contact_cap": {"max": 3, "days": 7},
        "auto_replies": {"stop": "Sie bekommen keine Nachrichten mehr.", "help": None}}

    # A viewer reads the same settings, with no form.
    tab.get_by_role("button", name="Sign out").click()
    sign_in_with_password(tab, server, "viewer@acme.test")
    tab.goto(f"{server}/settings")
    expect(tab.get_by_test_id("view-cap")).to_have_text("At most 3 messages to one person in any 7 days")
    expect(tab.get_by_role("button", name="Save settings")).to_have_count(0)
    problems["settings read-only"] = serious_violations(tab, source)
    failing = {name: found for name, found in problems.items() if found}
    assert not failing, "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in failing.items())
