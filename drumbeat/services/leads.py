"""Lead use cases: import (JSON and streamed CSV), listing, detail, resolving in-doubt leads.

The validation functions at the top are pure (no I/O): tests/unit runs them alone.

Import rules (API.md, Campaigns):
- Rows are validated one by one; a bad row is reported and never stops the good ones.
- Valid rows are inserted in batches of BATCH_SIZE, each batch its own transaction, so a
  CSV of a million rows imports in bounded memory. Batches already committed stay if the
  import stops half-way (client gone, database down, or the campaign canceled meanwhile:
  409, and the cancel has already canceled the leads imported so far).
- A row whose phone, email or LinkedIn URL the campaign already has (from before, or
  from an earlier row of the same import) is a duplicate: skipped and counted.
- Only the first MAX_REJECTED_KEPT rejections are listed; `rejected_count` (and
  `rejected_total`, its v1.1 name) is the total. A CSV import keeps every rejected row, its
  cells as read and its reasons, for IMPORT_KEEP (GET /imports/{id}/rejected.csv), written
  in batches like the leads; the sweeper deletes older imports (prune_imports).
- CSV options (API.md v1.1): `mapping` (column -> lead field, `attributes.<name>` or
  "ignore"; a column it does not name keeps the default: a lead field's name is that field,
  any other column an attribute of its own name), `delimiter` (sniffed from the header
  line if not given), `default_country` (for national phone numbers), `infer_timezone` (a
  lead without a zone gets its phone number's when the number has exactly one).
- More than MAX_JSON_LEADS leads in one JSON call: 422 validation_error naming `leads`.
- CSV text that is not valid UTF-8 (or the declared charset) rejects the rows it is in
  (a NUL character too: no database keeps it as text); an undecodable header is a 422.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from itertools import chain
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import timezone as phone_timezones
from sqlalchemy.exc import DBAPIError

from drumbeat.domain.channels import ADDRESS_FIELD, Channel
from drumbeat.domain.exceptions import InvalidTransition, NotFound, ValidationFailed
from drumbeat.domain.leads import LeadProgress, LeadState, acceptance_wait, apply_outcome, retry_not_before
from drumbeat.domain.lifecycle import TERMINAL_STATUSES
from drumbeat.domain.spreadsheet import safe_row
from drumbeat.services.context import Context, Principal
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import imports as import_store
from drumbeat.store import leads as store
from drumbeat.store.ids import new_id

ADDRESS_FIELDS = ("phone", "email", "linkedin_url")
TEXT_FIELDS = {"first_name": 200, "last_name": 200}  # field -> max length (the column's)
LEAD_FIELDS = (*ADDRESS_FIELDS, *TEXT_FIELDS, "timezone")
MAX_JSON_LEADS = 10_000
BATCH_SIZE = 1_000
MAX_REJECTED_KEPT = 1_000
LEAD_STATES = frozenset(s.value for s in LeadState)
MAX_LINE_CHARS = 1 << 20  # a CSV line longer than this is cut (and its row rejected)
DEFAULT_CHARSET = "utf-8"
DELIMITERS = (",", ";", "\t")
IGNORE = "ignore"
ATTRIBUTE_PREFIX = "attributes."
IMPORT_KEEP = timedelta(days=7)  # how long an import's rejected rows can be downloaded
MAX_PENDING_REJECTED_CHARS = 4 << 20  # rejected rows' text held before a write, at most

# NUL and lone surrogates (how undecodable bytes arrive, via surrogateescape) are not text.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# ASCII digits only: other scripts' digits (Arabic-Indic, fullwidth) are refused, not
# silently converted — a number that does not look like one is more likely an error.
_PHONE_CHARS = re.compile(r"^\+[0-9\s().\-/]+$")
_NATIONAL_PHONE_CHARS = re.compile(r"^[0-9\s().\-/]+$")


# --- validation (pure) ------------------------------------------------------------------

def parse_phone(value: str, region: str | None = None) -> phonenumbers.PhoneNumber:
    """A valid number. The country must be explicit (leading + or 00) unless the import
    names `region` (its default_country) for national numbers: no region is guessed,
    because a wrong guess reaches a stranger."""
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    international = _PHONE_CHARS.match(text)
    if not international and not (region and _NATIONAL_PHONE_CHARS.match(text)):
        raise ValueError("must be an international number starting with + or 00 (digits only)" if not region
                         else "must be a phone number (digits only)")
    try:
        number = phonenumbers.parse(text, None if international else region)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number")
    return number


def normalize_phone(value: str, region: str | None = None) -> str:
    """E.164 (see parse_phone)."""
    return phonenumbers.format_number(parse_phone(value, region), phonenumbers.PhoneNumberFormat.E164)


def phone_timezone(number: phonenumbers.PhoneNumber) -> str | None:
    """The number's time zone where its numbering plan gives exactly one (a Berlin number:
    Europe/Berlin; a US toll-free number spans many, so none)."""
    zones = phone_timezones.time_zones_for_number(number)
    return zones[0] if len(zones) == 1 and zones[0] in _zones() else None


def normalize_email(value: str) -> str:
    """Syntax only (no DNS). Lowercased whole: providers treat the local part case-
    insensitively, and `John@x` and `john@x` must dedupe and suppress as one person."""
    try:
        # As for users (schemas._email): special-use domains such as `.test` are valid syntax.
        return validate_email(value.strip(), check_deliverability=False, globally_deliverable=False,
                              test_environment=True).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) - {"localtime"}  # the server's own zone, not an IANA name


def check_timezone(value: str) -> str:
    text = value.strip()
    if text not in _zones():
        raise ValueError("is not an IANA time zone (like Europe/Berlin)")
    return text


def check_linkedin_url(value: str) -> str:
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        raise ValueError("must be an http(s) URL")
    if len(text) > 500:
        raise ValueError("is longer than 500 characters")
    return text


def required_addresses(steps: list[dict]) -> dict[str, str]:
    """Address field -> the first channel that needs it."""
    needed: dict[str, str] = {}
    for step in steps:
        needed.setdefault(ADDRESS_FIELD[Channel(step["channel"])], step["channel"])
    return needed


_NORMALIZE = {"email": normalize_email, "linkedin_url": check_linkedin_url,
              "timezone": check_timezone}


def validate_lead(raw: Any, required: dict[str, str], *, region: str | None = None,
                  infer_timezone: bool = False) -> tuple[dict | None, list[dict]]:
    """One lead as given (JSON object, or a CSV row mapped to the same keys) -> (the
    normalised lead, []) or (None, [{"field", "message"}, ...]). Empty strings are absent.
    `region`: the country of phone numbers written without one; `infer_timezone`: a lead
    without a zone gets its phone number's (phone_timezone)."""
    if not isinstance(raw, dict):
        return None, [{"field": "lead", "message": "must be an object"}]
    errors: list[dict] = []
    lead: dict = {}
    number = None
    for key in raw:
        if key not in LEAD_FIELDS and key != "attributes":
            errors.append({"field": str(key), "message": "unknown field"})
    for name in LEAD_FIELDS:
        value = raw.get(name)
        lead[name] = None
        if value is None or (isinstance(value, str) and not value.strip()):
            if name in required:
                errors.append({"field": name, "message": f"is required: a {required[name]} step sends to it"})
        elif not isinstance(value, str):
            errors.append({"field": name, "message": "must be a string"})
        elif _BAD_TEXT.search(value):
            errors.append({"field": name, "message": "contains a NUL character or invalid UTF-8"})
        elif name == "phone":
            try:
                number = parse_phone(value, region)
            except ValueError as exc:
                errors.append({"field": name, "message": str(exc)})
            else:
                lead[name] = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        elif name in _NORMALIZE:
            try:
                lead[name] = _NORMALIZE[name](value)
            except ValueError as exc:
                errors.append({"field": name, "message": str(exc)})
        elif len(value.strip()) > TEXT_FIELDS[name]:
            errors.append({"field": name, "message": f"is longer than {TEXT_FIELDS[name]} characters"})
        else:
            lead[name] = value.strip()
    attributes = raw.get("attributes")
    lead["attributes"] = {} if attributes is None else attributes
    errors.extend(_attribute_errors(attributes))
    if errors:
        return None, errors
    if infer_timezone and number is not None and lead["timezone"] is None:
        lead["timezone"] = phone_timezone(number)
    return lead, []


