"""Lead validation and CSV reading: pure functions, no database."""

from __future__ import annotations

import pytest

from drumbeat.domain.exceptions import ValidationFailed
from drumbeat.services.leads import (
    check_linkedin_url,
    check_timezone,
    csv_rows,
    header_columns,
    normalize_email,
    normalize_phone,
    required_addresses,
    row_to_raw,
    text_lines,
    validate_lead,
)

PHONE = {"phone": "whatsapp"}


@pytest.mark.parametrize(("given", "expected"), [
    ("+4915123456789", "+4915123456789"),
    ("+49 151 2345 6789", "+4915123456789"),
    ("004915123456789", "+4915123456789"),
    (" +1 (650) 253-0000 ", "+16502530000"),
    ("+44 7911 123456", "+447911123456"),
])
def test_phones_are_normalised_to_e164(given, expected):
    assert normalize_phone(given) == expected


@pytest.mark.parametrize("given", [
    "015123456789",       # national format: no country, and no region is guessed
    "4915123456789",      # digits without + or 00
    "+1",                 # too short to parse
    "+49 123",            # parses, not a valid number
    "+999 1234567",       # no such country code
    "+44 7911 12345678",  # one digit too many
    "+1-800-FLOWERS",     # vanity letters are not accepted from a data file
    "+49 151 2345 6789 ext. 12",
    "phone",
    "+",
])
def test_bad_phones_are_refused(given):
    with pytest.raises(ValueError):
        normalize_phone(given)


def test_emails_are_checked_for_syntax_and_normalised():
    assert normalize_email(" John.Doe@Example.COM ") == "john.doe@example.com"
    # Syntax only: a domain that does not exist is fine (no DNS look-ups).
    assert normalize_email("a@no-such-domain-xq7z.com") == "a@no-such-domain-xq7z.com"
    for bad in ("john", "john@", "@example.com", "john@@example.com", "jo hn@example.com"):
        with pytest.raises(ValueError):
            normalize_email(bad)


def test_time_zones_must_be_iana_names():
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"
    assert check_timezone("UTC") == "UTC"
    for bad in ("Mars/Olympus", "CEST", "europe/berlin", "../etc/passwd", "+02:00"):
        with pytest.raises(ValueError):
            check_timezone(bad)


def test_linkedin_urls_must_be_http():
    assert check_linkedin_url("https://www.linkedin.com/in/jane") == "https://www.linkedin.com/in/jane"
    for bad in ("linkedin.com/in/jane", "ftp://linkedin.com/in/jane", "https://", "javascript:alert(1)",
                "https://linkedin.com/in/ja ne"):
        with pytest.raises(ValueError):
            check_linkedin_url(bad)


def test_required_addresses_follow_the_steps_channels():
    steps = [{"channel": "whatsapp"}, {"channel": "sms"}, {"channel": "email"}]
    assert required_addresses(steps) == {"phone": "whatsapp", "email": "email"}
    assert required_addresses([{"channel": "linkedin"}]) == {"linkedin_url": "linkedin"}


def test_a_valid_lead_is_normalised():
    lead, errors = validate_lead({"phone": "0049 151 23456789", "email": "A@B.example", "first_name": " Ann ",
                                  "timezone": "Europe/Berlin", "attributes": {"plan": "pro", "seats": 3}}, PHONE)
    assert errors == []
    assert lead == {"phone": "+4915123456789", "email": "a@b.example", "linkedin_url": None, "first_name": "Ann",
                    "last_name": None, "timezone": "Europe/Berlin", "attributes": {"plan": "pro", "seats": 3}}


def fields(errors):
    return sorted(e["field"] for e in errors)


def test_every_problem_of_a_lead_is_named():
    lead, errors = validate_lead({"phone": "12345", "timezone": "Nowhere/Town", "colour": "red",
                                  "attributes": {"nested": {"a": 1}, "list": [1]}}, {"phone": "sms", "email": "email"})
    assert lead is None
    assert fields(errors) == ["attributes.list", "attributes.nested", "colour", "email", "phone", "timezone"]
    assert {"field": "colour", "message": "unknown field"} in errors


