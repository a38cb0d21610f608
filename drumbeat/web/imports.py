"""Lead import in the browser (issue 19): upload → map columns → result.

1. The upload (a file, or pasted text) is copied to a temporary file under the system temp
   dir, named by a random token and the session's workspace, so the next step finds it
   without holding it in memory; files older than UPLOAD_KEEP are swept at each upload, and
   the file is deleted once imported.
2. The mapping page reads the header and the first rows as the import will (services.leads
   .csv_preview: same decoding, same delimiter sniffing) and offers a select per column,
   guessed from the header.
3. The import streams the file through services.leads.import_csv with the same options the
   API takes (`mapping`, `delimiter`, `encoding`, `default_country`, `infer_timezone`), so a
   script can do what the form does; a mapping the service refuses (two columns on one
   field, no column for an address the campaign's steps need) changes nothing and is shown
   beside the mapping. The result page reads the import back, and its rejected rows download
   as the API's rejected.csv does (the same service function) for the signed-in session.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlencode

import phonenumbers
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from phonenumbers import geocoder
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from drumbeat.domain.exceptions import DomainError, NotFound, ValidationFailed
from drumbeat.domain.lifecycle import TERMINAL_STATUSES
from drumbeat.domain.roles import Role, allows
from drumbeat.services import campaigns, leads
from drumbeat.web import present
from drumbeat.web.pages import (
    Session,
    _again,
    _ctx,
    _guard_post,
    _once,
    _page,
    _posted_before,
    _problem,
    _session,
    _status_of,
    _to_login,
)

router = APIRouter(include_in_schema=False)

UPLOAD_PREFIX = "drumbeat-import-"
UPLOAD_KEEP = 3600  # seconds an upload waits for its mapping
CHUNK = 64 * 1024
MAX_PASTE = 20 * 1024 * 1024  # pasted text is a form field, read whole: bounded
PREVIEW_ROWS = 5
REJECTED_SHOWN = 20
DELIMITERS = {"auto": None, "comma": ",", "semicolon": ";", "tab": "\t"}
DELIMITER_WORDS = {"auto": "Detect it", "comma": "Comma (,)", "semicolon": "Semicolon (;)", "tab": "Tab"}
DELIMITER_NAMES = {v: k for k, v in DELIMITERS.items() if v}
ENCODINGS = {"utf-8": "UTF-8 (with or without BOM)", "windows-1252": "Windows-1252 (older Excel on Windows)"}
TOKEN = re.compile(r"^[0-9a-f]{32}$")
FIELD_WORDS = {"phone": "Phone", "email": "Email", "linkedin_url": "LinkedIn URL", "first_name": "First name",
               "last_name": "Last name", "timezone": "Time zone"}
# Header words (lowercased, without spaces, dashes, underscores and dots) -> lead field.
VARIANTS = {
    "phone": ("phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "cell", "cellphone", "msisdn",
              "telephone", "tel", "whatsapp"),
    "email": ("email", "emailaddress", "mail"),
    "linkedin_url": ("linkedinurl", "linkedin", "linkedinprofile", "profileurl"),
    "first_name": ("firstname", "first", "givenname", "forename"),
    "last_name": ("lastname", "last", "surname", "familyname"),
    "timezone": ("timezone", "tz"),
}
GUESSES = {word: name for name, words in VARIANTS.items() for word in words}


# --- pure helpers -------------------------------------------------------------------------------

def guess_target(column: str, taken: set[str]) -> str:
    """A lead field the column's name means (the first column to claim one gets it), else
    an attribute of the column's own name."""
    word = re.sub(r"[\s_\-.]+", "", column.strip().lower())
    field = GUESSES.get(word)
    if field and field not in taken:
        taken.add(field)
        return field
    return attribute_of(column)


def attribute_of(column: str) -> str:
    """The attribute a column becomes: its name in lower case with runs of other characters
    as "_" ("Plan" -> attributes.plan), so that templates can say {{attributes.plan}}."""
    name = re.sub(r"[^0-9a-z]+", "_", column.strip().lower()).strip("_")
    return leads.ATTRIBUTE_PREFIX + (name or column.strip())