def _attribute_errors(attributes: Any) -> list[dict]:
    if attributes is None:
        return []
    if not isinstance(attributes, dict):
        return [{"field": "attributes", "message": "must be an object"}]
    errors = []
    for key, value in attributes.items():
        if _BAD_TEXT.search(key) or (isinstance(value, str) and _BAD_TEXT.search(value)):
            errors.append({"field": f"attributes.{key}", "message": "contains a NUL character or invalid UTF-8"})
            continue
        scalar = value is None or isinstance(value, str | int | float | bool)
        if not scalar or (isinstance(value, float) and not math.isfinite(value)):  # NaN: not JSON to PostgreSQL
            errors.append({"field": f"attributes.{key}", "message": "must be a string, number, boolean or null"})
    return errors


# --- CSV reading (pure, streaming) ------------------------------------------------------

def text_lines(chunks: Iterable[bytes], charset: str = DEFAULT_CHARSET) -> Iterator[str]:
    """Bytes as they arrive -> lines ending in "\\n", decoded incrementally. Undecodable
    bytes become lone surrogates (surrogateescape) so the row holding them is rejected,
    not the whole file. A UTF-8 BOM is dropped."""
    name = codecs.lookup(charset).name
    decoder = codecs.getincrementaldecoder("utf-8-sig" if name == "utf-8" else name)(errors="surrogateescape")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        if "\n" in pending:
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line + "\n"
        elif len(pending) > MAX_LINE_CHARS:
            yield pending  # a runaway line: keep memory bounded; csv will reject it
            pending = ""
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


