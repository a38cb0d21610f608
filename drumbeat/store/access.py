"""Revocable access (issue 21): dashboard sessions, API tokens by id, users' roles and
removal, and failed sign-ins. Secrets are stored as SHA-256 hashes, never in clear."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from drumbeat.store.ids import new_id, new_token
from drumbeat.store.tables import sign_in_failures, tokens, users, web_sessions, workspaces
from drumbeat.store.workspaces import hash_token

# --- dashboard sessions ------------------------------------------------------------------------


def insert_session(conn: Connection, user_id: str, token_id: str | None, secret: str, now: datetime,
                   expires_at: datetime) -> str:
    session_id = new_id()
    conn.execute(insert(web_sessions).values(id=session_id, secret_hash=hash_token(secret), user_id=user_id,
                                             token_id=token_id, created_at=now, expires_at=expires_at))
    return session_id


def find_session(conn: Connection, secret: str, now: datetime):
    """The live session with this secret and its user: {"session_id", "id", "workspace_id",
    "email", "role"}; None when signed out, expired, or its user removed."""
    query = (select(web_sessions.c.id.label("session_id"), users.c.id, users.c.workspace_id, users.c.email,
                    users.c.role)
             .join(users, users.c.id == web_sessions.c.user_id)
             .where(web_sessions.c.secret_hash == hash_token(secret), web_sessions.c.expires_at > now))
    return conn.execute(query).mappings().first()


def delete_session(conn: Connection, secret: str) -> int:
    return conn.execute(delete(web_sessions).where(web_sessions.c.secret_hash == hash_token(secret))).rowcount


def delete_sessions_of(conn: Connection, user_id: str) -> int:
    return conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id)).rowcount


def delete_expired_sessions(conn: Connection, now: datetime) -> int:
    return conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now)).rowcount


# --- API tokens --------------------------------------------------------------------------------

TOKEN_COLUMNS = (tokens.c.id, tokens.c.user_id, tokens.c.created_at, tokens.c.last_used_at)


def insert_token(conn: Connection, user_id: str, now: datetime) -> tuple[str, str]:
    """(token id, the token in clear: shown once)."""
    token_id, token = new_id(), new_token()
    conn.execute(insert(tokens).values(id=token_id, user_id=user_id, token_hash=hash_token(token), created_at=now))
    return token_id, token


def list_tokens(conn: Connection, workspace_id: str, user_id: str | None = None) -> list[dict]:
    """The workspace's tokens (or one user's), oldest first."""
    query = (select(*TOKEN_COLUMNS).join(users, users.c.id == tokens.c.user_id)
             .where(users.c.workspace_id == workspace_id).order_by(tokens.c.created_at, tokens.c.id))
    if user_id is not None:
        query = query.where(tokens.c.user_id == user_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def get_token(conn: Connection, workspace_id: str, token_id: str) -> dict | None:
    """A token of this workspace, with its user's email; None for any other id."""
    query = (select(*TOKEN_COLUMNS, users.c.email.label("user_email")).join(users, users.c.id == tokens.c.user_id)
             .where(users.c.workspace_id == workspace_id, tokens.c.id == token_id))
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def delete_token(conn: Connection, token_id: str) -> int:
    """The token, and the dashboard sessions opened with it."""
    conn.execute(delete(web_sessions).where(web_sessions.c.token_id == token_id))
    return conn.execute(delete(tokens).where(tokens.c.id == token_id)).rowcount


def delete_tokens_of(conn: Connection, user_id: str) -> list[str]:
    """Delete the user's tokens (their sessions go first: delete_sessions_of); their ids."""
    ids = list(conn.execute(select(tokens.c.id).where(tokens.c.user_id == user_id)).scalars())
    conn.execute(delete(tokens).where(tokens.c.user_id == user_id))
    return ids


def touch_token(conn: Connection, token_id: str, now: datetime, not_since: datetime) -> None:
    """last_used_at = now, unless it is already later than `not_since` (a conditional
    UPDATE: concurrent calls write once)."""
    conn.execute(update(tokens).where(tokens.c.id == token_id,
                                      or_(tokens.c.last_used_at.is_(None), tokens.c.last_used_at <= not_since))
                 .values(last_used_at=now))


# --- users -------------------------------------------------------------------------------------


def lock_workspace(conn: Connection, workspace_id: str) -> None:
    """Serialize changes of a workspace's owners (PostgreSQL: the workspace row's lock;
    SQLite's transactions are serial already), so two owners demoting each other at once
    cannot leave none."""
    conn.execute(select(workspaces.c.id).where(workspaces.c.id == workspace_id).with_for_update())


def get_user(conn: Connection, workspace_id: str, user_id: str) -> dict | None:
    row = conn.execute(select(users.c.id, users.c.email, users.c.role)
                       .where(users.c.workspace_id == workspace_id, users.c.id == user_id)).mappings().first()
    return dict(row) if row else None


def count_owners(conn: Connection, workspace_id: str) -> int:
    return conn.execute(select(func.count()).select_from(users)
                        .where(users.c.workspace_id == workspace_id, users.c.role == "owner")).scalar_one()


def set_role(conn: Connection, user_id: str, role: str) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(role=role))


def delete_user(conn: Connection, user_id: str) -> None:
    conn.execute(delete(users).where(users.c.id == user_id))


# --- failed sign-ins ---------------------------------------------------------------------------


def insert_failures(conn: Connection, key_hashes: list[str], now: datetime) -> list[int]:
    """One failure row per key; their ids."""
    return [conn.execute(insert(sign_in_failures).values(key_hash=k, at=now)
                         .returning(sign_in_failures.c.id)).scalar_one() for k in key_hashes]


def failures_since(conn: Connection, key_hash: str, since: datetime) -> list[tuple[int, datetime]]:
    """(id, at) of the key's failures after `since`, oldest first."""
    query = (select(sign_in_failures.c.id, sign_in_failures.c.at)
             .where(sign_in_failures.c.key_hash == key_hash, sign_in_failures.c.at > since)
             .order_by(sign_in_failures.c.at, sign_in_failures.c.id))
    return [(i, at) for i, at in conn.execute(query)]


def delete_failures(conn: Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(delete(sign_in_failures).where(sign_in_failures.c.id.in_(ids)))


def delete_failures_of(conn: Connection, key_hash: str) -> None:
    conn.execute(delete(sign_in_failures).where(sign_in_failures.c.key_hash == key_hash))


def delete_failures_before(conn: Connection, cutoff: datetime) -> int:
    return conn.execute(delete(sign_in_failures).where(sign_in_failures.c.at <= cutoff)).rowcount
