"""The workspace settings page (issue 23): the workspace's own opt-out and opt-in words, the
workspace contact cap and the SMS auto-replies — `GET/PATCH /api/v1/workspace` in the browser.

Everyone signed in sees the values; only an owner gets the form (the PATCH is owner-only)
and the server refuses anyone else's post. The form is checked by the API's own model
(schemas.WorkspaceUpdate) and saved by the API's own service function
(services.workspaces.update_settings, which audits the change): the page can accept nothing
the API refuses. The form replaces all four settings at once; when anything is invalid,
nothing is saved and each error sits beside its field with what was typed kept.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from drumbeat.domain.consent import keyword_conflicts, normalize_keyword
from drumbeat.domain.exceptions import DomainError, ValidationFailed
from drumbeat.domain.roles import Role
from drumbeat.schemas import WorkspaceUpdate
from drumbeat.services import workspaces
from drumbeat.web.pages import (
    Session,
    _again,
    _ctx,
    _guard_post,
    _once,
    _page,
    _problem,
    _session,
    _status_of,
    _to_login,
)

router = APIRouter(include_in_schema=False)

PAGE = "/settings"
WORD_FIELDS = ("opt_out_words", "opt_in_words")
REPLIES = ("stop", "help")
# The words of a text area: one per line, or several on a line separated by commas.
_WORD_SEPARATORS = re.compile(r"[\n\r,]+")
# Where each of the model's fields is shown (the error summary links to it).
FIELD_LABELS = {"opt_out_words": "Opt-out words", "opt_in_words": "Opt-in words",
                "contact_cap": "Contact cap", "contact_cap.max": "Contact cap: messages",
                "contact_cap.days": "Contact cap: days", "auto_replies": "Automatic replies",
                "auto_replies.stop": "Reply to STOP", "auto_replies.help": "Reply to HELP"}


def split_words(text: str) -> list[str]:
    """A text area's words or phrases: one per line or separated by commas, each trimmed;
    blank ones are skipped."""
    return [w.strip() for w in _WORD_SEPARATORS.split(text) if w.strip()]


def typed_from(view: dict) -> dict:
    """The form's fields as they show the workspace's current settings."""
    cap = view["contact_cap"]
    replies = view["auto_replies"]
    return {"opt_out_words": "\n".join(view["opt_out_words"]), "opt_in_words": "\n".join(view["opt_in_words"]),
            "cap": "on" if cap else "none", "cap_max": str(cap["max"]) if cap else "",
            "cap_days": str(cap["days"]) if cap else "",
            **{f"{k}_on": replies[k] is not None for k in REPLIES},
            **{f"{k}_text": replies[k] or "" for k in REPLIES}}


def typed_of(form) -> dict:
    def text(name: str) -> str:
        value = form.get(name, "")
        return value if isinstance(value, str) else ""
    return {"opt_out_words": text("opt_out_words"), "opt_in_words": text("opt_in_words"),
            "cap": "on" if text("cap") == "on" else "none", "cap_max": text("cap_max").strip(),
            "cap_days": text("cap_days").strip(),
            **{f"{k}_on": bool(text(f"{k}_on")) for k in REPLIES},
            **{f"{k}_text": text(f"{k}_text") for k in REPLIES}}


def request_of(typed: dict) -> dict:
    """The PATCH body the form stands for: all four settings. A reply turned off is null;
    one turned on is its text, trimmed (blank: the model refuses it as required)."""
    return {field: split_words(typed[field]) for field in WORD_FIELDS} | {
        "contact_cap": {"max": typed["cap_max"], "days": typed["cap_days"]} if typed["cap"] == "on" else None,
        "auto_replies": {k: typed[f"{k}_text"].strip() if typed[f"{k}_on"] else None for k in REPLIES}}


def _message(error: dict) -> str:
    """pydantic's words for one error, as a sentence (its limits are the model's own)."""
    kind, limits = error["type"], error.get("ctx") or {}
    if kind in ("missing", "too_short", "string_too_short") and error.get("input") in ("", None):
        return "Required."
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "Enter a whole number."
    if kind == "greater_than_equal" and "ge" in limits:
        return f"Must be at least {limits['ge']}."
    if kind == "less_than_equal" and "le" in limits:
        return f"Must be at most {limits['le']}."
    if kind in ("too_long", "string_too_long") and isinstance(error.get("input"), str) and "max_length" in limits:
        return f"Must be at most {limits['max_length']} characters."
    msg = error["msg"].removeprefix("Value error, ")
    return msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else ".")


def field_errors(exc: ValidationError, body: dict) -> dict[str, list[str]]:
    """The model's errors by the form's field: a word's error names the word."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if loc[0] in WORD_FIELDS and len(loc) > 1 and loc[1].isdigit():
            field, word, said = loc[0], body[loc[0]][int(loc[1])], _message(error)
            shown = word if len(word) <= 40 else word[:40] + "…"
            message = f"“{shown}”: {said[:1].lower()}{said[1:]}"
        else:
            field = ".".join(loc[:2])
            field = field if field in FIELD_LABELS else loc[0]
            message = _message(error)
        errors.setdefault(field, []).append(message)
    return errors


def service_errors(exc: ValidationFailed, body: dict) -> dict[str, list[str]]:
    """The service's refusals by the form's field. A word that would both opt out and opt in
    is shown beside each list that holds it (the API names only one field)."""
    clash = keyword_conflicts(body["opt_out_words"], body["opt_in_words"])
    errors: dict[str, list[str]] = {}
    for problem in exc.fields:
        message = problem["message"][:1].upper() + problem["message"][1:] + "."
        fields = [problem["field"]] if problem["field"] in FIELD_LABELS else ["opt_out_words"]
        if problem["field"] in WORD_FIELDS and clash:
            fields = [f for f in WORD_FIELDS if any(normalize_keyword(w) in clash for w in body[f])] or fields
        for field in fields:
            errors.setdefault(field, []).append(message)
    return errors


def _settings_page(request: Request, s: Session, status: int = 200, typed: dict | None = None,
                   errors: dict | None = None) -> Response:
    try:
        view = workspaces.get_workspace(_ctx(request), s.principal)
    except DomainError as exc:
        return _problem(request, s, exc.code, exc.message, _status_of(exc))
    return _page(request, s, "settings.html", status, ws=view, typed=typed or typed_from(view),
                 errors=errors or {}, labels_of=FIELD_LABELS)


@router.get(PAGE, response_class=HTMLResponse)
def settings_page(request: Request):
    s = _session(request)
    if s is None:
        return _to_login(request)
    return _settings_page(request, s)


@router.post(PAGE)
async def save_settings(request: Request):
    """The owner's form: validated by the API's model, saved by the API's service function
    (which audits it), once per form; then back to the page with a toast."""
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    typed = typed_of(form)
    body = request_of(typed)
    try:
        changes = WorkspaceUpdate.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as exc:
        errors = field_errors(exc, body)
        return await run_in_threadpool(lambda: _settings_page(request, guard, 422, typed, errors))
    try:
        done = await run_in_threadpool(
            _once, request, guard, str(form.get("form_nonce", "")),
            lambda c: workspaces.update_settings(c, guard.principal, changes), lambda _: PAGE)
    except ValidationFailed as exc:
        errors = service_errors(exc, body)
        return await run_in_threadpool(lambda: _settings_page(request, guard, 422, typed, errors))
    except DomainError as exc:  # a forged or foreign form nonce among them (403)
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    if done.repeated:
        return _again(request, guard, done, PAGE)
    return RedirectResponse(f"{PAGE}?done=settings-saved", status_code=303)