class _Tap:
    """The lines the csv reader has taken since the last record: a malformed record's text."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = iter(lines)
        self.taken: list[str] = []

    def __iter__(self) -> _Tap:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.taken.append(line)
        return line

    def take(self) -> str:
        text, self.taken = "".join(self.taken), []
        return text


def csv_records(lines: Iterable[str], delimiter: str = ",") -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(row number, cells, None) or (row number, [the record's text], parse error); the
    header is row 0.

    Rows are records, not lines: a quoted cell may hold newlines. A malformed record
    (stray quote, cell over the csv module's 128 KiB limit) is reported with its text and
    reading goes on with the next line."""
    tap = _Tap(lines)
    reader = csv.reader(tap, delimiter=delimiter, strict=True)
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield number, [tap.take().rstrip("\r\n")], f"malformed CSV: {exc}"
        else:
            tap.taken.clear()
            yield number, cells, None
        number += 1


def csv_rows(lines: Iterable[str], delimiter: str = ",") -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(row number, cells, None) or (row number, None, parse error); see csv_records."""
    for number, cells, problem in csv_records(lines, delimiter):
        yield number, None if problem else cells, problem


def sniff_delimiter(header_line: str) -> str:
    """The header line's delimiter among DELIMITERS; a comma when it cannot tell (one column)."""
    try:
        return csv.Sniffer().sniff(header_line, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","


Column = str | tuple[str] | None  # a lead field, (attribute name,), or None: ignored


def parse_mapping(text: str | None) -> dict[str, str] | None:
    """The `mapping` query parameter (JSON: CSV column -> target) checked for its targets;
    whether its columns exist is for the header to say (header_columns)."""
    if text is None:
        return None
    try:
        mapping = json.loads(text)
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ValidationFailed([{"field": "mapping", "message": "must be a JSON object: CSV column -> lead field, "
                                                                 "attributes.<name> or ignore"}])
    problems = []
    for column, target in mapping.items():
        if _BAD_TEXT.search(column) or _BAD_TEXT.search(target):
            problems.append({"field": "mapping", "message": "may not contain NUL characters or unpaired surrogates"})
        elif _target_column(target) is False:
            problems.append({"field": f"mapping.{column}", "message": (
                f"column {column!r}: unknown field {target!r} (use {', '.join(LEAD_FIELDS)}, "
                "attributes.<name> or ignore)")})
    if problems:
        raise ValidationFailed(problems, "the mapping is not valid")
    return {column.strip(): target for column, target in mapping.items()}


def _target_column(target: str) -> Column | bool:
    """A mapping's target -> its Column; False if there is no such target."""
    if target == IGNORE:
        return None
    if target in LEAD_FIELDS:
        return target
    name = target.removeprefix(ATTRIBUTE_PREFIX)
    return (name,) if target.startswith(ATTRIBUTE_PREFIX) and name.strip() else False


def header_columns(cells: list[str], mapping: dict[str, str] | None = None,
                   required: dict[str, str] | None = None) -> list[Column]:
    """The header's columns: as `mapping` says (parse_mapping), else lead fields by name
    (case-insensitive) and any other column -> (attribute name,). 422 naming the columns
    when two go to one field, a mapped column is not in the header, or no column gives an
    address the campaign's steps need (`required`, as from required_addresses)."""
    mapping = mapping or {}
    columns: list[Column] = []
    names: list[str] = []
    problems = []
    for i, cell in enumerate(cells, start=1):
        name = cell.strip()
        if not name or _BAD_TEXT.search(name):
            problems.append({"field": "header", "message": f"column {i} has no name or is not valid text"})
            continue
        if name in names:
            problems.append({"field": "header", "message": f"column {name!r} appears twice"})
        names.append(name)
        if name in mapping:
            columns.append(_target_column(mapping[name]))  # type: ignore[arg-type]  # checked by parse_mapping
        else:
            columns.append(name.lower() if name.lower() in LEAD_FIELDS else (name,))
    if problems:
        raise ValidationFailed(problems, "the CSV header is not valid")
    problems.extend({"field": f"mapping.{column}", "message": f"column {column!r} is not in the CSV header"}
                    for column in mapping if column not in names)
    by_target: dict[str, list[str]] = {}
    for name, column in zip(names, columns, strict=True):
        if column is not None:
            by_target.setdefault(column if isinstance(column, str) else ATTRIBUTE_PREFIX + column[0], []).append(name)
    # Without a mapping the header alone is at fault (two columns named as one field, say).
    blame = "mapping" if mapping else "header"
    for target, sources in by_target.items():
        if len(sources) > 1:
            listed = " and ".join(repr(s) for s in sources)
            problems.append({"field": blame, "message": f"columns {listed} go to the same field, {target}"})
    problems.extend({"field": blame, "message": f"no column for {field}: a {channel} step sends to it"}
                    for field, channel in (required or {}).items() if field not in by_target)
    if problems:
        raise ValidationFailed(problems, "the CSV columns do not fit the campaign")
    return columns


def row_to_raw(columns: list[Column], cells: list[str]) -> dict:
    """A CSV row -> the same shape as a JSON lead (ValueError if it does not fit the
    header). Attribute cells are kept exactly as given: `=SUM(A1)` is only text here."""
    if len(cells) != len(columns):
        raise ValueError(f"has {len(cells)} cells; the header has {len(columns)}")
    raw: dict = {}
    attributes: dict = {}
    for column, cell in zip(columns, cells, strict=True):
        if isinstance(column, tuple):
            attributes[column[0]] = cell
        elif column is not None:
            raw[column] = cell
    raw["attributes"] = attributes
    return raw


# --- import -------------------------------------------------------------------------------

@dataclass
class ImportReport:
    key: str  # "row" (CSV) or "index" (JSON)
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, position: int, errors: list[dict]) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_KEPT:
            self.rejected.append({self.key: position, "errors": errors})

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected,
                "rejected_count": self.rejected_count, "rejected_total": self.rejected_count}


