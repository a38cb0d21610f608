"""Users and API tokens in the browser (issue 23): `POST/GET/PATCH/DELETE /api/v1/users` and
`/api/v1/tokens` as pages, through the API's own models and service functions (which audit
every change), so the page can accept nothing the API refuses.

Users (owner only, as the API's users routes): list with roles, invite with a role and a
password or a sign-in link, change a role, remove after a confirmation page. The last owner
can be neither demoted nor removed: the service refuses it and the page says so in words.
Removing a user ends their dashboard sessions and API tokens in the same transaction.

API tokens: everyone sees their own (an owner, every user's, with whose each is), with when
it was made and last used. The API lets anyone manage their own tokens; the dashboard
follows the roles of DESIGN.md §1 instead — a viewer reads only — so creating and revoking
here need the operator role (own tokens) or the owner role (anyone's, and for anyone).

A new token (or an invited user's first token) is shown in the answer to the POST only,
never stored in clear and never put in a URL: a reload posts the same one-time form, which
does nothing the second time. Forms work without JavaScript; app.js adds copy buttons.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from drumbeat.domain.exceptions import DomainError, LastOwner, ValidationFailed
from drumbeat.domain.roles import Role
from drumbeat.schemas import TokenCreate, UserCreate, UserUpdate
from drumbeat.services import access, workspaces
from drumbeat.services.passwords import hash_password
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

USERS, TOKENS = "/users", "/tokens"
ROLE_WORDS = {Role.OWNER: "Owner", Role.OPERATOR: "Operator", Role.VIEWER: "Viewer"}
ROLE_HINTS = {Role.OWNER: "everything, including users, integrations and the subscription",
              Role.OPERATOR: "campaigns: create, edit, start, pause, resume, cancel, import",
              Role.VIEWER: "reads only"}
SIGN_IN_WAYS = ("password", "link")
NO_USER = "There is no such user in this workspace."
NO_TOKEN = "There is no such API token in this workspace."


def _sentence(message: str) -> str:
    message = message.removeprefix("Value error, ")
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _model_errors(exc: ValidationError) -> dict[str, list[str]]:
    """The API model's errors by the form's field, as sentences."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "email"
        if error.get("input") in ("", None):
            message = "Required."
        elif field == "role":
            message = "Choose one of the roles."
        else:
            message = _sentence(error["msg"])
        errors.setdefault(field, []).append(message)
    return errors


def _owner(request: Request, what: str) -> Session | Response:
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not s.is_owner:
        return _problem(request, s, "forbidden", f"{what} needs the owner role", 403)
    return s


def _users_of(request: Request, s: Session) -> list[dict]:
    return workspaces.list_users(_ctx(request), s.principal)


# --- users ----------------------------------------------------------------------------------

def _users_page(request: Request, s: Session, status: int = 200, *, typed: dict | None = None,
                errors: dict | None = None, invited: dict | None = None, toast: str = "") -> Response:
    users = _users_of(request, s)
    tokens = access.list_tokens(_ctx(request), s.principal)["items"]
    counts = {u["id"]: sum(1 for t in tokens if t["user_id"] == u["id"]) for u in users}
    owners = sum(1 for u in users if u["role"] == Role.OWNER)
    return _page(request, s, "users.html", status, users=users, token_counts=counts, owners=owners,
                 roles=ROLE_WORDS, role_hints=ROLE_HINTS,
                 typed=typed or {"email": "", "role": Role.OPERATOR.value, "sign_in": "link"},
                 errors=errors or {}, invited=invited, toast=toast)


def sign_in_link(request: Request, token: str) -> str:
    """The sign-in page (at the public URL when one is set, as the notifications' links)
    with the token in the fragment: a browser never sends a fragment to the server (nor in
    a Referer), and app.js signs in with it; without JavaScript the person pastes the token
    into the page's token field."""
    base = _ctx(request).public_url or str(request.base_url)
    return f"{base.rstrip('/')}/login#token={quote(token, safe='')}"


@router.get(USERS, response_class=HTMLResponse)
def users_page(request: Request):
    s = _owner(request, "the users page")
    if not isinstance(s, Session):
        return s
    return _users_page(request, s)


