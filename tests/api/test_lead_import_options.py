"""CSV import options (API.md v1.1): mapping, delimiter, encoding, default_country,
infer_timezone; every rejected row kept and downloadable as rejected.csv."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from drumbeat.engine.sweeper import Sweeper
from drumbeat.services import leads as lead_service
from drumbeat.services.workspaces import init_workspace
from drumbeat.store.tables import import_rejections, imports
from tests.api.test_bad_input import error_of, fields_of
from tests.api.test_leads import EMAIL, WHATSAPP, all_leads, headers_for, new_campaign

API = "/api/v1"


def post(client, owner, campaign_id, body: str | bytes, **params):
    if "mapping" in params:
        params["mapping"] = json.dumps(params["mapping"])
    return client.post(f"{API}/campaigns/{campaign_id}/leads/import", params=params,
                       content=body.encode() if isinstance(body, str) else body,
                       headers={**owner["headers"], "Content-Type": "text/csv"})


def rejected_csv(client, headers, import_id) -> list[list[str]]:
    response = client.get(f"{API}/imports/{import_id}/rejected.csv", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def count(ctx, table) -> int:
    with ctx.db.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture
def campaign(ctx, owner):
    return new_campaign(ctx, owner)  # one WhatsApp step: a phone column is needed


# --- mapping ------------------------------------------------------------------------------

def test_a_mapping_sends_columns_to_fields_attributes_or_nowhere(client, ctx, owner, campaign):
    body = ("Mobile,Given name,Firma,Notes,Surname\n"
            "+4915123456701,Ann,Acme,call after 5,Smith\n")
    mapping = {"Mobile": "phone", "Given name": "first_name", "Firma": "attributes.company", "Notes": "ignore"}
    response = post(client, owner, campaign, body, mapping=mapping)

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    [lead] = all_leads(ctx, campaign)
    assert (lead["phone"], lead["first_name"], lead["last_name"]) == ("+4915123456701", "Ann", None)
    # A column the mapping leaves out keeps the default: not a field's name, so an attribute.
    assert lead["attributes"] == {"company": "Acme", "Surname": "Smith"}


@pytest.mark.parametrize(("header", "mapping", "field", "named"), [
    ("Mobile,Tel\n", {"Mobile": "phone", "Tel": "phone"}, "mapping", ["'Mobile'", "'Tel'", "phone"]),
    ("phone,Mobile\n", {"Mobile": "phone"}, "mapping", ["'phone'", "'Mobile'"]),  # the default meets the mapping
    ("Mobile,Age\n", {"Mobile": "phone", "Age": "age"}, "mapping.Age", ["'Age'", "'age'"]),
    ("Mobile\n", {"Mobile": "phone", "Fax": "ignore"}, "mapping.Fax", ["'Fax'"]),
    ("Mobile,Name\n", {"Mobile": "ignore"}, "mapping", ["phone", "whatsapp"]),
    ("Mobile,Name\n", {"Mobile": "attributes."}, "mapping.Mobile", ["'Mobile'"]),
], ids=["two-columns-one-field", "default-and-mapped-on-one-field", "unknown-field", "column-not-in-header",
        "no-address-column", "attribute-without-name"])
def test_mapping_errors_are_422_naming_the_columns_and_import_nothing(client, ctx, owner, campaign, header,
                                                                      mapping, field, named):
    response = post(client, owner, campaign, header + "+4915123456701,x\n", mapping=mapping)

    problems = error_of(response, 422, "validation_error")["details"]["fields"]
    assert [p["field"] for p in problems] == [field]
    assert all(name in problems[0]["message"] for name in named), problems
    assert all_leads(ctx, campaign) == [] and count(ctx, imports) == 0


def test_without_a_mapping_a_header_lacking_the_needed_address_is_a_422(client, ctx, owner):
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL])
    response = post(client, owner, campaign, "phone,first_name\n+4915123456701,Ann\n")

    problems = error_of(response, 422, "validation_error")["details"]["fields"]
    assert problems == [{"field": "header", "message": "no column for email: a email step sends to it"}]
    assert all_leads(ctx, campaign) == []


@pytest.mark.parametrize("mapping", ["not json", "[1]", '{"a": 1}'])
def test_a_mapping_that_is_not_an_object_of_names_is_a_422(client, owner, campaign, mapping):
    response = client.post(f"{API}/campaigns/{campaign}/leads/import", params={"mapping": mapping},
                           content=b"phone\n", headers={**owner["headers"], "Content-Type": "text/csv"})
    assert fields_of(response) == ["mapping"]


# --- delimiter and encoding ---------------------------------------------------------------

@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolon", "tab"])
@pytest.mark.parametrize("explicit", [False, True], ids=["sniffed", "explicit"])
def test_semicolon_and_tab_files_are_read_sniffed_or_as_told(client, ctx, owner, campaign, delimiter, explicit):
    body = delimiter.join(["phone", "first_name", "note"]) + "\n" + \
        delimiter.join(["+4915123456701", "Ann", "a, b"]) + "\n"
    params = {"delimiter": delimiter} if explicit else {}
    response = post(client, owner, campaign, body, **params)

    assert response.json()["accepted"] == 1, response.text
    [lead] = all_leads(ctx, campaign)
    assert (lead["first_name"], lead["attributes"]) == ("Ann", {"note": "a, b"})


def test_a_tab_sent_percent_encoded_in_the_url_is_the_tab_delimiter(client, ctx, owner, campaign):
    response = client.post(f"{API}/campaigns/{campaign}/leads/import?delimiter=%09",
                           content=b"phone\tfirst_name\n+4915123456701\tAnn\n",
                           headers={**owner["headers"], "Content-Type": "text/csv"})
    assert response.json()["accepted"] == 1, response.text


def test_a_comma_file_stays_one_column_when_told_semicolon(client, ctx, owner, campaign):
    response = post(client, owner, campaign, "phone,first_name\n+4915123456701,Ann\n", delimiter=";")
    # The one column "phone,first_name" is not a field: no phone column for the WhatsApp step.
    assert fields_of(response) == ["header"]


def test_a_utf8_bom_is_dropped_before_the_delimiter_is_sniffed(client, ctx, owner, campaign):
    response = post(client, owner, campaign, "\ufeffphone;first_name\n+4915123456701;Zoë\n".encode())
    assert response.json()["accepted"] == 1, response.text
    assert all_leads(ctx, campaign)[0]["first_name"] == "Zoë"


def test_windows_1252_files_are_read_when_the_request_says_so(client, ctx, owner, campaign):
    body = "phone;first_name;price\n+4915123456701;René;5 €\n".encode("cp1252")
    response = post(client, owner, campaign, body, encoding="windows-1252")

    assert response.json()["accepted"] == 1, response.text
    [lead] = all_leads(ctx, campaign)
    assert (lead["first_name"], lead["attributes"]) == ("René", {"price": "5 €"})


def test_windows_1252_bytes_read_as_utf8_reject_their_row_with_a_reason(client, ctx, owner, campaign):
    body = "phone,first_name\n+4915123456701,René\n+4915123456702,Ann\n".encode("cp1252")
    answer = post(client, owner, campaign, body).json()

    assert (answer["accepted"], answer["rejected_total"]) == (1, 1)
    assert answer["rejected"] == [{"row": 1, "errors": [{"field": "first_name",
                                                         "message": "contains a NUL character or invalid UTF-8"}]}]
    table = rejected_csv(client, owner["headers"], answer["import_id"])
    assert table[1] == ["1", "'+4915123456701", "Ren\ufffd", "first_name: contains a NUL character or invalid UTF-8"]


@pytest.mark.parametrize("params", [{"encoding": "latin-1"}, {"delimiter": "|"}, {"default_country": "XX"},
                                    {"default_country": "Germany"}, {"infer_timezone": "maybe"}])
def test_unknown_options_are_a_422_naming_them_and_import_nothing(client, ctx, owner, campaign, params):
    response = post(client, owner, campaign, "phone\n+4915123456701\n", **params)
    assert [f.split(".")[-1] for f in fields_of(response)] == list(params)
    assert all_leads(ctx, campaign) == []


# --- phones: default country and time zone ------------------------------------------------

def test_a_national_number_is_read_in_the_default_country(client, ctx, owner, campaign):
    body = "phone\n030 1234567\n+14155550100\n"
    assert post(client, owner, campaign, body).json()["rejected"][0]["row"] == 1  # no country: refused

    answer = post(client, owner, campaign, body, default_country="de").json()
    assert answer["accepted"] == 1 and answer["duplicates"] == 1  # +1 415 came in the first time
    assert sorted(lead["phone"] for lead in all_leads(ctx, campaign)) == ["+14155550100", "+49301234567"]


def test_a_lead_without_a_zone_gets_its_phones_only_zone(client, ctx, owner, campaign):
    body = ("phone,timezone\n"
            "+49301234567,\n"          # Berlin: one zone
            "+18002530000,\n"          # US toll-free: many zones, so none
            "+49301234568,Asia/Tokyo\n")  # a zone given is kept
    assert post(client, owner, campaign, body).json()["accepted"] == 3
    assert [lead["timezone"] for lead in all_leads(ctx, campaign)] == ["Europe/Berlin", None, "Asia/Tokyo"]


def test_no_zone_is_inferred_when_turned_off(client, ctx, owner, campaign):
    answer = post(client, owner, campaign, "phone\n+49301234567\n", infer_timezone="false").json()
    assert answer["accepted"] == 1
    assert all_leads(ctx, campaign)[0]["timezone"] is None


# --- rejected rows ------------------------------------------------------------------------

def test_every_rejected_row_is_downloadable_with_reasons_and_formulas_defused(client, ctx, owner, campaign):
    bad = [f"12{i},=cmd|' /C calc'!A{i},-{i}" for i in range(1, 1501)]
    body = "phone,first_name,@score\n+4915123456700,Ann,1\n" + "\n".join(bad) + "\n+4915123456799,Bo,2,extra\n"
    answer = post(client, owner, campaign, body).json()

    assert answer["accepted"] == 1
    assert len(answer["rejected"]) == lead_service.MAX_REJECTED_KEPT == 1000
    assert answer["rejected_total"] == answer["rejected_count"] == 1501
    table = rejected_csv(client, owner["headers"], answer["import_id"])
    assert table[0] == ["row", "phone", "first_name", "'@score", "reasons"]
    assert len(table) == 1 + 1501
    assert [int(r[0]) for r in table[1:]] == list(range(2, 1503))
    assert table[1] == ["2", "121", "'=cmd|' /C calc'!A1", "'-1",
                        "phone: must be an international number starting with + or 00 (digits only)"]
    assert table[-1] == ["1502", "'+4915123456799", "Bo", "2", "extra", "row: has 4 cells; the header has 3"]


def test_a_malformed_record_is_downloadable_as_its_text(client, ctx, owner, campaign):
    answer = post(client, owner, campaign, 'phone,first_name\n+4915123456701,"Dee"x\n').json()
    table = rejected_csv(client, owner["headers"], answer["import_id"])
    assert table[1][:2] == ["1", "'+4915123456701,\"Dee\"x"] and "malformed CSV" in table[1][2]


def test_an_import_without_rejections_has_an_empty_rejected_csv(client, ctx, owner, campaign):
    answer = post(client, owner, campaign, "phone\n+4915123456701\n").json()
    assert rejected_csv(client, owner["headers"], answer["import_id"]) == [["row", "phone", "reasons"]]


def test_a_viewer_may_download_but_another_workspace_or_an_unknown_id_is_404(client, ctx, owner, campaign):
    answer = post(client, owner, campaign, "phone\nbad\n").json()
    assert len(rejected_csv(client, headers_for(ctx, owner, "viewer"), answer["import_id"])) == 2

    rival = init_workspace(ctx, "Rival", "boss@rival.test")
    for import_id, headers in [(answer["import_id"], {"Authorization": f"Bearer {rival['token']}"}),
                               ("0" * 32, owner["headers"]), ("not-an-id", owner["headers"])]:
        response = client.get(f"{API}/imports/{import_id}/rejected.csv", headers=headers)
        error_of(response, 404, "not_found")


def test_rejected_rows_expire_after_seven_days_and_the_sweeper_deletes_them(client, ctx, owner, campaign):
    old = post(client, owner, campaign, "phone\nbad\nworse\n").json()["import_id"]
    with ctx.db.begin() as conn:
        conn.execute(update(imports).where(imports.c.id == old)
                     .values(created_at=ctx.clock() - lead_service.IMPORT_KEEP - timedelta(minutes=1)))
    error_of(client.get(f"{API}/imports/{old}/rejected.csv", headers=owner["headers"]), 404, "not_found")
    assert count(ctx, import_rejections) == 2

    new = post(client, owner, campaign, "phone\nbad\n").json()["import_id"]
    assert Sweeper(ctx).sweep_once().pruned_imports == 1
    with ctx.db.connect() as conn:
        assert conn.execute(select(imports.c.id)).scalars().all() == [new]
        assert conn.execute(select(imports.c.counts)).scalar_one() == {"accepted": 0, "duplicates": 0,
                                                                       "rejected": 1}
    assert count(ctx, import_rejections) == 1