def is_clean_text(text: str) -> bool:
    """No NUL and no undecodable byte (text_lines reads those as lone surrogates)."""
    return not _BAD_TEXT.search(text)


def _printable(text: str) -> str:
    # Undecodable bytes (lone surrogates) and NUL: no database keeps them as text.
    return _BAD_TEXT.sub("\ufffd", text)


def reasons_text(errors: list[dict]) -> str:
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors)


class _RejectionLog:
    """Every rejected row of a CSV import, written in batches (never all held at once)."""

    def __init__(self, ctx: Context, workspace_id: str, import_id: str) -> None:
        self.ctx, self.workspace_id, self.import_id = ctx, workspace_id, import_id
        self.rows: list[dict] = []
        self.chars = 0

    def add(self, row: int, cells: list[str], errors: list[dict]) -> None:
        cells = [_printable(c) for c in cells]
        self.rows.append({"import_id": self.import_id, "row": row, "workspace_id": self.workspace_id,
                          "cells": cells, "reasons": _printable(reasons_text(errors)), "created_at": self.ctx.clock()})
        self.chars += sum(len(c) for c in cells)
        if len(self.rows) >= BATCH_SIZE or self.chars > MAX_PENDING_REJECTED_CHARS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            with self.ctx.db.begin() as conn:
                import_store.insert_rejections(conn, self.rows)
            self.rows, self.chars = [], 0


