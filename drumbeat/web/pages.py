"""The operator dashboard: server-rendered pages over the services (DESIGN.md §8, issue 6).

Pages read with the signed-in user's rights (a session kept on the server: services.access,
web/sessions.py); every POST carries a CSRF
token and is checked against the user's role on the server, whatever the page showed.
Forms work without JavaScript (POST, then redirect); static/app.js makes them answer in
place (`X-Requested-With: fetch` → JSON) and polls the live endpoint while a campaign sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.concurrency import run_in_threadpool

from drumbeat.domain.exceptions import DomainError, NotFound, RateLimited, ResumeBlocked, ValidationFailed
from drumbeat.domain.leads import LeadState
from drumbeat.domain.lifecycle import TERMINAL_STATUSES
from drumbeat.domain.roles import Role, allows
from drumbeat.domain.throttle import retry_after_seconds
from drumbeat.services import (
    access,
    campaigns,
    content,
    dashboard,
    forms,
    integrations,
    leads,
    stats,
    suppressions,
    workspaces,
)
from drumbeat.services import templates as catalogue
from drumbeat.services.context import Context, Principal
from drumbeat.services.sign_ins import SignInThrottle
from drumbeat.web import charts, present
from drumbeat.web.sessions import LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Signer

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_FILES = {"app.css": "text/css", "app.js": "text/javascript", "favicon.svg": "image/svg+xml"}
PER_PAGE = 50
LEADS_PER_PAGE = 50
IN_DOUBT_SHOWN = 50
TIMELINE_SHOWN = 200

# Autoescape everything: user text (names, templates, errors) is always rendered as text.
templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True))
templates.env.filters["dt"] = present.fmt_time
templates.env.globals["done_text"] = present.done_text
router = APIRouter(include_in_schema=False)
T = TypeVar("T")

# No inline script or style anywhere, so the policy can forbid them: an injected
# <script> would not run even if some text escaped escaping.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "style-src-attr 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Session:
    def __init__(self, principal: Principal, csrf: str, signer: Signer | None = None, nonce: str = "") -> None:
        self.principal = principal
        self.csrf = csrf
        self.can_operate = allows(principal.role, Role.OPERATOR)
        self.is_owner = allows(principal.role, Role.OWNER)
        self._signer, self._nonce = signer, nonce

    @property
    def nonce(self) -> str:
        """The session's id: what its CSRF and form tokens are bound to."""
        return self._nonce

    def form_nonce(self) -> str:
        """A fresh one-time nonce for a form that creates or acts (its hidden `form_nonce`)."""
        return self._signer.form_token(self._nonce) if self._signer else ""

    def nonce_of(self, token: str) -> str | None:
        """The nonce a posted form carries: "" when none was posted, None when forged or
        from another session."""
        if not token:
            return ""
        return self._signer.form_nonce(self._nonce, token) if self._signer else None


# --- plumbing ---------------------------------------------------------------------------

def _ctx(request: Request) -> Context:
    return request.app.state.ctx


def _signer(request: Request) -> Signer:
    signer = getattr(request.app.state, "web_signer", None)
    if signer is None:
        signer = Signer(_ctx(request).box.derive_key("dashboard-session"))
        request.app.state.web_signer = signer
    return signer


def _throttle(request: Request) -> SignInThrottle:
    return request.app.state.login_throttle  # one per app: create_app makes it (its counts are in the database)


_UNREAD = object()


def _session(request: Request) -> Session | None:
    """The request's live session (looked up once per request): None when the cookie is
    missing, forged or expired, or the server ended the session (signed out, user removed)."""
    found = getattr(request.state, "web_session", _UNREAD)
    if found is not _UNREAD:
        return found
    signer = _signer(request)
    secret = signer.session_secret(request.cookies.get(SESSION_COOKIE))
    live = access.find_session(_ctx(request), secret) if secret else None
    found = Session(live.principal, signer.csrf_token(live.id), signer, live.id) if live else None
    request.state.web_session = found
    return found


def _wants_json(request: Request) -> bool:
    return request.headers.get("x-requested-with") == "fetch"


