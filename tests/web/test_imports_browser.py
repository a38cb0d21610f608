"""Lead import in a real headless Chromium (tests/web/test_browser.py's conventions): a
semicolon CSV with unusual headers is uploaded, its columns matched by hand, imported, and
its rejected row downloaded. Screenshots of each step land in artifacts/screenshots/."""

from __future__ import annotations

import csv
import io
import re

from drumbeat.services import campaigns as svc
from drumbeat.services import leads
from tests.factory import campaign_data
from tests.web.test_browser import SCREENSHOTS, browser, page, server, shot, sign_in_with_password  # noqa: F401 - fixtures

CSV_TEXT = ("Mobile;Vorname;E-Mail;Plan\n"
            "+4915112345678;Jürgen;juergen@example.com;gold\n"
            "+4915112345679;Anna;anna@example.com;silver\n"
            "12;Bad;bad@example.com;none\n")


def test_an_operator_uploads_a_semicolon_csv_matches_its_columns_imports_and_downloads_the_rejected_row(
        ctx, users, server, page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    owner = users["owner"]["principal"]
    cid = svc.create_campaign(ctx, owner, campaign_data("Plans"))["id"]
    upload = tmp_path / "kunden.csv"
    upload.write_text(CSV_TEXT, encoding="utf-8")
    sign_in_with_password(page, server, "operator@acme.test")
    page.goto(f"{server}/campaigns/{cid}")
    page.get_by_role("link", name="Import leads →").click()

    page.get_by_label("CSV file").set_input_files(str(upload))
    page.get_by_label("Delimiter").select_option(label="Detect it")
    page.get_by_label("Default country").select_option("DE")
    expect(page.get_by_label("Infer the time zone from the phone number")).to_be_checked()
    shot(page, "import-1-upload")
    page.get_by_role("button", name="Upload and match columns").click()

    expect(page.get_by_role("heading", name="Match columns")).to_be_visible()
    expect(page.get_by_label("Column Mobile holds")).to_have_value("phone")
    expect(page.get_by_label("Column E-Mail holds")).to_have_value("email")
    expect(page.get_by_test_id("preview-rows").locator("tr")).to_have_count(3)
    page.get_by_label("Column Vorname holds").select_option(label="First name")
    page.get_by_label("Column Plan holds").select_option(label="attribute: plan")
    shot(page, "import-2-match-columns")
    page.get_by_role("button", name="Import leads").click()

    expect(page.get_by_role("heading", name="Leads imported")).to_be_visible()
    expect(page.get_by_test_id("count-accepted")).to_have_text("2")
    expect(page.get_by_test_id("count-rejected")).to_have_text("1")
    rejected = page.get_by_test_id("rejected-row")
    expect(rejected).to_have_count(1)
    expect(rejected).to_contain_text("phone:")
    shot(page, "import-3-result")
    with page.expect_download() as info:
        page.get_by_role("link", name=re.compile("Download all 1 rejected row")).click()
    rows = list(csv.reader(io.StringIO(open(info.value.path(), encoding="utf-8").read())))
    assert rows[0] == ["row", "Mobile", "Vorname", "E-Mail", "Plan", "reasons"]
    assert rows[1][:5] == ["3", "12", "Bad", "bad@example.com", "none"] and "phone" in rows[1][5]

    stored = {lead["first_name"]: lead for lead in leads.list_leads(ctx, owner, cid)["items"]}
    assert set(stored) == {"Jürgen", "Anna"}
    assert stored["Anna"]["attributes"] == {"plan": "silver"} and stored["Anna"]["timezone"] == "Europe/Berlin"
    assert page.js_dialogs == []