class _Importer:
    """Validates rows as they come and inserts them BATCH_SIZE at a time."""

    def __init__(self, ctx: Context, principal: Principal, campaign_id: str, key: str, *, region: str | None = None,
                 infer_timezone: bool = False) -> None:
        self.ctx, self.principal, self.campaign_id = ctx, principal, campaign_id
        self.region, self.infer_timezone = region, infer_timezone
        self.report = ImportReport(key)
        self.batch: list[dict] = []
        self.log: _RejectionLog | None = None
        with ctx.db.begin() as conn:
            row = _load_campaign(conn, principal, campaign_id)
            _check_importable(row["status"])
            self.required = required_addresses(campaign_store.get_steps(conn, campaign_id))

    def reject(self, position: int, errors: list[dict], cells: list[str] | None = None) -> None:
        self.report.reject(position, errors)
        if self.log is not None and cells is not None:
            self.log.add(position, cells, errors)

    def add(self, position: int, raw: Any, cells: list[str] | None = None) -> None:
        lead, errors = validate_lead(raw, self.required, region=self.region, infer_timezone=self.infer_timezone)
        if errors:
            self.reject(position, errors, cells)
            return
        self.batch.append(lead)
        if len(self.batch) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        for attempt in range(3):
            try:
                inserted = self._insert_batch()
                break
            except DBAPIError as exc:
                # Two imports of overlapping addresses into one campaign can deadlock on the
                # unique indexes; PostgreSQL rolls one back, and the batch is safe to redo.
                if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == 2:
                    raise
        self.report.accepted += inserted
        self.report.duplicates += len(self.batch) - inserted
        self.batch = []

    def _insert_batch(self) -> int:
        now = self.ctx.clock()
        with self.ctx.db.begin() as conn:
            # A share lock: a cancel racing this batch waits for it, then cancels its leads too.
            row = campaign_store.get_campaign_by_id(conn, self.campaign_id, for_share=True)
            _check_importable(row["status"])
            phones, emails = store.suppressed_among(
                conn, self.principal.workspace_id,
                (lead["phone"] for lead in self.batch if lead["phone"]),
                (lead["email"] for lead in self.batch if lead["email"]))
            for lead in self.batch:
                suppressed = lead["phone"] in phones or lead["email"] in emails
                lead["state"] = (LeadState.OPTED_OUT if suppressed else LeadState.NOT_CONTACTED).value
            return store.insert_new_leads(conn, self.campaign_id, self.batch, now)

    def finish(self) -> dict:
        self.flush()
        return self.report.as_dict()

    def keep_rejections(self, columns: list[str]) -> str:
        """From now on every rejected row is stored; returns the new import's id."""
        import_id, now = new_id(), self.ctx.clock()
        with self.ctx.db.begin() as conn:
            import_store.insert_import(conn, import_id, self.principal.workspace_id, self.campaign_id,
                                       [_printable(c) for c in columns], now)
        self.log = _RejectionLog(self.ctx, self.principal.workspace_id, import_id)
        return import_id

    def finish_import(self) -> dict:
        self.flush()
        assert self.log is not None
        self.log.flush()
        report = self.report
        with self.ctx.db.begin() as conn:
            import_store.set_counts(conn, self.log.import_id, {"accepted": report.accepted, "duplicates":
                                                               report.duplicates, "rejected": report.rejected_count})
        return {**report.as_dict(), "import_id": self.log.import_id}