def _render(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _page(request: Request, s: Session, name: str, http_status: int = 200, **context) -> HTMLResponse:
    return _render(request, name, {"s": s, "labels": present.STATUS_LABELS, **context}, http_status)


def _error_json(code: str, message: str, status: int, details: dict | None = None) -> JSONResponse:
    """The API's error envelope (API.md), for the pages' JSON answers."""
    return JSONResponse({"error": {"code": code, "message": message, "details": details or {}}}, status)


def _to_login(request: Request) -> Response:
    if _wants_json(request) or request.url.path.endswith(".json"):
        return _error_json("unauthorized", "sign in again", 401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _problem(request: Request, s: Session | None, code: str, message: str, status: int,
             details: dict | None = None) -> Response:
    if _wants_json(request):
        return _error_json(code, message, status, details)
    return _render(request, "error.html", {"s": s, "code": code, "message": message, "labels": {}}, status)


def _status_of(exc: DomainError) -> int:
    return {"not_found": 404, "validation_error": 422, "rate_limited": 429, "unavailable": 503,
            "forbidden": 403}.get(exc.code, 409)


def _safe_next(value: str | None) -> str:
    # Only a path of this site: never an open redirect to another host.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/campaigns"


def _guard_post(request: Request, csrf: str | None, header_csrf: str | None, need: Role) -> Session | Response:
    """A signed-in user, a valid CSRF token, and the role the action needs — checked on
    the server whatever the page showed."""
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not _signer_ok(request, csrf or header_csrf):
        return _problem(request, s, "forbidden", "the form has expired or did not come from this site; "
                                                 "reload the page and try again", 403)
    if not allows(s.principal.role, need):
        return _problem(request, s, "forbidden", f"this action needs the {need.value} role", 403)
    return s


def _once(request: Request, s: Session, token: str, effect: Callable[[Context], T], url_of: Callable[[T], str],
          *, joined: bool = True) -> forms.Once[T]:
    """`effect(ctx)` once per posted form (services.forms); a post without a nonce (a script,
    a page rendered before nonces) just runs it. A forged nonce is refused (FormExpired)."""
    nonce = s.nonce_of(token)
    if nonce is None:
        raise FormExpired()
    if not nonce:
        return forms.Once(effect(_ctx(request)))
    return forms.once(_ctx(request), s.principal, nonce, effect, url_of, joined=joined)


class FormExpired(DomainError):
    code = "forbidden"

    def __init__(self) -> None:
        super().__init__("the form has expired or did not come from this site; reload the page and try again")


def _with_done(url: str, done: str) -> str:
    """`url` with ?done=<done> (a known word, for the page's toast) instead of any done= it had."""
    path, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith("done=")]
    return path + "?" + "&".join([*kept, f"done={done}"])


def _again(request: Request, s: Session, first: forms.Once, fallback: str) -> Response:
    """A form posted a second time: nothing is done again; the first post's result, with a toast."""
    if _wants_json(request):
        return JSONResponse({"ok": True, "repeated": True, "message": present.DONE_TEXTS["again"],
                             "form_nonce": s.form_nonce(), "redirect": None})
    return RedirectResponse(_with_done(first.url or fallback, "again"), status_code=303)


def _posted_before(request: Request, s: Session, token: str, fallback: str) -> Response | None:
    """The answer to a second post, checked before anything else: for a route whose input the
    first post consumed (an import deletes its upload), so that it could not even begin again."""
    nonce = s.nonce_of(token)
    if nonce is None:
        return _problem(request, s, "forbidden", FormExpired().message, 403)
    first = forms.was_used(_ctx(request), s.principal, nonce) if nonce else None
    return _again(request, s, first, fallback) if first else None


def _signer_ok(request: Request, token: str | None) -> bool:
    s = _session(request)
    return s is not None and _signer(request).csrf_ok(s.nonce, token)


# --- static files ---------------------------------------------------------------------------

@router.get("/static/{name}")
def static_file(name: str):
    if name not in STATIC_FILES:
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


# --- signing in and out ---------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    return RedirectResponse("/campaigns" if _session(request) else "/login", status_code=303)


def _login_page(request: Request, error: str | None = None, status: int = 200, next_url: str = "") -> Response:
    cookie, nonce = _signer(request).new_login_nonce()
    response = _render(request, "login.html", {"s": None, "error": error, "csrf": _signer(request).csrf_token(nonce),
                                               "next": next_url, "labels": {}}, status)
    response.set_cookie(LOGIN_COOKIE, cookie, max_age=3600, httponly=True, samesite="lax", path="/login",
                        secure=request.url.scheme == "https")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = ""):
    return _login_page(request, next_url=_safe_next(next) if next else "")


