"""Issue 19 on the dashboard, server side: lead import in three steps (upload, match columns,
result) without JavaScript, and the rejected rows' download. The pages write leads and
imports, so they run on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient

from drumbeat.services import campaigns as svc
from drumbeat.services import leads
from drumbeat.web import imports
from tests.conftest import db_url  # noqa: F401 - both databases here, unlike tests/web/conftest.py
from tests.factory import campaign_data
from tests.web.conftest import page_csrf, sign_in

GERMAN = "Mobile;Vorname;E-Mail;Plan\n+4915112345678;Jürgen;j@x.test;gold\n0151 23456790;Anna;a@x.test;silver\n" \
         "not-a-number;Bad;b@x.test;none\n"


def campaign(ctx, users, **overrides) -> str:
    return svc.create_campaign(ctx, users["owner"]["principal"], campaign_data(**overrides))["id"]


def operator(client) -> str:
    sign_in(client, "operator@acme.test")
    return page_csrf(client)


def upload(client, cid, csrf, text=GERMAN, *, filename="leads.csv", raw: bytes | None = None, **options):
    data = {"csrf": csrf, "delimiter": "auto", "encoding": "utf-8", "default_country": "", "infer_timezone": "1",
            **options}
    files = {"file": (filename, raw if raw is not None else text.encode(), "text/csv")} if filename else None
    return client.post(f"/campaigns/{cid}/leads/import", data=data, files=files, follow_redirects=False)


def mapping_page(client, cid, csrf, **kw):
    response = upload(client, cid, csrf, **kw)
    assert response.status_code == 303, response.text
    return response.headers["location"], client.get(response.headers["location"]).text


def selected(page: str) -> list[str]:
    return re.findall(r'name="map\.\d+"[^>]*>.*?<option value="([^"]*)"[^>]* selected', page, re.S)


def hidden_options(page: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="(delimiter|encoding|default_country|infer_timezone)" '
                           r'value="([^"]*)"', page))


def import_with(client, location, page, csrf, targets: list[str]):
    action = location.split("?")[0]
    data = {"csrf": csrf, **hidden_options(page), **{f"map.{i}": t for i, t in enumerate(targets)}}
    return client.post(action, data=data, follow_redirects=False)


def uploads_of(workspace_id: str) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"{imports.UPLOAD_PREFIX}{workspace_id}-*.csv"))


# --- pure helpers ---------------------------------------------------------------------------------

def test_a_column_named_like_a_lead_field_or_a_common_variant_is_guessed_as_that_field():
    taken: set[str] = set()
    header = ["Phone number", "E-Mail", "First name", "firstname", "LAST_NAME", "mobile", "Plan", "Vorname",
              "Order No."]
    assert [imports.guess_target(c, taken) for c in header] == [
        "phone", "email", "first_name", "attributes.firstname", "last_name", "attributes.mobile", "attributes.plan",
        "attributes.vorname", "attributes.order_no"]


def test_the_country_list_names_every_region_phonenumbers_supports():
    names = dict(imports.countries())
    assert names["DE"] == "Germany" and names["US"] == "United States"
    assert len(names) == len(leads.phonenumbers.SUPPORTED_REGIONS)


# --- step 1: the upload ---------------------------------------------------------------------------

def test_the_campaign_page_links_to_the_import_and_the_upload_form_offers_every_option(ctx, client, users):
    cid = campaign(ctx, users)
    operator(client)
    assert f'href="/campaigns/{cid}/leads/import"' in client.get(f"/campaigns/{cid}").text
    page = client.get(f"/campaigns/{cid}/leads/import").text
    assert 'enctype="multipart/form-data"' in page and 'name="pasted"' in page
    assert re.search(r'name="infer_timezone" value="1" checked', page)
    assert '<option value="DE">Germany (DE)</option>' in page
    for word in ("Detect it", "Comma (,)", "Semicolon (;)", "Tab", "Windows-1252"):
        assert word in page


def test_an_upload_without_a_file_or_text_or_with_an_unknown_country_is_refused_beside_the_field(
        ctx, client, users):
    cid = campaign(ctx, users)
    csrf = operator(client)
    response = upload(client, cid, csrf, filename=None, pasted="", default_country="XX")
    assert response.status_code == 422
    assert 'data-field="file">choose a CSV file, or paste the CSV text below' in response.text
    assert 'data-field="default_country">&#39;XX&#39; is not a country code' in response.text
    assert 'data-testid="error-summary"' in response.text
    # What was typed stays: pasted text and the chosen options.
    kept = upload(client, cid, csrf, filename=None, pasted="<b>phone</b>", default_country="XX", delimiter="tab")
    assert "&lt;b&gt;phone&lt;/b&gt;</textarea>" in kept.text and '<option value="tab" selected>' in kept.text
    assert uploads_of(users["owner"]["workspace_id"]) == []


def test_a_viewer_sees_no_import_link_and_the_server_refuses_every_import_step(ctx, client, users):
    cid = campaign(ctx, users)
    sign_in(client, "viewer@acme.test")
    csrf = page_csrf(client)
    assert "/leads/import" not in client.get(f"/campaigns/{cid}").text
    assert client.get(f"/campaigns/{cid}/leads/import").status_code == 403
    refused = upload(client, cid, csrf)
    assert refused.status_code == 403 and "needs the operator role" in refused.text
    token = "0" * 32
    assert client.post(f"/campaigns/{cid}/leads/import/{token}", data={"csrf": csrf}).status_code == 403
    assert uploads_of(users["owner"]["workspace_id"]) == []
    assert leads.list_leads(ctx, users["owner"]["principal"], cid)["items"] == []


def test_an_upload_without_the_csrf_token_is_refused(ctx, client, users):
    cid = campaign(ctx, users)
    operator(client)
    assert upload(client, cid, "forged").status_code == 403
    assert uploads_of(users["owner"]["workspace_id"]) == []


def test_a_finished_campaign_takes_no_import(ctx, client, users):
    cid = campaign(ctx, users)
    svc.cancel(ctx, users["owner"]["principal"], cid, "Spring promo")
    csrf = operator(client)
    assert 'data-testid="import-link"' not in client.get(f"/campaigns/{cid}").text
    page = client.get(f"/campaigns/{cid}/leads/import")
    assert page.status_code == 409 and "takes no new leads" in page.text
    assert upload(client, cid, csrf).status_code == 409


# --- step 2: matching columns ---------------------------------------------------------------------

def test_the_mapping_page_sniffs_the_delimiter_guesses_each_column_and_previews_the_first_rows(ctx, client, users):
    cid = campaign(ctx, users)
    csrf = operator(client)
    body = "Mobile;Vorname;E-Mail;Plan\n" + "".join(f"+49151123456{i:02d};N{i};n{i}@x.test;p\n" for i in range(8))
    location, page = mapping_page(client, cid, csrf, text=body)
    assert selected(page) == ["phone", "attributes.vorname", "email", "attributes.plan"]
    preview = page.split('data-testid="preview-rows"')[1].split("</tbody>")[0]
    assert preview.count("<tr>") == imports.PREVIEW_ROWS and "N4" in preview and "N5" not in preview
    assert "semicolon (;)-separated" in page
    # The file waits on disk under the workspace's name, not in memory.
    assert len(uploads_of(users["owner"]["workspace_id"])) == 1


def test_a_windows_1252_file_is_read_in_that_encoding_and_a_bom_is_dropped(ctx, client, users):
    cid = campaign(ctx, users)
    csrf = operator(client)
    _, page = mapping_page(client, cid, csrf, raw="Phone,Vorname\n+4915112345678,Jürgen\n".encode("cp1252"),
                           encoding="windows-1252")
    assert "Jürgen" in page
    _, page = mapping_page(client, cid, csrf, raw=b"\xef\xbb\xbfPhone,Name\n+4915112345678,Ann\n")
    assert selected(page)[0] == "phone" and "\ufeff" not in page


def test_two_columns_on_one_field_are_named_beside_both_columns_and_nothing_is_imported(ctx, client, users):
    cid = campaign(ctx, users)
    csrf = operator(client)
    location, page = mapping_page(client, cid, csrf)
    response = import_with(client, location, page, csrf, ["phone", "phone", "email", "attributes.plan"])
    assert response.status_code == 422
    beside = dict(re.findall(r'data-column="([^"]+)">([^<]+)<', response.text))
    assert set(beside) == {"Mobile", "Vorname"} and "go to the same field, phone" in beside["Mobile"]
    # The choice made is kept, and nothing was written.
    assert selected(response.text) == ["phone", "phone", "email", "attributes.plan"]
    assert leads.list_leads(ctx, users["owner"]["principal"], cid)["items"] == []
    assert len(uploads_of(users["owner"]["workspace_id"])) == 1


def test_no_column_for_the_address_a_step_needs_is_said_in_words_beside_the_mapping(ctx, client, users):
    cid = campaign(ctx, users)
    csrf = operator(client)
    location, page = mapping_page(client, cid, csrf)
    response = import_with(client, location, page, csrf, ["ignore", "first_name", "email", "attributes.plan"])
    assert response.status_code == 422
    assert 'data-testid="mapping-error">no column for phone: a whatsapp step sends to it' in response.text


def test_an_unknown_upload_token_or_another_workspaces_upload_is_not_found(ctx, client, users):
    cid = campaign(ctx, users)
    csrf = operator(client)
    location, _ = mapping_page(client, cid, csrf)
    token = location.split("/")[-1].split("?")[0]
    imports._upload_path(users["owner"]["workspace_id"], token).rename(
        imports._upload_path("another-workspace", token))
    try:
        assert client.get(location).status_code == 404
        assert client.get(location.replace(token, "x" * 32)).status_code == 404
    finally:
        imports._upload_path("another-workspace", token).unlink()


# --- step 3: the result ---------------------------------------------------------------------------

def test_an_import_applies_the_mapping_and_options_and_shows_counts_and_each_rejected_row(ctx, client, users):
    cid = campaign(ctx, users)
    csrf = operator(client)
    location, page = mapping_page(client, cid, csrf, default_country="DE")
    response = import_with(client, location, page, csrf, ["phone", "first_name", "email", "attributes.plan"])
    assert response.status_code == 303
    result = client.get(response.headers["location"]).text
    counts = dict(re.findall(r'data-testid="count-([\w-]+)">(\d+)<', result))
    assert counts == {"accepted": "2", "duplicates": "0", "rejected": "1", "opted-out": "0"}
    assert result.count('data-testid="rejected-row"') == 1 and "not-a-number" in result
    stored = {lead["phone"]: lead for lead in leads.list_leads(ctx, users["owner"]["principal"], cid)["items"]}
    assert set(stored) == {"+4915112345678", "+4915123456790"}  # the national number read as German
    assert stored["+4915112345678"]["first_name"] == "Jürgen"
    assert stored["+4915112345678"]["attributes"] == {"plan": "gold"}
    assert stored["+4915112345678"]["timezone"] == "Europe/Berlin"
    assert uploads_of(users["owner"]["workspace_id"]) == []  # deleted once imported


def test_the_rejected_download_streams_every_rejected_row_like_the_api(ctx, client, users):
    cid = campaign(ctx, users)
    csrf = operator(client)
    body = "phone,name\n" + "".join(f"bad{i},N{i}\n" for i in range(30)) + "+4915112345678,Ok\n"
    location, page = mapping_page(client, cid, csrf, text=body)
    response = import_with(client, location, page, csrf, ["phone", "attributes.name"])
    result_url, _, done = response.headers["location"].partition("?")
    assert done == "done=imported"
    result = client.get(result_url).text
    assert result.count('data-testid="rejected-row"') == imports.REJECTED_SHOWN
    download = client.get(result_url + "/rejected.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0] == ["row", "phone", "name", "reasons"] and len(rows) == 31
    import_id = result_url.rsplit("/", 1)[1]
    assert "".join(leads.rejected_csv(ctx, users["owner"]["principal"], import_id)) == download.text
    # A viewer of the workspace may read it too; another campaign's address is not found.
    viewer = TestClient(client.app)
    sign_in(viewer, "viewer@acme.test")
    assert viewer.get(result_url + "/rejected.csv").text == download.text
    other = campaign(ctx, users, name="Other")
    assert client.get(f"/campaigns/{other}/imports/{import_id}/rejected.csv").status_code == 404


def test_pasted_text_imports_like_a_file(ctx, client, users):
    cid = campaign(ctx, users)
    csrf = operator(client)
    location, page = mapping_page(client, cid, csrf, filename=None, pasted="phone\tName\n+4915112345678\tZoë\n",
                                  delimiter="tab", encoding="windows-1252")
    assert hidden_options(page)["encoding"] == "utf-8"  # pasted text arrives as UTF-8, whatever was chosen
    response = import_with(client, location, page, csrf, ["phone", "first_name"])
    assert response.status_code == 303
    assert [lead["first_name"] for lead in leads.list_leads(ctx, users["owner"]["principal"], cid)["items"]] == ["Zoë"]
