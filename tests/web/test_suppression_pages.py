"""The Suppressions page (issue 20): list, search and reason filter, source of each entry,
add one, import a CSV with its result row by row, export, delete with confirmation (owner)."""

from __future__ import annotations

import csv
import io

from drumbeat.services import suppressions as service
from drumbeat.store.tables import leads as lead_table
from drumbeat.store.tables import suppressions as suppression_table
from tests.factory import add_leads, new_campaign
from tests.web.conftest import page_csrf, sign_in
from tests.web.test_accessibility import axe_page, axe_source, serious_violations  # noqa: F401 - fixture
from tests.web.test_browser import browser, server, sign_in_with_password  # noqa: F401 - fixtures


def suppress(ctx, users, reason="manual", source=None, **address) -> str:
    with ctx.db.begin() as conn:
        row, _ = service.suppress(conn, users["owner"]["workspace_id"], reason=reason, source=source,
                                  now=ctx.clock(), **address)
    return str(row["id"])


def leads_of(ctx, campaign_id) -> list[dict]:
    with ctx.db.begin() as conn:
        return [dict(r) for r in conn.execute(lead_table.select().where(lead_table.c.campaign_id == campaign_id)
                                              .order_by(lead_table.c.id)).mappings()]


def entries(ctx) -> list[tuple]:
    with ctx.db.begin() as conn:
        return [tuple(r) for r in conn.execute(suppression_table.select().with_only_columns(
            suppression_table.c.phone, suppression_table.c.email, suppression_table.c.reason))]


def test_the_list_is_in_the_navigation_and_shows_reason_and_source(ctx, client, users):
    owner = users["owner"]["principal"]
    cid = new_campaign(ctx, owner, name="Spring")
    suppress(ctx, users, phone="+4915123456701", reason="stop_keyword",
             source={"campaign_id": cid, "lead_id": 12, "channel": "sms"})
    suppress(ctx, users, email="o'neil&co@example.com")
    sign_in(client, "viewer@acme.test")
    assert '<a href="/suppressions">Suppressions</a>' in client.get("/campaigns").text
    page = client.get("/suppressions").text
    assert "+4915123456701" in page and "STOP reply" in page and "Added by hand" in page
    assert f'href="/campaigns/{cid}/leads/12"' in page and "sms" in page
    assert f'<a href="/campaigns/{cid}">Spring</a>' in page
    assert "o'neil&co" not in page and "o&#39;neil&amp;co@example.com" in page
    filtered = client.get("/suppressions", params={"reason": "stop_keyword"}).text
    assert "+4915123456701" in filtered and "example.com" not in filtered.split("<tbody>")[1]
    searched = client.get("/suppressions", params={"q": "0049 151 2345 6701"}).text
    assert "+4915123456701" in searched and "example.com" not in searched.split("<tbody>")[1]


def test_a_viewer_sees_no_action_and_the_server_refuses_them(ctx, client, users):
    entry = suppress(ctx, users, phone="+4915123456701")
    sign_in(client, "viewer@acme.test")
    page = client.get("/suppressions").text
    assert 'action="/suppressions"' not in page.replace('action="/suppressions" class="toolbar"', "")
    assert "/delete" not in page and 'action="/suppressions/import"' not in page
    csrf = page_csrf(client)
    assert client.post("/suppressions", data={"csrf": csrf, "address": "+4915123456702"}).status_code == 403
    assert client.post(f"/suppressions/{entry}/delete", data={"csrf": csrf}).status_code == 403
    assert client.post("/suppressions/import", data={"csrf": csrf, "pasted": "phone\n+4915123456703\n"}
                       ).status_code == 403
    assert entries(ctx) == [("+4915123456701", None, "manual")]


