"""The pure parts of CSV import options: sniffing, mapping, phones, spreadsheet-safe cells."""

from __future__ import annotations

import phonenumbers
import pytest

from drumbeat.domain.exceptions import ValidationFailed
from drumbeat.domain.spreadsheet import safe_cell
from drumbeat.services.leads import (
    csv_records,
    header_columns,
    normalize_phone,
    parse_mapping,
    phone_timezone,
    sniff_delimiter,
)


@pytest.mark.parametrize(("line", "expected"), [
    ("phone;first_name;last_name\n", ";"), ("phone\tfirst_name\n", "\t"), ("phone,first_name\n", ","),
    ("phone\n", ","), ('"Name, full";phone\n', ";"), ("", ","),
])
def test_the_delimiter_is_sniffed_from_the_header_line_else_a_comma(line, expected):
    assert sniff_delimiter(line) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"), ("+49151", "'+49151"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("Ann", "Ann"), ("", ""), (None, ""), (12, "12"), ("a=b", "a=b"),
])
def test_cells_that_a_spreadsheet_would_run_get_a_leading_quote(value, expected):
    assert safe_cell(value) == expected


def test_a_mapping_names_fields_attributes_or_ignore_and_the_rest_keep_their_default():
    mapping = parse_mapping('{"Mobile": "phone", "Firma": "attributes.company", "Notes": "ignore"}')
    assert header_columns(["Mobile", "Firma", "Notes", "Email", "Size"], mapping, {"phone": "whatsapp"}) == [
        "phone", ("company",), None, "email", ("Size",)]


def test_a_malformed_record_comes_with_its_text():
    records = list(csv_records(['phone,first_name\n', '+491,"Dee"x\n', '+492,Eve\n']))
    assert records[1][0] == 1 and records[1][1] == ['+491,"Dee"x'] and "malformed" in records[1][2]
    assert records[2] == (2, ["+492", "Eve"], None)


def test_a_national_number_needs_a_default_country():
    with pytest.raises(ValueError, match="international"):
        normalize_phone("030 1234567")
    assert normalize_phone("030 1234567", "DE") == "+49301234567"
    assert normalize_phone("+1 415 555 0100", "DE") == "+14155550100"  # an explicit country wins


def test_a_phone_has_a_zone_only_where_its_numbering_plan_gives_one():
    assert phone_timezone(phonenumbers.parse("+49301234567")) == "Europe/Berlin"
    assert phone_timezone(phonenumbers.parse("+18002530000")) is None


def test_a_mapping_that_is_not_an_object_of_targets_is_refused():
    for text in ("[]", '{"a": 1}', "{", '{"a": "favourite_colour"}'):
        with pytest.raises(ValidationFailed):
            parse_mapping(text)
