"""Cells of the CSV files Drumbeat writes, made safe to open in a spreadsheet.

A cell that starts with `=`, `+`, `-` or `@` is a formula to Excel, LibreOffice and
Google Sheets: a lead's name `=HYPERLINK(...)` in a downloaded file would run when the
operator opens it (CSV injection). A tab or carriage return first lets some spreadsheets
skip to the formula behind it (OWASP's list). Such a cell gets a leading single quote,
which the spreadsheet shows as text and hides.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def safe_row(values) -> list[str]:
    return [safe_cell(v) for v in values]


def read_cell(text: str) -> str:
    """A cell of a file Drumbeat (or a careful spreadsheet) wrote, as it was meant: the
    quote safe_cell put before a formula start is dropped, so an export imports back."""
    return text[1:] if text.startswith("'") and text[1:2] in FORMULA_STARTS else text