def _check_importable(status: str) -> None:
    if status in TERMINAL_STATUSES:
        raise InvalidTransition(status, "import")


def import_json(ctx: Context, principal: Principal, campaign_id: str, leads: list) -> dict:
    if len(leads) > MAX_JSON_LEADS:
        raise ValidationFailed([{"field": "leads", "message": f"at most {MAX_JSON_LEADS} leads per call"}])
    importer = _Importer(ctx, principal, campaign_id, "index")
    for index, raw in enumerate(leads):
        importer.add(index, raw)
    return importer.finish()


@dataclass(frozen=True)
class CsvOptions:
    """A CSV import's choices (API.md v1.1); csv_options checks them."""

    mapping: dict[str, str] | None = None
    delimiter: str | None = None  # None: sniffed from the header line
    default_country: str | None = None
    infer_timezone: bool = True


def csv_options(mapping: str | None = None, delimiter: str | None = None, default_country: str | None = None,
                infer_timezone: bool = True) -> CsvOptions:
    if delimiter is not None and delimiter not in DELIMITERS:
        raise ValidationFailed([{"field": "delimiter", "message": "must be a comma, a semicolon or a tab"}])
    region = default_country.upper() if default_country else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed([{"field": "default_country",
                                 "message": f"{default_country!r} is not a country code (ISO 3166 alpha-2)"}])
    return CsvOptions(parse_mapping(mapping), delimiter, region, infer_timezone)


def import_csv(ctx: Context, principal: Principal, campaign_id: str, chunks: Iterable[bytes],
               charset: str = DEFAULT_CHARSET, options: CsvOptions = CsvOptions()) -> dict:
    """The body is consumed as it arrives; nothing holds more than one batch of rows (nor
    of rejected rows, which are stored for the rejected.csv download)."""
    try:
        codecs.lookup(charset)
    except LookupError:
        raise ValidationFailed([{"field": "content-type", "message": f"unknown charset {charset!r}"}]) from None
    importer = _Importer(ctx, principal, campaign_id, "row", region=options.default_country,
                         infer_timezone=options.infer_timezone)  # 404/409 before reading the body
    lines = text_lines(chunks, charset)
    header_line = next(lines, "")
    delimiter = options.delimiter or sniff_delimiter(header_line)
    rows = csv_records(chain([header_line], lines), delimiter)
    first = next(rows, None)
    if first is None or first[2] or not first[1]:  # no line, a malformed one, or a blank one (no columns)
        raise ValidationFailed([{"field": "body", "message": first[2] if first and first[2] else
                                 "the CSV needs a header row on its first line"}])
    columns = header_columns(first[1], options.mapping, importer.required)
    importer.keep_rejections(first[1])
    for number, cells, problem in rows:
        if not cells and problem is None:
            continue  # a blank line keeps its number but is not a lead
        try:
            if problem is not None:
                raise ValueError(problem)
            raw = row_to_raw(columns, cells)
        except ValueError as exc:
            importer.reject(number, [{"field": "row", "message": str(exc)}], cells)
        else:
            importer.add(number, raw, cells)
    return importer.finish_import()


def prune_imports(ctx: Context) -> int:
    """Deletes the imports (and their rejected rows) older than IMPORT_KEEP; the sweeper's."""
    with ctx.db.begin() as conn:
        return import_store.delete_imports_before(conn, ctx.clock() - IMPORT_KEEP)


def rejected_csv(ctx: Context, principal: Principal, import_id: str) -> Iterator[str]:
    """Every rejected row of one of the workspace's imports of the last IMPORT_KEEP, as CSV
    text in pieces: `row`, the header's columns, `reasons`; cells made safe to open in a
    spreadsheet. 404 for another workspace's import, an expired one or no such id."""
    return _rejected_pieces(ctx, import_id, _find_import(ctx, principal, import_id)["columns"])