@router.post(USERS)
async def invite(request: Request):
    """A new user with a role, signing in with the password typed here or with a sign-in
    link (their first API token, shown once on the answer)."""
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    typed = {"email": str(form.get("email", "")).strip(), "role": str(form.get("role", "")),
             "sign_in": str(form.get("sign_in", "link"))}
    typed["sign_in"] = typed["sign_in"] if typed["sign_in"] in SIGN_IN_WAYS else "link"
    password = str(form.get("password", ""))
    body = {"email": typed["email"], "role": typed["role"]}
    if typed["sign_in"] == "password":
        body["password"] = password
    try:
        model = UserCreate.model_validate(body)
    except ValidationError as exc:
        errors = _model_errors(exc)
        return await run_in_threadpool(lambda: _users_page(request, guard, 422, typed=typed, errors=errors))
    password_hash = await run_in_threadpool(hash_password, model.password) if model.password is not None else None
    try:
        done = await run_in_threadpool(
            _once, request, guard, str(form.get("form_nonce", "")),
            lambda c: workspaces.create_user(c, guard.principal, model.email, model.role.value, password_hash),
            lambda _: USERS)
    except ValidationFailed as exc:
        errors = {p["field"]: [_sentence(p["message"])] for p in exc.fields}
        return await run_in_threadpool(lambda: _users_page(request, guard, 422, typed=typed, errors=errors))
    except DomainError as exc:
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    if done.repeated:
        return _again(request, guard, done, USERS)
    user = done.result
    invited = {**user, "sign_in": typed["sign_in"], "link": sign_in_link(request, user["token"])}
    return await run_in_threadpool(lambda: _users_page(
        request, guard, invited=invited, toast=f"{user['email']} added as {user['role']}."))


@router.post(USERS + "/{user_id}/role")
async def change_role(request: Request, user_id: str):
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    field = f"role-{user_id}"
    try:
        role = UserUpdate.model_validate({"role": str(form.get("role", ""))}).role.value
    except ValidationError:
        return await run_in_threadpool(lambda: _users_page(request, guard, 422,
                                                           errors={field: ["Choose one of the roles."]}))
    try:
        done = await run_in_threadpool(
            _once, request, guard, str(form.get("form_nonce", "")),
            lambda c: access.change_role(c, guard.principal, user_id, role), lambda _: USERS)
    except LastOwner:
        message = ("This is the workspace's last owner: make another user owner first, "
                   "then change this role.")
        return await run_in_threadpool(lambda: _users_page(request, guard, 409, errors={field: [message]}))
    except DomainError as exc:
        if exc.code == "not_found":
            return _problem(request, guard, "not_found", NO_USER, 404)
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    if done.repeated:
        return _again(request, guard, done, USERS)
    if user_id == guard.principal.user_id and role != Role.OWNER:
        # One's own role counts from the next request: the users page is no longer one's to see.
        return RedirectResponse("/campaigns?done=role-changed", status_code=303)
    return RedirectResponse(f"{USERS}?done=role-changed", status_code=303)


def _remove_page(request: Request, s: Session, user: dict, status: int = 200, error: str = "") -> Response:
    tokens = [t for t in access.list_tokens(_ctx(request), s.principal)["items"] if t["user_id"] == user["id"]]
    return _page(request, s, "user_remove.html", status, user=user, tokens=len(tokens), roles=ROLE_WORDS,
                 error=error)


def _user(request: Request, s: Session, user_id: str) -> dict | None:
    return next((u for u in _users_of(request, s) if u["id"] == user_id), None)


@router.get(USERS + "/{user_id}/remove", response_class=HTMLResponse)
def confirm_remove(request: Request, user_id: str):
    """The confirmation (no JavaScript needed): who, what ends with them, and one button."""
    s = _owner(request, "removing a user")
    if not isinstance(s, Session):
        return s
    user = _user(request, s, user_id)
    if user is None:
        return _problem(request, s, "not_found", NO_USER, 404)
    return _remove_page(request, s, user)


