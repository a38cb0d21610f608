"""Access that can be taken back (API.md v1.1, Trust without a person): dashboard sessions
kept on the server, API tokens created, listed and revoked, users re-roled and removed.

A session or token answers as signed-out the moment its row is gone: each request looks
its secret's hash up, so there is nothing to wait for. Removing a user deletes their
sessions and tokens in the same transaction. Every change is in the audit log, written in
its own transaction (services.audit.record).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from drumbeat.domain.access import LAST_USED_EVERY, last_use_is_stale, leaves_no_owner, may_manage_tokens_of
from drumbeat.domain.audit import CREATED, DELETED, UPDATED
from drumbeat.domain.exceptions import Forbidden, LastOwner, NotFound
from drumbeat.services import audit
from drumbeat.services.context import Context, Principal
from drumbeat.store import access as store
from drumbeat.store import workspaces as workspace_store

SESSION_LIFETIME = timedelta(hours=12)


# --- dashboard sessions -------------------------------------------------------------------------

@dataclass(frozen=True)
class WebSession:
    id: str  # not secret: binds the CSRF and form tokens to this session
    principal: Principal


def open_session(ctx: Context, principal: Principal) -> tuple[str, WebSession]:
    """A new session for a user who just signed in: (its secret, for the cookie, never
    stored; the session). A session opened with an API token (principal.token_id) ends
    when that token is revoked. Expired sessions are deleted on the way."""
    secret = secrets.token_urlsafe(32)
    now = ctx.clock()
    with ctx.db.begin() as conn:
        store.delete_expired_sessions(conn, now)
        session_id = store.insert_session(conn, principal.user_id, principal.token_id, secret, now,
                                          now + SESSION_LIFETIME)
    return secret, WebSession(session_id, principal)


def find_session(ctx: Context, secret: str) -> WebSession | None:
    """The live session with this secret, its user read now (a changed role counts at once)."""
    with ctx.db.begin() as conn:
        row = store.find_session(conn, secret, ctx.clock())
    if row is None:
        return None
    return WebSession(row["session_id"], Principal(row["id"], row["workspace_id"], row["role"], row["email"]))


def end_session(ctx: Context, secret: str) -> bool:
    """Sign out: the session is gone on the server, so a copy of its cookie is worth nothing."""
    with ctx.db.begin() as conn:
        return store.delete_session(conn, secret) > 0


# --- API tokens ------------------------------------------------------------------------------------

def token_view(row: dict) -> dict:
    return {"id": row["id"], "user_id": row["user_id"], "created_at": row["created_at"],
            "last_used_at": row["last_used_at"]}


def _target_user(conn, principal: Principal, user_id: str) -> dict:
    user = store.get_user(conn, principal.workspace_id, user_id)
    if user is None:
        raise NotFound("user not found", {"id": user_id})
    if not may_manage_tokens_of(principal.user_id, principal.role, user_id):
        raise Forbidden("only an owner may manage another user's tokens")
    return user


def create_token(ctx: Context, principal: Principal, user_id: str | None = None) -> dict:
    """A new token for the caller, or (owner) for any user of the workspace: {"id", "token"},
    the token in clear only in this answer."""
    with ctx.db.begin() as conn:
        user = _target_user(conn, principal, user_id or principal.user_id)
        now = ctx.clock()
        token_id, token = store.insert_token(conn, user["id"], now)
        audit.record(conn, principal.workspace_id, principal, CREATED, "token", token_id,
                     {"user_id": user["id"], "user_email": user["email"]}, now)
    return {"id": token_id, "token": token}


def list_tokens(ctx: Context, principal: Principal) -> dict:
    """The caller's tokens; an owner's list holds every user's of the workspace."""
    with ctx.db.begin() as conn:
        rows = store.list_tokens(conn, principal.workspace_id,
                                 None if principal.role == "owner" else principal.user_id)
    return {"items": [token_view(r) for r in rows], "next_cursor": None}


def revoke_token(ctx: Context, principal: Principal, token_id: str) -> None:
    """The token answers 401 from the next request on (the row is gone), and a dashboard
    session opened by pasting it ends too."""
    with ctx.db.begin() as conn:
        row = store.get_token(conn, principal.workspace_id, token_id)
        if row is None:
            raise NotFound("token not found", {"id": token_id})
        if not may_manage_tokens_of(principal.user_id, principal.role, row["user_id"]):
            raise Forbidden("only an owner may revoke another user's token")
        store.delete_token(conn, token_id)
        audit.record(conn, principal.workspace_id, principal, DELETED, "token", token_id,
                     {"user_id": row["user_id"], "user_email": row["user_email"]}, ctx.clock())


def authenticate(ctx: Context, token: str) -> Principal | None:
    """The token's user, or None. Its last use is written at most once a minute
    (domain.access.LAST_USED_EVERY), by a conditional UPDATE, in the same transaction."""
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = workspace_store.find_user_by_token(conn, token)
        if row is None:
            return None
        if last_use_is_stale(row["last_used_at"], now):
            store.touch_token(conn, row["token_id"], now, now - LAST_USED_EVERY)
    return Principal(row["id"], row["workspace_id"], row["role"], row["email"], row["token_id"])


# --- users -----------------------------------------------------------------------------------------

def _user_of(conn, principal: Principal, user_id: str) -> dict:
    user = store.get_user(conn, principal.workspace_id, user_id)
    if user is None:
        raise NotFound("user not found", {"id": user_id})  # another workspace's id as well
    return user


def change_role(ctx: Context, principal: Principal, user_id: str, role: str) -> dict:
    """A user's new role (owner). The last owner cannot be demoted: 409 invalid_transition."""
    with ctx.db.begin() as conn:
        store.lock_workspace(conn, principal.workspace_id)
        user = _user_of(conn, principal, user_id)
        if leaves_no_owner(user["role"], role, store.count_owners(conn, principal.workspace_id)):
            raise LastOwner(user["role"], "change_role")
        if role != user["role"]:
            store.set_role(conn, user_id, role)
            audit.record(conn, principal.workspace_id, principal, UPDATED, "user", user_id,
                         {"email": user["email"], "changes": {"role": {"from": user["role"], "to": role}}},
                         ctx.clock())
    return {**user, "role": role}


def remove_user(ctx: Context, principal: Principal, user_id: str) -> None:
    """Remove a user (owner): their tokens and dashboard sessions end in the same
    transaction. The last owner cannot be removed: 409 invalid_transition."""
    with ctx.db.begin() as conn:
        store.lock_workspace(conn, principal.workspace_id)
        user = _user_of(conn, principal, user_id)
        if leaves_no_owner(user["role"], None, store.count_owners(conn, principal.workspace_id)):
            raise LastOwner(user["role"], "remove")
        store.delete_sessions_of(conn, user_id)
        revoked = store.delete_tokens_of(conn, user_id)
        store.delete_user(conn, user_id)
        audit.record(conn, principal.workspace_id, principal, DELETED, "user", user_id,
                     {"email": user["email"], "role": user["role"], "tokens_revoked": len(revoked)}, ctx.clock())
