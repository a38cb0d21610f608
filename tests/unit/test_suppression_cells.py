"""Pure helpers of the suppression list: how a search is read, and how an exported cell
reads back."""

from __future__ import annotations

import pytest

from drumbeat.domain.consent import search_needle
from drumbeat.domain.spreadsheet import read_cell, safe_cell


@pytest.mark.parametrize(("typed", "needle"), [
    ("0049 151 2345", "+491512345"), ("+49 (151) 23-45", "+491512345"), ("6701", "6701"),
    ("  Anna@Example.COM ", "anna@example.com"), ("example", "example"), ("%_", "%_"),
])
def test_a_search_is_read_as_the_addresses_are_stored(typed, needle):
    assert search_needle(typed) == needle


@pytest.mark.parametrize("value", ["+4915123456701", "=cmd|calc!a0@example.com", "-x", "@home", "plain", "",
                                   "'quoted", "'"])
def test_a_cell_made_safe_for_a_spreadsheet_reads_back_as_it_was(value):
    assert read_cell(safe_cell(value)) == value