def _find_import(ctx: Context, principal: Principal, import_id: str) -> dict:
    found = None
    if re.fullmatch(r"[0-9a-f]{32}", import_id):
        with ctx.db.begin() as conn:
            found = import_store.get_import(conn, principal.workspace_id, import_id, ctx.clock() - IMPORT_KEEP)
    if found is None:
        raise NotFound("import not found", {"id": import_id})
    return found


def import_summary(ctx: Context, principal: Principal, import_id: str, first: int = 20) -> dict:
    """One of the workspace's CSV imports of the last IMPORT_KEEP (else 404): its campaign,
    its counts (None while it runs) and its first rejected rows (`row`, `cells`, `reasons`)."""
    found = _find_import(ctx, principal, import_id)
    with ctx.db.begin() as conn:
        rejected = import_store.rejections_after(conn, import_id, -1, first)
    return {"id": import_id, "campaign_id": found["campaign_id"], "columns": found["columns"],
            "counts": found["counts"], "created_at": found["created_at"], "rejected": rejected}


def csv_preview(chunks: Iterable[bytes], charset: str = DEFAULT_CHARSET, delimiter: str | None = None,
                rows: int = 5) -> dict:
    """The header and the first `rows` records as import_csv would read them (same decoding
    and delimiter sniffing), for choosing a mapping; reads no further than that."""
    lines = text_lines(chunks, charset)
    header_line = next(lines, "")
    used = delimiter or sniff_delimiter(header_line)
    records = csv_records(chain([header_line], lines), used)
    first = next(records, None)
    if first is None or first[2] or not first[1]:
        raise ValidationFailed([{"field": "body", "message": first[2] if first and first[2] else
                                 "the CSV needs a header row on its first line"}])
    shown = []
    for _number, cells, problem in records:
        if len(shown) >= rows:
            break
        if cells and problem is None:
            shown.append([_printable(c) for c in cells])
    return {"delimiter": used, "header": [_printable(c) for c in first[1]], "rows": shown}