def test_an_operator_adds_an_address_and_a_bad_one_is_shown_beside_the_field_as_typed(ctx, client, users):
    sign_in(client, "operator@acme.test")
    csrf = page_csrf(client)
    r = client.post("/suppressions", data={"csrf": csrf, "address": "0049 151 23456701"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/suppressions?done=suppression-added"
    r = client.post("/suppressions", data={"csrf": csrf, "address": "12<x>34"})
    assert r.status_code == 422
    assert 'data-field="address"' in r.text and 'value="12&lt;x&gt;34"' in r.text
    assert entries(ctx) == [("+4915123456701", None, "manual")]
    page = client.get("/suppressions").text
    assert "/delete" not in page  # only owners delete


def test_an_import_shows_its_counts_and_each_rejected_row(ctx, client, users):
    suppress(ctx, users, email="old@example.com")
    sign_in(client, "operator@acme.test")
    text = "phone,email,reason\n+4915123456701,,bounce\n12,,\n,old@example.com,\n,new@example.com,spam\n"
    r = client.post("/suppressions/import", data={"csrf": page_csrf(client)},
                    files={"file": ("list.csv", text.encode(), "text/csv")})
    assert r.status_code == 200, r.text
    assert 'data-testid="count-accepted">1<' in r.text and 'data-testid="count-duplicates">1<' in r.text
    assert 'data-testid="count-rejected">2<' in r.text
    assert "<td>2</td><td>phone:" in r.text and "<td>4</td><td>reason:" in r.text
    r = client.post("/suppressions/import", data={"csrf": page_csrf(client), "pasted": ""})
    assert r.status_code == 422 and 'data-field="file"' in r.text
    r = client.post("/suppressions/import", data={"csrf": page_csrf(client), "pasted": "name\nx\n"})
    assert r.status_code == 422 and "phone or an email column" in r.text


def test_the_campaign_page_splits_its_opted_out_leads_by_reason(ctx, client, users):
    owner = users["owner"]["principal"]
    cid = new_campaign(ctx, owner, name="Spring")
    add_leads(ctx, cid, 3)
    sign_in(client, "viewer@acme.test")
    assert "opt-out-reasons" not in client.get(f"/campaigns/{cid}").text  # nobody opted out yet
    emails = [lead["email"] for lead in leads_of(ctx, cid)]
    suppress(ctx, users, email=emails[0], reason="stop_keyword")
    suppress(ctx, users, email=emails[1], reason="bounce")
    page = client.get(f"/campaigns/{cid}").text
    section = page[page.index('data-testid="opt-out-reasons"'):page.index("Suppression list →")]
    assert "<dt>STOP reply</dt><dd>1</dd>" in section and "<dt>Hard bounce</dt><dd>1</dd>" in section
    assert "Imported" not in section


def test_the_export_link_downloads_the_list_with_formula_cells_escaped(ctx, client, users):
    suppress(ctx, users, email="=1+1@example.com", reason="bounce")
    sign_in(client, "viewer@acme.test")
    r = client.get("/suppressions/export")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert list(csv.reader(io.StringIO(r.text)))[1][:3] == ["", "'=1+1@example.com", "bounce"]


def test_the_owner_confirms_a_delete_and_an_unknown_entry_is_not_found(ctx, client, users):
    entry = suppress(ctx, users, phone="+4915123456701")
    sign_in(client, "owner@acme.test")
    confirm = client.get(f"/suppressions/{entry}/delete")
    assert confirm.status_code == 200 and "+4915123456701" in confirm.text and "confirm-delete" in confirm.text
    assert entries(ctx) == [("+4915123456701", None, "manual")]  # asking changes nothing
    csrf = page_csrf(client)
    r = client.post(f"/suppressions/{entry}/delete", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/suppressions?done=suppression-deleted"
    assert entries(ctx) == []
    assert client.post(f"/suppressions/{entry}/delete", data={"csrf": csrf}).status_code == 404
    assert client.get("/suppressions/abc/delete").status_code == 404


def test_in_chromium_an_owner_adds_searches_and_deletes_an_address_and_axe_finds_nothing_serious(
        ctx, users, server, axe_page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    source = axe_source()
    suppress(ctx, users, email="anna@example.com", reason="bounce")
    upload = tmp_path / "list.csv"
    upload.write_text("phone,reason\n+4915123456709,stop_keyword\n12,\n", encoding="utf-8")
    tab = axe_page
    problems: dict[str, list[str]] = {}
    sign_in_with_password(tab, server, "owner@acme.test")
    tab.get_by_role("navigation", name="Main").get_by_role("link", name="Suppressions").click()
    expect(tab.get_by_role("heading", name="Suppression list")).to_be_visible()
    problems["list"] = serious_violations(tab, source)

    tab.get_by_label("Phone or email").fill("not a phone")
    tab.get_by_role("button", name="Add to the list").click()
    expect(tab.get_by_test_id("field-error")).to_be_visible()
    expect(tab.get_by_label("Phone or email")).to_have_value("not a phone")
    problems["add with an error"] = serious_violations(tab, source)
    tab.get_by_label("Phone or email").fill("+49 151 23456701")
    tab.get_by_role("button", name="Add to the list").click()
    expect(tab.get_by_test_id("toast")).to_contain_text("added")
    expect(tab.get_by_test_id("suppression-row")).to_have_count(2)

    tab.get_by_label("CSV file").set_input_files(str(upload))
    tab.get_by_role("button", name="Import").click()
    expect(tab.get_by_test_id("count-accepted")).to_have_text("1")
    expect(tab.get_by_test_id("rejected-row")).to_have_count(1)
    problems["import result"] = serious_violations(tab, source)

    tab.get_by_role("searchbox", name="Search").fill("6701")
    tab.get_by_role("button", name="Search").click()
    rows = tab.get_by_test_id("suppression-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("+4915123456701")
    rows.first.get_by_role("link", name="Delete +4915123456701").click()
    expect(tab.get_by_role("heading", name="Delete this suppression?")).to_be_visible()
    problems["delete confirmation"] = serious_violations(tab, source)
    tab.get_by_test_id("confirm-delete").click()
    expect(tab.get_by_test_id("toast")).to_contain_text("deleted")
    expect(tab.get_by_test_id("suppression-row")).to_have_count(2)
    assert sorted(e[0] or e[1] for e in entries(ctx)) == ["+4915123456709", "anna@example.com"]
    failing = {name: found for name, found in problems.items() if found}
    assert not failing, "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in failing.items())