def target_choices(header: list[str]) -> list[tuple[str, str]]:
    fields = [(f, FIELD_WORDS[f]) for f in leads.LEAD_FIELDS]
    attributes = {attribute_of(c): None for c in header if c.strip()}  # one choice per name, in order
    return [*fields, *((a, f"attribute: {a.removeprefix(leads.ATTRIBUTE_PREFIX)}") for a in attributes),
            (leads.IGNORE, "ignore")]


@lru_cache(maxsize=1)
def countries() -> list[tuple[str, str]]:
    """(ISO code, name) for every region phonenumbers supports, by name."""
    out = []
    for code in phonenumbers.SUPPORTED_REGIONS:
        example = phonenumbers.example_number(code)
        name = geocoder.country_name_for_number(example, "en") if example else ""
        out.append((code, name or code))
    return sorted(out, key=lambda pair: pair[1])


def place_problems(problems: list[dict], header: list[str]) -> tuple[dict[int, list[str]], list[str]]:
    """Each mapping problem beside the column(s) it names (by index), the rest for the whole
    mapping."""
    beside: dict[int, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        message = problem["message"]
        named = [i for i, c in enumerate(header) if problem["field"] == f"mapping.{c.strip()}"
                 or repr(c.strip()) in message]
        for i in named:
            beside.setdefault(i, []).append(message)
        if not named or problem["field"] in ("mapping", "header", "body"):
            general.append(message)
    return beside, general


# --- the uploaded file ----------------------------------------------------------------------------

def _upload_path(workspace_id: str, token: str) -> Path:
    return Path(tempfile.gettempdir()) / f"{UPLOAD_PREFIX}{workspace_id}-{token}.csv"


def _sweep_uploads(now: float) -> None:
    for path in Path(tempfile.gettempdir()).glob(f"{UPLOAD_PREFIX}*.csv"):
        try:
            if now - path.stat().st_mtime > UPLOAD_KEEP:
                path.unlink()
        except OSError:
            pass  # another process swept it first


def _find_upload(s: Session, token: str) -> Path | None:
    if not TOKEN.match(token):
        return None
    path = _upload_path(s.principal.workspace_id, token)
    try:
        fresh = time.time() - path.stat().st_mtime <= UPLOAD_KEEP
    except OSError:
        return None
    return path if fresh else None


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


# --- checks shared by the routes ------------------------------------------------------------------

def _campaign(request: Request, s: Session, campaign_id: str) -> dict | Response:
    try:
        view = campaigns.get_campaign(_ctx(request), s.principal, campaign_id)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such campaign in this workspace.", 404)
    if view["status"] in TERMINAL_STATUSES:
        word = present.STATUS_LABELS.get(view["status"], view["status"]).lower()
        return _problem(request, s, "invalid_transition",
                        f"This campaign is {word}: a finished campaign takes no new leads.", 409)
    return view


def _operator(request: Request) -> Session | Response:
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not allows(s.principal.role, Role.OPERATOR):
        return _problem(request, s, "forbidden", "importing leads needs the operator role", 403)
    return s


def _options(form) -> dict:
    """The upload's choices as typed (also the mapping page's hidden fields)."""
    return {"delimiter": str(form.get("delimiter", "auto")), "encoding": str(form.get("encoding", "utf-8")),
            "default_country": str(form.get("default_country", "")).strip(),
            "infer_timezone": any(v in ("1", "on", "true") for v in form.getlist("infer_timezone"))}


def _check_options(options: dict) -> list[dict]:
    problems = []
    if options["delimiter"] not in DELIMITERS:
        problems.append({"field": "delimiter", "message": "choose comma, semicolon, tab or detect it"})
    if options["encoding"] not in ENCODINGS:
        problems.append({"field": "encoding", "message": "choose UTF-8 or Windows-1252"})
    try:
        leads.csv_options(None, None, options["default_country"] or None, options["infer_timezone"])
    except ValidationFailed as exc:
        problems.extend(exc.fields)
    return problems


def _upload_page(request: Request, s: Session, view: dict, options: dict, status: int = 200,
                 problems: list[dict] | None = None, pasted: str = "") -> Response:
    errors: dict[str, list[str]] = {}
    for p in problems or []:
        errors.setdefault(p["field"], []).append(p["message"])
    return _page(request, s, "import_upload.html", status, campaign=view, options=options, errors=errors,
                 pasted=pasted, delimiters=DELIMITER_WORDS, encodings=ENCODINGS, countries=countries())


# --- routes ---------------------------------------------------------------------------------------

@router.get("/campaigns/{campaign_id}/leads/import", response_class=HTMLResponse)
def upload_form(request: Request, campaign_id: str):
    s = _operator(request)
    if not isinstance(s, Session):
        return s
    view = _campaign(request, s, campaign_id)
    if not isinstance(view, dict):
        return view
    return _upload_page(request, s, view, {"delimiter": "auto", "encoding": "utf-8", "default_country": "",
                                           "infer_timezone": True})


@router.post("/campaigns/{campaign_id}/leads/import")
async def upload(request: Request, campaign_id: str):
    """Keeps the file (or the pasted text, as UTF-8) and goes on to the mapping."""
    form = await request.form(max_part_size=MAX_PASTE)
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    s = guard
    view = await run_in_threadpool(_campaign, request, s, campaign_id)
    if not isinstance(view, dict):
        return view
    options = _options(form)
    pasted = str(form.get("pasted", ""))
    file = form.get("file")
    has_file = isinstance(file, UploadFile) and bool(file.filename) and (file.size is None or file.size > 0)
    problems = _check_options(options)
    if not has_file and not pasted.strip():
        problems.append({"field": "file", "message": "choose a CSV file, or paste the CSV text below"})
    if problems:
        return await run_in_threadpool(lambda: _upload_page(request, s, view, options, 422, problems, pasted))
    await run_in_threadpool(_sweep_uploads, time.time())
    token = secrets.token_hex(16)
    path = _upload_path(s.principal.workspace_id, token)
    if has_file:
        assert isinstance(file, UploadFile)
        await file.seek(0)
        await run_in_threadpool(_copy, file.file, path)
    else:
        options["encoding"] = "utf-8"  # the browser sends pasted text as UTF-8, whatever the file was
        await run_in_threadpool(path.write_bytes, pasted.encode("utf-8", "surrogateescape"))
    return RedirectResponse(_mapping_url(campaign_id, token, options), status_code=303)


def _copy(source, path: Path) -> None:
    with path.open("xb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def _mapping_url(campaign_id: str, token: str, options: dict) -> str:
    query = {**options, "infer_timezone": "1" if options["infer_timezone"] else "0"}
    return f"/campaigns/{quote(campaign_id, safe='')}/leads/import/{token}?{urlencode(query)}"


def _mapping_page(request: Request, s: Session, view: dict, token: str, options: dict, typed: dict | None = None,
                  problems: list[dict] | None = None, status: int = 200) -> Response:
    path = _find_upload(s, token)
    if path is None:
        return _problem(request, s, "not_found", "This upload has expired or does not exist: upload the file "
                                                 "again.", 404)
    try:
        preview = leads.csv_preview(_chunks(path), options["encoding"], DELIMITERS.get(options["delimiter"]),
                                    PREVIEW_ROWS)
    except ValidationFailed as exc:
        return _upload_page(request, s, view, options, 422,
                            [{"field": "file", "message": f["message"]} for f in exc.fields])
    header = preview["header"]
    taken: set[str] = set()
    guessed = [guess_target(c, taken) for c in header]
    chosen = [typed.get(i, guessed[i]) if typed else guessed[i] for i in range(len(header))]
    beside, general = place_problems(problems or [], header)
    return _page(request, s, "import_map.html", status, campaign=view, token=token, options=options,
                 header=header, rows=preview["rows"], chosen=chosen, beside=beside, general=general,
                 choices=target_choices(header), delimiter_word=DELIMITER_WORDS[DELIMITER_NAMES[preview["delimiter"]]],
                 encoding_word=ENCODINGS[options["encoding"]], country=dict(countries()).get(
                     options["default_country"].upper()), back=f"/campaigns/{quote(view['id'], safe='')}/leads/import")


@router.get("/campaigns/{campaign_id}/leads/import/{token}", response_class=HTMLResponse)
def mapping_form(request: Request, campaign_id: str, token: str):
    s = _operator(request)
    if not isinstance(s, Session):
        return s
    view = _campaign(request, s, campaign_id)
    if not isinstance(view, dict):
        return view
    options = _options(request.query_params)
    if _check_options(options):  # a hand-edited address: start again
        return RedirectResponse(f"/campaigns/{quote(campaign_id, safe='')}/leads/import", status_code=303)
    return _mapping_page(request, s, view, token, options)


@router.post("/campaigns/{campaign_id}/leads/import/{token}")
async def run_import(request: Request, campaign_id: str, token: str):
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    return await run_in_threadpool(_import, request, guard, campaign_id, token, form)


def _import(request: Request, s: Session, campaign_id: str, token: str, form) -> Response:
    nonce = str(form.get("form_nonce", ""))
    again = _posted_before(request, s, nonce, f"/campaigns/{quote(campaign_id, safe='')}")
    if again is not None:
        return again
    view = _campaign(request, s, campaign_id)
    if not isinstance(view, dict):
        return view
    options = _options(form)
    if _check_options(options):
        return _problem(request, s, "validation_error", "The import's options are not valid: upload again.", 422)
    path = _find_upload(s, token)
    if path is None:
        return _problem(request, s, "not_found", "This upload has expired or does not exist: upload the file "
                                                 "again.", 404)
    header = leads.csv_preview(_chunks(path), options["encoding"], DELIMITERS[options["delimiter"]], 0)["header"]
    typed = {i: str(form.get(f"map.{i}", "")) for i in range(len(header))}
    mapping = {c.strip(): typed[i] for i, c in enumerate(header) if c.strip()}
    try:
        chosen = leads.csv_options(json.dumps(mapping), DELIMITERS[options["delimiter"]],
                                   options["default_country"] or None, options["infer_timezone"])
        # Once per form, in its own transactions (an import commits in batches): a second post
        # racing this one finds the nonce taken.
        done = _once(request, s, nonce, lambda c: leads.import_csv(c, s.principal, campaign_id, _chunks(path),
                                                                    options["encoding"], chosen),
                     lambda result: f"/campaigns/{quote(campaign_id, safe='')}/imports/{result['import_id']}",
                     joined=False)
    except ValidationFailed as exc:
        return _mapping_page(request, s, view, token, options, typed, exc.fields, 422)
    except DomainError as exc:
        return _problem(request, s, exc.code, exc.message, _status_of(exc), exc.details)
    if done.repeated:
        return _again(request, s, done, f"/campaigns/{quote(campaign_id, safe='')}")
    assert done.result is not None
    path.unlink(missing_ok=True)
    return RedirectResponse(f"/campaigns/{quote(campaign_id, safe='')}/imports/{done.result['import_id']}"
                            "?done=imported", status_code=303)


def _summary(request: Request, s: Session, campaign_id: str, import_id: str) -> dict | Response:
    try:
        found = leads.import_summary(_ctx(request), s.principal, import_id, REJECTED_SHOWN)
    except NotFound:
        found = None
    if found is None or found["campaign_id"] != campaign_id:
        return _problem(request, s, "not_found", "There is no such import: imports are kept for "
                                                 f"{leads.IMPORT_KEEP.days} days.", 404)
    return found


@router.get("/campaigns/{campaign_id}/imports/{import_id}", response_class=HTMLResponse)
def result_page(request: Request, campaign_id: str, import_id: str):
    s = _session(request)
    if s is None:
        return _to_login(request)
    found = _summary(request, s, campaign_id, import_id)
    if not isinstance(found, dict):
        return found
    view = campaigns.get_campaign(_ctx(request), s.principal, campaign_id)
    counts = found["counts"] or {}
    width = len(found["columns"])
    rows = [{"row": r["row"], "cells": (r["cells"] + [""] * width)[:width], "reasons": r["reasons"]}
            for r in found["rejected"]]
    return _page(request, s, "import_result.html", campaign=view, imp=found, counts=counts, rows=rows,
                 shown=REJECTED_SHOWN, opted_out=view["progress"].get("opted_out"))


@router.get("/campaigns/{campaign_id}/imports/{import_id}/rejected.csv")
def rejected_download(request: Request, campaign_id: str, import_id: str):
    """Every rejected row, exactly as GET /api/v1/imports/{id}/rejected.csv streams it."""
    s = _session(request)
    if s is None:
        return _to_login(request)
    found = _summary(request, s, campaign_id, import_id)
    if not isinstance(found, dict):
        return found
    pieces = leads.rejected_csv(_ctx(request), s.principal, import_id)
    return StreamingResponse(pieces, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="rejected-{import_id}.csv"'})
