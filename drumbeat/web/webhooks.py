"""Outbound webhooks in the browser (issue 21): the notifications page lists each webhook
with its delivery log (status codes, tries, given up); an owner adds one (a `whsec_` secret
is generated and shown once, on the page that answers the form), chooses its events, sends
a test delivery, and deletes one after a confirmation page.

The form is checked by the API's own model (schemas.WebhookCreate) and every action goes
through the API's service functions (services.notifications), so the page accepts nothing
the API refuses. Everyone signed in sees the list; only an owner gets the forms, and the
server refuses anyone else's post (the API's webhook routes are the owner's too).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from drumbeat.domain.exceptions import DomainError
from drumbeat.domain.roles import Role
from drumbeat.schemas import EventName, WebhookCreate
from drumbeat.services import notifications
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

PAGE = "/notifications"
EVENTS = EventName.__args__  # the events a webhook may choose, in the API's order
EVENT_TEXTS = {"campaign.paused": "a campaign is paused", "campaign.resumed": "a campaign is resumed",
               "campaign.hold_placed": "a channel of a campaign is put on hold",
               "campaign.hold_lifted": "a channel's hold is lifted", "campaign.completed": "a campaign completes",
               "campaign.failed": "a campaign fails", "lead.in_doubt": "leads are in doubt after a crash"}
FIELD_LABELS = {"url": "Address", "events": "Events"}
NOT_FOUND = "There is no such webhook in this workspace."


def _notifications_page(request: Request, s: Session, status: int = 200, *, typed: dict | None = None,
                        errors: dict | None = None, created: dict | None = None, toast: str = "") -> Response:
    ctx = _ctx(request)
    hooks = [{**hook, "deliveries": notifications.list_deliveries(ctx, s.principal, hook["id"], limit=20)}
             for hook in notifications.list_webhooks(ctx, s.principal)]
    return _page(request, s, "notifications.html", status, hooks=hooks, events=EVENTS, event_texts=EVENT_TEXTS,
                 typed=typed or {"url": "", "events": []}, errors=errors or {}, labels_of=FIELD_LABELS,
                 created=created, toast=toast)


@router.get(PAGE, response_class=HTMLResponse)
def notification_list(request: Request):
    s = _session(request)
    if s is None:
        return _to_login(request)
    return _notifications_page(request, s)


def _field_errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        field = str(error["loc"][0])
        if field == "url":
            message = ("Required." if not error.get("input") else
                       "Enter a web address that starts with https:// (or http://), without spaces, "
                       "at most 500 characters.")
        else:
            message = "Choose at least one event."
        errors.setdefault(field, [])
        if message not in errors[field]:
            errors[field].append(message)
    return errors


@router.post(f"{PAGE}/webhooks")
async def add_webhook(request: Request):
    """The owner's form: checked by the API's model; the page that answers shows the
    generated secret, this once (a redirect would lose it)."""
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    typed = {"url": str(form.get("url", "")).strip(), "events": [str(e) for e in form.getlist("events")]}
    try:
        body = WebhookCreate.model_validate({"url": typed["url"], "events": typed["events"]})
    except ValidationError as exc:
        errors = _field_errors(exc)
        return await run_in_threadpool(lambda: _notifications_page(request, guard, 422, typed=typed, errors=errors))
    try:  # once per form: a double click adds one webhook, not two
        done = await run_in_threadpool(
            _once, request, guard, str(form.get("form_nonce", "")),
            lambda c: notifications.create_webhook(c, guard.principal, body.url, None, list(body.events)),
            lambda _: PAGE)
    except DomainError as exc:  # a forged or foreign form nonce (403)
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    if done.repeated:
        return _again(request, guard, done, PAGE)
    return await run_in_threadpool(lambda: _notifications_page(request, guard, 201, created=done.result,
                                                               toast="Webhook added."))


@router.post(PAGE + "/webhooks/{webhook_id}/test")
async def send_test(request: Request, webhook_id: str):
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    url = f"{PAGE}?done=webhook-test-queued#webhook-{webhook_id}"
    try:  # once per form: a double click queues one test delivery
        done = await run_in_threadpool(
            _once, request, guard, str(form.get("form_nonce", "")),
            lambda c: notifications.send_test(c, guard.principal, webhook_id), lambda _: PAGE)
    except DomainError as exc:
        if exc.code == "not_found":
            return _problem(request, guard, "not_found", NOT_FOUND, 404)
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    if done.repeated:
        return _again(request, guard, done, PAGE)
    return RedirectResponse(url, status_code=303)


def _owner(request: Request) -> Session | Response:
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not s.is_owner:
        return _problem(request, s, "forbidden", "deleting a webhook needs the owner role", 403)
    return s


def _webhook(request: Request, s: Session, webhook_id: str) -> dict | None:
    return next((h for h in notifications.list_webhooks(_ctx(request), s.principal) if h["id"] == webhook_id), None)


@router.get(PAGE + "/webhooks/{webhook_id}/delete", response_class=HTMLResponse)
def confirm_delete(request: Request, webhook_id: str):
    """The confirmation (no JavaScript needed): which webhook, and one button."""
    s = _owner(request)
    if not isinstance(s, Session):
        return s
    hook = _webhook(request, s, webhook_id)
    if hook is None:
        return _problem(request, s, "not_found", NOT_FOUND, 404)
    return _page(request, s, "webhook_delete.html", hook=hook)


@router.post(PAGE + "/webhooks/{webhook_id}/delete")
async def delete(request: Request, webhook_id: str):
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    try:
        await run_in_threadpool(notifications.delete_webhook, _ctx(request), guard.principal, webhook_id)
    except DomainError as exc:
        if exc.code == "not_found":
            return _problem(request, guard, "not_found", NOT_FOUND, 404)
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    return RedirectResponse(f"{PAGE}?done=webhook-deleted", status_code=303)