def _rejected_pieces(ctx: Context, import_id: str, columns: list[str]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(safe_row(["row", *columns, "reasons"]))
    after = -1
    while True:
        with ctx.db.begin() as conn:
            page = import_store.rejections_after(conn, import_id, after, BATCH_SIZE)
        for item in page:
            writer.writerow(safe_row([item["row"], *item["cells"], item["reasons"]]))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(page) < BATCH_SIZE:
            return
        after = page[-1]["row"]


# --- reading ----------------------------------------------------------------------------

def _load_campaign(conn, principal: Principal, campaign_id: str):
    row = campaign_store.get_campaign(conn, principal.workspace_id, campaign_id)
    if row is None:
        raise NotFound("campaign not found", {"id": campaign_id})
    return row


def _lead_id(lead_id: str) -> int:
    # Ids are BIGINTs: anything else cannot exist (and must not reach the database).
    if not lead_id.isascii() or not lead_id.isdigit() or len(lead_id) > 18:
        raise NotFound("lead not found", {"id": lead_id})
    return int(lead_id)


def lead_view(row: dict) -> dict:
    return {"id": str(row["id"]), "state": row["state"], "current_step": row["current_step"],
            "next_action_at": row["next_action_at"], **{f: row[f] for f in LEAD_FIELDS},
            "attributes": row["attributes"] or {}, "last_error": row["last_error"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def attempt_view(row: dict) -> dict:
    return {k: row[k] for k in ("step", "variant", "channel", "integration_id", "status", "provider_message_id",
                                "error_code", "error_class", "error_message", "created_at", "updated_at")}


def parse_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise ValidationFailed([{"field": "cursor", "message": "invalid cursor"}])
    return int(cursor)


def list_leads(ctx: Context, principal: Principal, campaign_id: str, *, state: str | None = None,
               q: str | None = None, limit: int = 50, cursor: str | None = None) -> dict:
    states = [s.strip() for s in state.split(",") if s.strip()] if state else None
    bad = [s for s in states or [] if s not in LEAD_STATES]
    if bad:
        raise ValidationFailed([{"field": "state", "message": f"unknown lead state {bad[0]!r}"}])
    after = parse_cursor(cursor)
    with ctx.db.begin() as conn:
        _load_campaign(conn, principal, campaign_id)
        rows = store.list_leads(conn, campaign_id, states=states, q=q, after_id=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [lead_view(r) for r in rows], "next_cursor": str(rows[-1]["id"]) if more else None}


def _lead_detail(conn, campaign_id: str, lead_id: int) -> dict | None:
    row = store.get_lead(conn, campaign_id, lead_id)
    if row is None:
        return None
    return {**lead_view(row), "attempts": [attempt_view(a) for a in store.lead_attempts(conn, lead_id)]}


def get_lead(ctx: Context, principal: Principal, campaign_id: str, lead_id: str) -> dict:
    with ctx.db.begin() as conn:
        _load_campaign(conn, principal, campaign_id)
        view = _lead_detail(conn, campaign_id, _lead_id(lead_id))
    if view is None:
        raise NotFound("lead not found", {"id": lead_id})
    return view


# --- resolving an in-doubt lead -----------------------------------------------------------

class LeadNotInDoubt(InvalidTransition):
    def __init__(self, state: str) -> None:
        super().__init__(state, "resolve")
        self.message = f"only an in_doubt lead can be resolved; this lead is {state}"


def resolve(ctx: Context, principal: Principal, campaign_id: str, lead_id: str, action: str) -> dict:
    """The operator's answer to "was the message sent?" (DESIGN.md §3).

    retry: the engine sends the step once more, but not before the doubted call must have
    ended (domain.leads.retry_not_before); should that call's answer arrive before the retry
    is claimed, it settles the lead and the retry is dropped: no second contact. The
    in-doubt attempt stays as the record. mark_sent: the attempt counts as accepted and the
    lead advances exactly as after an accepted send."""
    if action not in ("retry", "mark_sent"):
        raise ValidationFailed([{"field": "action", "message": "must be retry or mark_sent"}])
    now = ctx.clock()
    with ctx.db.begin() as conn:
        _load_campaign(conn, principal, campaign_id)
        lead = store.get_lead(conn, campaign_id, _lead_id(lead_id), for_update=True)
        if lead is None:
            raise NotFound("lead not found", {"id": lead_id})
        if lead["state"] != LeadState.IN_DOUBT:
            raise LeadNotInDoubt(lead["state"])
        step = lead["current_step"]
        common = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
        if action == "retry":
            state = LeadState.NOT_CONTACTED if step == 0 else LeadState.IN_PROGRESS
            # The engine's next claim bumps attempt_no, so the new attempt gets a fresh key.
            doubted_at = store.doubted_attempt_started_at(conn, lead["id"], step)
            due = retry_not_before(doubted_at, now) if doubted_at is not None else now
            store.update_lead(conn, lead["id"], state=state, next_action_at=due, retries=0, awaiting=None, **common)
        else:
            steps = campaign_store.get_steps(conn, campaign_id)
            following = steps[step + 1] if step + 1 < len(steps) else None
            change = apply_outcome(
                LeadProgress(LeadState(lead["state"]), step, lead["next_action_at"], lead["retries"]),
                step_count=len(steps), error_class=None, error_code=None, now=now,
                next_step_delay=timedelta(seconds=following["delay_seconds"]) if following else None)
            # As after an accepted LinkedIn invitation: a message step after it waits for acceptance.
            wait = acceptance_wait(steps[step], following)
            store.mark_in_doubt_attempts(conn, lead["id"], step, change.attempt_status, now)
            store.update_lead(conn, lead["id"], state=change.lead.state, current_step=change.lead.current_step,
                              next_action_at=now + wait if wait else change.lead.next_action_at,
                              awaiting="acceptance" if wait else None, retries=change.lead.retries,
                              attempt_no=0, last_error=None, **common)
            state = change.lead.state
        campaign_store.add_timeline(conn, campaign_id, now=now, action="lead_resolved", actor_type="user",
                                    actor_id=principal.user_id, token_id=principal.token_id,
                                    details={"lead_id": str(lead["id"]), "resolution": action, "step": step,
                                             "lead_state": str(state)})
        return _lead_detail(conn, campaign_id, lead["id"])