def test_missing_address_names_the_channel():
    _, errors = validate_lead({"email": "a@b.example", "phone": "  "}, PHONE)
    assert errors == [{"field": "phone", "message": "is required: a whatsapp step sends to it"}]


def test_types_and_text_are_checked():
    _, errors = validate_lead({"phone": 4915123456789, "first_name": "x" * 201, "last_name": "a\x00b",
                               "attributes": "plan=pro"}, {})
    assert fields(errors) == ["attributes", "first_name", "last_name", "phone"]
    _, errors = validate_lead({"phone": "+4915123456789", "attributes": {"x": float("nan"), "ok": 1.5}}, PHONE)
    assert fields(errors) == ["attributes.x"]
    _, errors = validate_lead(["+4915123456789"], PHONE)
    assert errors == [{"field": "lead", "message": "must be an object"}]


# --- CSV reading ----------------------------------------------------------------------------

def read(chunks, charset="utf-8"):
    return list(csv_rows(text_lines(chunks, charset)))


def test_bom_is_dropped_even_when_split_across_chunks():
    data = "\ufeffphone,first_name\n+4915123456789,Ann\n".encode()
    rows = read([data[:1], data[1:2], data[2:5], data[5:]])
    assert rows == [(0, ["phone", "first_name"], None), (1, ["+4915123456789", "Ann"], None)]


def test_quoted_newlines_and_multibyte_characters_survive_any_chunking():
    data = 'first_name,note\n"Zoë","line one\nline two"\nBjörn,plain\n'.encode()
    expected = [(0, ["first_name", "note"], None), (1, ["Zoë", "line one\nline two"], None),
                (2, ["Björn", "plain"], None)]
    assert read([data]) == expected
    assert read([data[i:i + 1] for i in range(len(data))]) == expected  # byte by byte


def test_invalid_utf8_marks_only_its_row():
    rows = read([b"phone,first_name\n+4915123456789,Ann\n+4915123456780,\xff\xfeBob\n"])
    columns = header_columns(rows[0][1])
    _, errors = validate_lead(row_to_raw(columns, rows[2][1]), PHONE)
    assert errors == [{"field": "first_name", "message": "contains a NUL character or invalid UTF-8"}]
    lead, errors = validate_lead(row_to_raw(columns, rows[1][1]), PHONE)
    assert errors == [] and lead["first_name"] == "Ann"


def test_crlf_line_endings():
    rows = read([b'phone,note\r\n+4915123456789,"a\r\nb"\r\n'])
    assert rows == [(0, ["phone", "note"], None), (1, ["+4915123456789", "a\r\nb"], None)]


def test_other_charsets_are_decoded():
    rows = read(["first_name\nJosé\n".encode("latin-1")], charset="latin-1")
    assert rows[1] == (1, ["José"], None)


def test_malformed_records_are_reported_and_reading_goes_on():
    rows = read([b'a,b\n1,"2"x\n3,4\n5,"unterminated\n'])
    assert rows[0] == (0, ["a", "b"], None)
    assert rows[1][0] == 1 and rows[1][1] is None and "malformed CSV" in rows[1][2]
    assert rows[2] == (2, ["3", "4"], None)
    assert rows[3][0] == 3 and rows[3][1] is None


def test_header_maps_lead_fields_and_attributes():
    columns = header_columns(["Phone", " email ", "Company", "first_name"])
    assert columns == ["phone", "email", ("Company",), "first_name"]
    raw = row_to_raw(columns, ["+4915123456789", "", "=HYPERLINK(\"x\")", "Ann"])
    assert raw == {"phone": "+4915123456789", "email": "", "first_name": "Ann",
                   "attributes": {"Company": '=HYPERLINK("x")'}}
    with pytest.raises(ValueError, match="has 2 cells; the header has 4"):
        row_to_raw(columns, ["1", "2"])


def test_bad_headers_are_refused():
    with pytest.raises(ValidationFailed):
        header_columns(["phone", "PHONE"])
    with pytest.raises(ValidationFailed):
        header_columns(["phone", ""])
