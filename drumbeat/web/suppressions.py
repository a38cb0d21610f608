"""The suppression list in the browser (issue 20): search and filter, add one address,
import a CSV (the result row by row), export, and delete with a confirmation (owner).

Every action goes through the API's own service functions (services.suppressions), so the
page and a script agree; forms work without JavaScript (POST, then redirect or re-render).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from drumbeat.domain.exceptions import DomainError, ValidationFailed
from drumbeat.domain.roles import Role
from drumbeat.services import dashboard, suppressions
from drumbeat.web import present
from drumbeat.web.pages import Session, _ctx, _guard_post, _page, _problem, _session, _status_of, _to_login

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
CHUNK = 64 * 1024
MAX_PASTE = 20 * 1024 * 1024  # pasted text is a form field, read whole: bounded
REJECTED_SHOWN = 100


def _list_page(request: Request, s: Session, *, q: str = "", reason: str = "", cursor: str = "",
               status: int = 200, typed: str = "", errors: dict | None = None,
               result: dict | None = None) -> Response:
    try:
        page = suppressions.list_suppressions(_ctx(request), s.principal, limit=PER_PAGE, cursor=cursor or None,
                                              q=q or None, reason=reason or None)
    except DomainError as exc:
        return _problem(request, s, exc.code, exc.message, _status_of(exc))
    next_link = None
    if page["next_cursor"]:
        next_link = "/suppressions?" + urlencode(
            {k: v for k, v in {"q": q, "reason": reason, "cursor": page["next_cursor"]}.items() if v})
    sources = {e["source"]["campaign_id"] for e in page["items"] if "campaign_id" in e["source"]}
    names = dashboard.campaign_names(_ctx(request), s.principal, sources)
    return _page(request, s, "suppressions.html", status, items=page["items"], names=names, q=q, reason=reason,
                 reasons=present.SUPPRESSION_REASONS, next_link=next_link, typed=typed, errors=errors or {},
                 result=result)


@router.get("/suppressions", response_class=HTMLResponse)
def suppression_list(request: Request, q: str = "", reason: str = "", cursor: str = ""):
    s = _session(request)
    if s is None:
        return _to_login(request)
    reason = reason if reason in present.SUPPRESSION_REASONS else ""
    cursor = cursor if cursor.isascii() and cursor.isdigit() and len(cursor) <= 18 else ""
    return _list_page(request, s, q=q.strip()[:200], reason=reason, cursor=cursor)


@router.post("/suppressions")
async def add(request: Request):
    """One address: a phone number or an email (told apart by the @)."""
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    typed = str(form.get("address", "")).strip()
    if not typed:
        problems = [{"field": "address", "message": "type a phone number (+49…) or an email address"}]
    else:
        kind = "email" if "@" in typed else "phone"
        try:
            await run_in_threadpool(suppressions.add_suppression, _ctx(request), guard.principal, {kind: typed})
        except ValidationFailed as exc:
            problems = [{"field": "address", "message": f"{kind}: {p['message']}"} for p in exc.fields]
        else:
            return RedirectResponse("/suppressions?done=suppression-added", status_code=303)
    return await run_in_threadpool(lambda: _list_page(request, guard, status=422, typed=typed,
                                                      errors={"address": [p["message"] for p in problems]}))


@router.post("/suppressions/import")
async def import_file(request: Request):
    """A CSV file (or pasted text) through the API's streamed import; the answer on the page."""
    form = await request.form(max_part_size=MAX_PASTE)
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    file = form.get("file")
    pasted = str(form.get("pasted", ""))
    has_file = isinstance(file, UploadFile) and bool(file.filename) and (file.size is None or file.size > 0)
    if has_file:
        assert isinstance(file, UploadFile)
        await file.seek(0)
        source = file.file  # spooled to disk by the form parser: read in chunks, never whole

        def chunks():
            while chunk := source.read(CHUNK):
                yield chunk
    elif pasted.strip():
        def chunks():
            yield pasted.encode("utf-8", "surrogateescape")
    else:
        return await run_in_threadpool(lambda: _list_page(request, guard, status=422, errors={
            "file": ["choose a CSV file, or paste the CSV text"]}))
    try:
        result = await run_in_threadpool(suppressions.import_csv, _ctx(request), guard.principal, chunks())
    except ValidationFailed as exc:
        messages = [p["message"] for p in exc.fields]
        return await run_in_threadpool(lambda: _list_page(request, guard, status=422, errors={"file": messages}))
    result["rejected"] = result["rejected"][:REJECTED_SHOWN]
    return await run_in_threadpool(lambda: _list_page(request, guard, result=result))


@router.get("/suppressions/export")
def export(request: Request):
    s = _session(request)
    if s is None:
        return _to_login(request)
    return StreamingResponse(suppressions.export_csv(_ctx(request), s.principal),
                             media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'})


def _owner(request: Request) -> Session | Response:
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not s.is_owner:
        return _problem(request, s, "forbidden", "deleting a suppression needs the owner role", 403)
    return s


@router.get("/suppressions/{suppression_id}/delete", response_class=HTMLResponse)
def confirm_delete(request: Request, suppression_id: str):
    """The confirmation (no JavaScript needed): what will be deleted, and one button."""
    s = _owner(request)
    if not isinstance(s, Session):
        return s
    entry = suppressions.get_suppression(_ctx(request), s.principal, suppression_id) if suppression_id else None
    if entry is None:
        return _problem(request, s, "not_found", "There is no such suppression in this workspace.", 404)
    return _page(request, s, "suppression_delete.html", entry=entry, reasons=present.SUPPRESSION_REASONS)


@router.post("/suppressions/{suppression_id}/delete")
async def delete(request: Request, suppression_id: str):
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    try:
        await run_in_threadpool(suppressions.delete_suppression, _ctx(request), guard.principal, suppression_id)
    except DomainError as exc:
        if exc.code == "not_found":
            return _problem(request, guard, "not_found", "There is no such suppression in this workspace.", 404)
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    return RedirectResponse("/suppressions?done=suppression-deleted", status_code=303)