@router.post(USERS + "/{user_id}/remove")
async def remove(request: Request, user_id: str):
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    try:
        done = await run_in_threadpool(
            _once, request, guard, str(form.get("form_nonce", "")),
            lambda c: access.remove_user(c, guard.principal, user_id), lambda _: USERS)
    except LastOwner:
        user = await run_in_threadpool(_user, request, guard, user_id)
        message = "This is the workspace's last owner and cannot be removed: make another user owner first."
        return await run_in_threadpool(lambda: _remove_page(request, guard, user, 409, message))
    except DomainError as exc:
        if exc.code == "not_found":
            return _problem(request, guard, "not_found", NO_USER, 404)
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    if done.repeated:
        return _again(request, guard, done, USERS)
    if user_id == guard.principal.user_id:
        return RedirectResponse("/login", status_code=303)  # one's own sessions ended with one
    return RedirectResponse(f"{USERS}?done=user-removed", status_code=303)


# --- API tokens -----------------------------------------------------------------------------

def _tokens_page(request: Request, s: Session, status: int = 200, *, created: dict | None = None,
                 errors: dict | None = None, toast: str = "") -> Response:
    ctx = _ctx(request)
    tokens = access.list_tokens(ctx, s.principal)["items"]
    users = workspaces.list_users(ctx, s.principal) if s.is_owner else [
        {"id": s.principal.user_id, "email": s.principal.email, "role": s.principal.role}]
    emails = {u["id"]: u["email"] for u in users}
    tokens = sorted(tokens, key=lambda t: (emails.get(t["user_id"], ""), t["created_at"], t["id"]))
    return _page(request, s, "tokens.html", status, tokens=tokens, users=users, emails=emails, created=created,
                 errors=errors or {}, toast=toast)


@router.get(TOKENS, response_class=HTMLResponse)
def tokens_page(request: Request):
    s = _session(request)
    if s is None:
        return _to_login(request)
    return _tokens_page(request, s)


@router.post(TOKENS)
async def create_token(request: Request):
    """A new token for oneself, or (owner) for another user: shown in this answer only."""
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    user_id = str(form.get("user_id", "")).strip() or guard.principal.user_id
    try:
        body = TokenCreate.model_validate({"user_id": user_id})
    except ValidationError:
        return await run_in_threadpool(lambda: _tokens_page(request, guard, 422,
                                                            errors={"user_id": ["Choose a user of the list."]}))
    try:
        done = await run_in_threadpool(
            _once, request, guard, str(form.get("form_nonce", "")),
            lambda c: access.create_token(c, guard.principal, body.user_id), lambda _: TOKENS)
    except DomainError as exc:
        if exc.code == "not_found":
            return await run_in_threadpool(lambda: _tokens_page(request, guard, 422,
                                                                errors={"user_id": ["Choose a user of the list."]}))
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    if done.repeated:
        return _again(request, guard, done, TOKENS)
    created = {**done.result, "user_id": body.user_id}
    return await run_in_threadpool(lambda: _tokens_page(request, guard, created=created,
                                                        toast="API token created: copy it now."))


def _token(request: Request, s: Session, token_id: str) -> dict | None:
    return next((t for t in access.list_tokens(_ctx(request), s.principal)["items"] if t["id"] == token_id), None)


@router.get(TOKENS + "/{token_id}/revoke", response_class=HTMLResponse)
def confirm_revoke(request: Request, token_id: str):
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not s.can_operate:
        return _problem(request, s, "forbidden", "revoking a token needs the operator role", 403)
    token = _token(request, s, token_id)  # only one's own, or (owner) the workspace's
    if token is None:
        return _problem(request, s, "not_found", NO_TOKEN, 404)
    users = workspaces.list_users(_ctx(request), s.principal) if s.is_owner else []
    email = next((u["email"] for u in users if u["id"] == token["user_id"]), s.principal.email)
    return _page(request, s, "token_revoke.html", token=token, email=email)


@router.post(TOKENS + "/{token_id}/revoke")
async def revoke(request: Request, token_id: str):
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    try:
        done = await run_in_threadpool(
            _once, request, guard, str(form.get("form_nonce", "")),
            lambda c: access.revoke_token(c, guard.principal, token_id), lambda _: TOKENS)
    except DomainError as exc:
        if exc.code == "not_found":
            return _problem(request, guard, "not_found", NO_TOKEN, 404)
        return _problem(request, guard, exc.code, exc.message, _status_of(exc))
    if done.repeated:
        return _again(request, guard, done, TOKENS)
    # A session opened by pasting this token ended with it: /tokens then asks to sign in.
    return RedirectResponse(f"{TOKENS}?done=token-revoked", status_code=303)