@router.post("/login")
def login(request: Request, csrf: Annotated[str, Form()] = "", email: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = ""):
    signer = _signer(request)
    nonce = signer.login_nonce(request.cookies.get(LOGIN_COOKIE))
    if nonce is None or not signer.csrf_ok(nonce, csrf):
        return _login_page(request, "The sign-in form expired; please try again.", 403, next)
    ctx = _ctx(request)
    # A token sign-in counts against the client address only; a password one against both.
    tried_email = "" if token.strip() else email
    client = request.client.host if request.client else None
    throttle = _throttle(request)
    wait = throttle.attempt(tried_email, client)
    if wait is not None:  # refused before any credential is checked
        return _too_many_attempts(request, retry_after_seconds(wait), next)
    principal = None
    if token.strip():
        principal = workspaces.authenticate(ctx, token.strip())
    elif email.strip() and password:
        principal = dashboard.sign_in_with_password(ctx, email, password)
    if principal is None:
        return _login_page(request, "Those credentials are not valid.", 401, next)
    throttle.succeeded(tried_email, client)
    secret, _ = access.open_session(ctx, principal)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, signer.session_cookie(secret), max_age=SESSION_SECONDS,
                        httponly=True, samesite="lax", path="/", secure=request.url.scheme == "https")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _too_many_attempts(request: Request, seconds: int, next_url: str) -> Response:
    minutes = max(1, -(-seconds // 60))
    message = (f"Too many failed sign-in attempts. Please wait {minutes} minute{'s' if minutes > 1 else ''} "
               "before trying again.")
    headers = {"Retry-After": str(seconds)}
    if _wants_json(request):
        response: Response = _error_json("rate_limited", message, 429, {"retry_after_seconds": seconds})
    else:
        response = _login_page(request, message, 429, next_url)
    response.headers.update(headers)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = ""):
    """Sign out: the session ends on the server, so the cookie (or any copy of it) is no
    longer a session, whether or not the browser forgets it."""
    if _session(request) is not None:
        if not _signer_ok(request, csrf):
            return _problem(request, None, "forbidden", "the form did not come from this site", 403)
        access.end_session(_ctx(request), _signer(request).session_secret(request.cookies.get(SESSION_COOKIE)))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- campaigns ---------------------------------------------------------------------------

@router.get("/campaigns", response_class=HTMLResponse)
def campaign_list(request: Request, status: str = "", q: str = "", sort: str = "created_at", order: str = "desc",
                  page: str = "1"):
    s = _session(request)
    if s is None:
        return _to_login(request)
    status, q, sort, order, page_no = _list_query(status, q, sort, order, page)
    data = _list_data(request, s, status, q, sort, order, page_no)

    def link(**changes) -> str:
        params = {"status": status, "q": q, "sort": sort, "order": order, "page": 1, **changes}
        return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    return _page(request, s, "campaigns.html", data=data, status=status, q=q, sort=sort, order=order,
                 link=lambda **changes: "/campaigns" + link(**changes),
                 live_url="/campaigns/live.json" + link(page=page_no),
                 sorts=[("created_at", "Created"), ("name", "Name"), ("status", "Status"), ("percent", "Progress")])


@router.get("/campaigns/live.json")
def campaign_list_live(request: Request, status: str = "", q: str = "", sort: str = "created_at",
                       order: str = "desc", page: str = "1"):
    """The list page's rows and status counts, polled by its script while it is open."""
    s = _session(request)
    if s is None:
        return _to_login(request)
    data = _list_data(request, s, *_list_query(status, q, sort, order, page))
    return JSONResponse(jsonable_encoder({"items": data["items"], "status_counts": data["status_counts"],
                                          "all_count": data["all_count"]}), headers={"Cache-Control": "no-store"})


def _list_query(status: str, q: str, sort: str, order: str, page: str) -> tuple[str, str, str, str, int]:
    """The list's filters as the page understands them: anything unknown falls back."""
    status = status if status in present.STATUS_LABELS else ""
    sort = sort if sort in dashboard.SORT_KEYS else "created_at"
    order = order if order in ("asc", "desc") else "desc"
    page_no = min(max(1, int(page)) if page.isdigit() and len(page) < 7 else 1, 10**6)
    return status, q.strip()[:200], sort, order, page_no


def _list_data(request: Request, s: Session, status: str, q: str, sort: str, order: str, page_no: int) -> dict:
    data = dashboard.campaign_page(_ctx(request), s.principal, status=status or None, q=q or None, sort=sort,
                                   order=order, page=page_no, per_page=PER_PAGE)
    data["items"] = [present.campaign_list_row(row) for row in data["items"]]
    data["live"] = any(row["live"] for row in data["items"])
    return data


def _detail(ctx: Context, s: Session, campaign_id: str) -> dict:
    view = campaigns.get_campaign(ctx, s.principal, campaign_id)
    timeline = campaigns.get_timeline(ctx, s.principal, campaign_id)[-TIMELINE_SHOWN:]
    in_doubt = leads.list_leads(ctx, s.principal, campaign_id, state=LeadState.IN_DOUBT,
                                limit=IN_DOUBT_SHOWN)["items"]
    ids = {t["actor_id"] for t in timeline if t["actor_type"] == "user" and t["actor_id"]}
    if view["paused_by"] and view["paused_by"]["type"] == "user":
        ids.add(view["paused_by"]["id"])
    emails = dashboard.user_emails(ctx, s.principal, ids)
    return present.campaign_detail(view, timeline, in_doubt, emails, s.can_operate)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(request: Request, campaign_id: str):
    s = _session(request)
    if s is None:
        return _to_login(request)
    try:
        c = _detail(_ctx(request), s, campaign_id)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such campaign in this workspace.", 404)
    return _page(request, s, "campaign.html", c=c, alert=None, reasons=present.EXPLANATION_TEXTS,
                 opt_outs=_opt_outs(_ctx(request), s, c), perf=_performance(_ctx(request), s, campaign_id))


def _performance(ctx: Context, s: Session, campaign_id: str) -> dict | None:
    """The "What works" card of a campaign that has started (web.charts)."""
    result = stats.recent_stats(ctx, s.principal, campaign_id)
    return charts.performance(result, result["timezone"]) if result else None


def _opt_outs(ctx: Context, s: Session, c: dict) -> list[tuple[str, int]]:
    """The campaign's opted-out leads by reason (one query, and none while nobody opted out)."""
    if not next((n["value"] for n in c["numbers"] if n["key"] == "opted_out"), 0):
        return []
    by_reason = suppressions.opted_out_by_reason(ctx, s.principal, c["id"])
    return present.opt_out_rows(by_reason)


@router.get("/campaigns/{campaign_id}/live.json")
def campaign_live(request: Request, campaign_id: str):
    """The detail page's data, polled by its script while it is open."""
    s = _session(request)
    if s is None:
        return _to_login(request)
    try:
        c = _detail(_ctx(request), s, campaign_id)
    except NotFound:
        return _error_json("not_found", "campaign not found", 404)
    return JSONResponse(jsonable_encoder(c), headers={"Cache-Control": "no-store"})


ACTIONS = {"start", "pause", "resume", "cancel", "duplicate"}


@router.post("/campaigns/{campaign_id}/actions/{action}")
def campaign_action(request: Request, campaign_id: str, action: str, csrf: Annotated[str, Form()] = "",
                    confirm: Annotated[str | None, Form()] = None, form_nonce: Annotated[str, Form()] = "",
                    x_csrf_token: Annotated[str | None, Header()] = None):
    guard = _guard_post(request, csrf, x_csrf_token, Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    s = guard
    if action not in ACTIONS:
        return _problem(request, s, "not_found", "unknown action", 404)
    ctx = _ctx(request)
    detail_url = f"/campaigns/{quote(campaign_id, safe='')}"

    def act(c: Context) -> dict:
        if action == "cancel":
            return campaigns.cancel(c, s.principal, campaign_id, confirm)
        if action == "duplicate":
            return campaigns.duplicate(c, s.principal, campaign_id, include_leads=False)
        return getattr(campaigns, action)(c, s.principal, campaign_id)

    def url_of(result: dict) -> str:
        return f"/campaigns/{result['id']}?done={action}"

    try:
        done = _once(request, s, form_nonce, act, url_of)
        if done.repeated:
            return _again(request, s, done, detail_url)
        result = done.result
        assert result is not None
        if action == "duplicate":
            detail_url = f"/campaigns/{result['id']}"
    except DomainError as exc:
        if _wants_json(request):
            return _problem(request, s, exc.code, exc.message, _status_of(exc), exc.details)
        if exc.code == "not_found":
            return _problem(request, s, "not_found", "There is no such campaign in this workspace.", 404)
        if exc.code == "confirmation_required":  # the confirmation page again, the typed name kept
            return _page(request, s, "cancel.html", 422, c=_detail(ctx, s, campaign_id), typed=confirm or "",
                         error="Type the campaign's exact name to cancel it.")
        alert = {"message": exc.message, "code": exc.code,
                 "gates": present.gates_view(exc.details.get("gates", []))}
        c = _detail(ctx, s, campaign_id)
        return _page(request, s, "campaign.html", _status_of(exc), c=c, alert=alert,
                     reasons=present.EXPLANATION_TEXTS)
    if _wants_json(request):
        return JSONResponse({"ok": True, "status": result["status"], "message": present.ACTION_DONE[action],
                             "redirect": f"{detail_url}?done={action}" if action == "duplicate" else None,
                             "form_nonce": s.form_nonce()})
    # ?done= names the action for the page's toast (a known word only: nothing typed is echoed).
    return RedirectResponse(f"{detail_url}?done={action}", status_code=303)


@router.get("/campaigns/{campaign_id}/cancel", response_class=HTMLResponse)
def cancel_page(request: Request, campaign_id: str):
    """The cancel confirmation as a page: the campaign page's dialog without JavaScript."""
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not s.can_operate:
        return _problem(request, s, "forbidden", "canceling a campaign needs the operator role", 403)
    try:
        c = _detail(_ctx(request), s, campaign_id)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such campaign in this workspace.", 404)
    if "cancel" not in c["actions"]:
        word = present.STATUS_LABELS.get(c["status"], c["status"]).lower()
        return _problem(request, s, "invalid_transition", f"This campaign is {word}: it cannot be canceled.", 409)
    return _page(request, s, "cancel.html", c=c, typed="", error=None)


@router.post("/campaigns/{campaign_id}/leads/{lead_id}/resolve")
def resolve_lead(request: Request, campaign_id: str, lead_id: str, csrf: Annotated[str, Form()] = "",
                 resolution: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "",
                 form_nonce: Annotated[str, Form()] = "", x_csrf_token: Annotated[str | None, Header()] = None):
    guard = _guard_post(request, csrf, x_csrf_token, Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    target = _with_done(_safe_next(back) if back else f"/campaigns/{quote(campaign_id, safe='')}", "resolve")
    try:
        done = _once(request, guard, form_nonce, lambda c: leads.resolve(c, guard.principal, campaign_id, lead_id,
                                                                         resolution), lambda _: target)
    except DomainError as exc:
        return _problem(request, guard, exc.code, exc.message, _status_of(exc), exc.details)
    if done.repeated:
        return _again(request, guard, done, target)
    assert done.result is not None
    if _wants_json(request):
        return JSONResponse({"ok": True, "state": done.result["state"], "message": present.ACTION_DONE["resolve"]})
    return RedirectResponse(target, status_code=303)


# --- leads ----------------------------------------------------------------------------------

@router.get("/campaigns/{campaign_id}/leads", response_class=HTMLResponse)
def lead_list(request: Request, campaign_id: str, state: str = "", q: str = "", cursor: str = ""):
    s = _session(request)
    if s is None:
        return _to_login(request)
    ctx = _ctx(request)
    state = state if state in present.LEAD_STATE_LABELS else ""
    q = q.strip()[:200]
    try:
        view = campaigns.get_campaign(ctx, s.principal, campaign_id)
        page = leads.list_leads(ctx, s.principal, campaign_id, state=state or None, q=q or None,
                                limit=LEADS_PER_PAGE, cursor=cursor or None)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such campaign in this workspace.", 404)
    except DomainError as exc:
        return _problem(request, s, exc.code, exc.message, _status_of(exc))
    next_link = None
    if page["next_cursor"]:
        next_link = f"/campaigns/{campaign_id}/leads?" + urlencode(
            {k: v for k, v in {"state": state, "q": q, "cursor": page["next_cursor"]}.items() if v})
    return _page(request, s, "leads.html", campaign=view, rows=[present.lead_row(r) for r in page["items"]],
                 state=state, q=q, next_link=next_link, states=present.LEAD_STATE_LABELS,
                 counts=view["progress"])


@router.get("/campaigns/{campaign_id}/leads/{lead_id}", response_class=HTMLResponse)
def lead_page(request: Request, campaign_id: str, lead_id: str):
    s = _session(request)
    if s is None:
        return _to_login(request)
    ctx = _ctx(request)
    try:
        view = campaigns.get_campaign(ctx, s.principal, campaign_id)
        lead = leads.get_lead(ctx, s.principal, campaign_id, lead_id)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such lead in this workspace.", 404)
    return _page(request, s, "lead.html", campaign=view, lead=lead, row=present.lead_row(lead),
                 attributes=json.dumps(lead["attributes"], ensure_ascii=False, sort_keys=True),
                 opt_out=suppressions.opt_out_story(ctx, s.principal, lead), channels=present.CHANNEL_WORDS)


# --- integrations -----------------------------------------------------------------------

@router.get("/integrations", response_class=HTMLResponse)
def integration_list(request: Request):
    s = _session(request)
    if s is None:
        return _to_login(request)
    ctx = _ctx(request)
    items = integrations.list_integrations(ctx, s.principal)
    failed = dashboard.key_failures_in_current_runs(ctx, s.principal)
    by_channel: dict[str, list[dict]] = {}
    for item in items:
        item["failed_in_run"] = failed.get(item["id"], [])
        item["config_json"] = json.dumps(item["config"], sort_keys=True)
        by_channel.setdefault(item["channel"], []).append(item)
    return _page(request, s, "integrations.html", by_channel=by_channel, saved=request.query_params.get("saved"))


@router.post("/integrations/{integration_id}")
async def integration_update(request: Request, integration_id: str):
    """Rotate a key (credential fields left blank keep their value), change the config,
    disable or enable: owners only, as in the API."""
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    patch: dict = {}
    if form.get("enabled") in ("true", "false"):
        patch["enabled"] = form.get("enabled") == "true"
    credentials = {key[5:]: str(value) for key, value in form.items() if key.startswith("cred.") and str(value)}
    if credentials:
        patch["credentials"] = credentials
    raw_config = str(form.get("config", "")).strip()
    if raw_config:
        try:
            config = json.loads(raw_config)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            config = None
        if not isinstance(config, dict):
            return _problem(request, guard, "validation_error", "the config must be a JSON object", 422)
        patch["config"] = config
    try:
        await run_in_threadpool(integrations.update_integration, _ctx(request), guard.principal, integration_id,
                                patch)
    except DomainError as exc:
        fields = "; ".join(f"{f['field']}: {f['message']}" for f in exc.details.get("fields", []))
        return _problem(request, guard, exc.code, exc.message + (f" ({fields})" if fields else ""),
                        _status_of(exc), exc.details)
    if _wants_json(request):
        return JSONResponse({"ok": True})
    return RedirectResponse(f"/integrations?saved={quote(integration_id, safe='')}&done=list-saved", status_code=303)


# --- an integration and its WhatsApp template catalogue (issue 18) ----------------------------

@router.get("/integrations/{integration_id}", response_class=HTMLResponse)
def integration_page(request: Request, integration_id: str, synced: str = ""):
    s = _session(request)
    if s is None:
        return _to_login(request)
    count = int(synced) if synced.isdigit() and len(synced) < 7 else None
    return _integration_page(request, s, integration_id, synced=count)


def _integration_page(request: Request, s: Session, integration_id: str, status: int = 200,
                      alert: str | None = None, synced: int | None = None, **extra) -> Response:
    ctx = _ctx(request)
    try:
        item = integrations.get_integration(ctx, s.principal, integration_id)
        rows = present.catalogue_rows(catalogue.list_templates(ctx, s.principal, integration_id))
    except NotFound:
        return _problem(request, s, "not_found", "There is no such integration in this workspace.", 404)
    item["config_json"] = json.dumps(item["config"], sort_keys=True)
    extra.setdefault("trouble", present.key_trouble_view(dashboard.key_trouble(ctx, s.principal, integration_id)))
    if synced is not None:
        extra.setdefault("toast", f"Synced {synced} template{'' if synced == 1 else 's'}.")
    return _page(request, s, "integration.html", status, i=item, rows=rows, alert=alert, synced=synced,
                 has_catalogue=item["provider"] == "whatsapp_cloud", waba_id=item["config"].get("waba_id"),
                 provider_word=present.PROVIDER_WORDS.get(item["provider"], item["provider"]), **extra)


@router.post("/integrations/{integration_id}/templates/sync")
def template_sync(request: Request, integration_id: str, csrf: Annotated[str, Form()] = "",
                  form_nonce: Annotated[str, Form()] = "", x_csrf_token: Annotated[str | None, Header()] = None):
    """Read the WhatsApp Business Account's templates now (operators and owners, as in the API).
    A refusal shows the page again with the provider's words and the catalogue kept."""
    guard = _guard_post(request, csrf, x_csrf_token, Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    page = f"/integrations/{quote(integration_id, safe='')}"
    try:  # a sync route: FastAPI runs it in a thread, where the service may run its own loop
        done = _once(request, guard, form_nonce,
                     lambda c: catalogue.sync_catalogue(c, guard.principal, integration_id),
                     lambda result: f"{page}?synced={result['synced']}", joined=False)  # waits on Meta
    except NotFound:
        return _problem(request, guard, "not_found", "There is no such integration in this workspace.", 404)
    except DomainError as exc:
        if exc.code == "forbidden":
            return _problem(request, guard, exc.code, exc.message, 403)
        return _integration_page(request, guard, integration_id, _status_of(exc),
                                 alert=present.sync_problem(exc.code, exc.message, exc.details))
    if done.repeated:
        return _again(request, guard, done, page)
    assert done.result is not None
    return RedirectResponse(f"{page}?synced={done.result['synced']}", status_code=303)


# --- a campaign's preview and test send (issue 18) ------------------------------------------

LEADS_TO_CHOOSE = 20


@router.get("/campaigns/{campaign_id}/preview", response_class=HTMLResponse)
def preview_page(request: Request, campaign_id: str, lead_id: str = ""):
    s = _session(request)
    if s is None:
        return _to_login(request)
    return _preview_page(request, s, campaign_id, lead_id.strip() or None)


def _preview_page(request: Request, s: Session, campaign_id: str, lead_id: str | None, status: int = 200,
                  test: dict | None = None, alert: dict | None = None, toast: str = "") -> Response:
    """Every step rendered for the chosen lead (else the first), with a test-send form per
    step; `test` is the answer to a test send of one step, shown beside it."""
    ctx = _ctx(request)
    try:
        view = campaigns.get_campaign(ctx, s.principal, campaign_id)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such campaign in this workspace.", 404)
    try:
        shown = content.preview(ctx, s.principal, campaign_id, lead_id)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such lead in this campaign.", 404)
    choices = leads.list_leads(ctx, s.principal, campaign_id, limit=LEADS_TO_CHOOSE)["items"]
    if shown["lead_id"] and all(lead["id"] != shown["lead_id"] for lead in choices):
        choices.append(leads.get_lead(ctx, s.principal, campaign_id, shown["lead_id"]))
    return _page(request, s, "preview.html", status, campaign=view, lead_id=shown["lead_id"],
                 choices=[present.lead_row(lead) for lead in choices], steps=present.preview_steps(shown),
                 missing=present.missing_variables_view(view.get("missing_variables") or []),
                 can_test=s.can_operate and view["status"] not in TERMINAL_STATUSES,
                 test=test or {}, alert=alert, toast=toast)


@router.post("/campaigns/{campaign_id}/test")
async def test_send(request: Request, campaign_id: str):
    """Send one rendered step to the operator's own address (operators): the page answers with
    the provider's verdict beside the step, or why not (a field, the key pool's gates, the
    rate limit) — the API's POST /campaigns/{id}/test without JavaScript."""
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    raw_step, lead_id = str(form.get("step", "")), str(form.get("lead_id", "")).strip() or None
    # The address input is named `to.<kind>` so that the service's field errors land beside it.
    to = {key[3:]: str(value) for key, value in form.items() if key.startswith("to.")}
    test: dict = {"step": int(raw_step) if raw_step.isdigit() and len(raw_step) < 7 else None, "typed": to,
                  "lead_id": lead_id}
    ctx = _ctx(request)
    headers: dict[str, str] = {}
    try:
        if test["step"] is None:
            raise ValidationFailed([{"field": "step", "message": "choose a step of the campaign"}])
        preview_url = f"/campaigns/{quote(campaign_id, safe='')}/preview" + (
            f"?{urlencode({'lead_id': lead_id})}" if lead_id else "")
        step = test["step"]
        done = await run_in_threadpool(  # its own transactions: the provider answers in between
            _once, request, guard, str(form.get("form_nonce", "")),
            lambda c: content.send_test(c, guard.principal, campaign_id, step=step, to=to, lead_id=lead_id),
            lambda _: preview_url, joined=False)
        if done.repeated:
            return _again(request, guard, done, preview_url)
        answer = done.result
        assert answer is not None
    except NotFound as exc:
        what = "lead in this campaign" if exc.message.startswith("lead") else "campaign in this workspace"
        return _problem(request, guard, "not_found", f"There is no such {what}.", 404)
    except DomainError as exc:
        status = _status_of(exc)
        test.update(_test_refusal(exc))
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.details.get("retry_after_seconds", 60))
        if exc.code == "validation_error" and any(f["field"] == "step" for f in exc.details.get("fields", [])):
            test["step"] = None  # no step to show it beside: the page's alert says it
    else:
        status = 200
        provider = integrations.get_integration(ctx, guard.principal, answer["integration_id"])["provider"]
        test["verdict"] = present.send_test_verdict(answer, provider)
    alert = None if test["step"] is not None else {"message": test.get("message") or "; ".join(
        test.get("errors", {}).values()), "gates": test.get("gates", [])}
    toast = f"Test of step {test['step'] + 1}: {test['verdict']['text']}" if "verdict" in test else ""
    response = _preview_page(request, guard, campaign_id, lead_id, status, test=test, alert=alert, toast=toast)
    response.headers.update(headers)
    return response


def _test_refusal(exc: DomainError) -> dict:
    """A refused test send in words: field errors (shown beside their input), the closed
    gates of the step's key pool, the rate limit, or a finished campaign."""
    if isinstance(exc, ValidationFailed):
        return {"errors": {f["field"]: f["message"] for f in exc.fields}}
    if isinstance(exc, ResumeBlocked):
        return {"message": "No test send: no key of this campaign may send on this channel now.",
                "gates": present.gates_view(exc.details.get("gates", []))}
    if isinstance(exc, RateLimited):
        wait = exc.details.get("retry_after_seconds")
        return {"message": f"Too many test sends: {exc.message}. Try again in {wait} seconds."}
    if exc.code == "invalid_transition":
        return {"message": f"No test send: the campaign is {exc.details.get('from')}, and a finished campaign "
                           "sends nothing."}
    return {"message": exc.message}


# --- notifications ----------------------------------------------------------------------

@router.get("/notifications", response_class=HTMLResponse)
def notification_list(request: Request):
    s = _session(request)
    if s is None:
        return _to_login(request)
    hooks, error = _webhooks(_ctx(request), s.principal)
    return _page(request, s, "notifications.html", hooks=hooks, error=error)


def _webhooks(ctx: Context, principal: Principal) -> tuple[list[dict] | None, str | None]:
    """Outbound webhooks and their recent deliveries (services.notifications, issue 5)."""
    try:
        from drumbeat.services import notifications
    except ImportError:  # a build without outbound webhooks
        return None, "Outbound webhooks are not available in this build."
    hooks = []
    for hook in _items(notifications.list_webhooks(ctx, principal)):
        deliveries = _items(notifications.list_deliveries(ctx, principal, hook["id"], limit=20))
        hooks.append({**hook, "deliveries": deliveries})
    return hooks, None


def _items(result) -> list[dict]:
    return list(result["items"] if isinstance(result, dict) else result)
