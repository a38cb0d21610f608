"""Workspaces, users and their tokens (stored as SHA-256 hashes, never in clear)."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from drumbeat.store.ids import new_id, new_token
from drumbeat.store.tables import tokens, users, workspaces


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough; the lookup is by hash,
    # so a timing difference could only reveal a hash, never a usable token.
    return hashlib.sha256(token.encode()).hexdigest()


def insert_workspace(conn: Connection, name: str, now: datetime) -> str:
    workspace_id = new_id()
    conn.execute(insert(workspaces).values(id=workspace_id, name=name, subscription_status="active", created_at=now))
    return workspace_id


def get_workspace(conn: Connection, workspace_id: str):
    return conn.execute(select(workspaces).where(workspaces.c.id == workspace_id)).mappings().first()


def set_consent_settings(conn: Connection, workspace_id: str, **values) -> None:
    """opt_out_words, opt_in_words, contact_cap, auto_replies (validated by the service)."""
    conn.execute(update(workspaces).where(workspaces.c.id == workspace_id).values(**values))


def set_subscription(conn: Connection, workspace_id: str, status: str) -> None:
    conn.execute(update(workspaces).where(workspaces.c.id == workspace_id).values(subscription_status=status))


def insert_user(conn: Connection, workspace_id: str, email: str, role: str, password_hash: str | None,
                now: datetime) -> tuple[str, str]:
    """Create a user and its first token; returns (user_id, token in clear, shown once)."""
    user_id = new_id()
    conn.execute(insert(users).values(id=user_id, workspace_id=workspace_id, email=email, role=role,
                                      password_hash=password_hash, created_at=now))
    token = new_token()
    conn.execute(insert(tokens).values(id=new_id(), user_id=user_id, token_hash=hash_token(token), created_at=now))
    return user_id, token


def token_ids(conn: Connection, user_id: str) -> list[str]:
    """The user's tokens, oldest first."""
    query = select(tokens.c.id).where(tokens.c.user_id == user_id).order_by(tokens.c.created_at, tokens.c.id)
    return list(conn.execute(query).scalars())


def list_users(conn: Connection, workspace_id: str) -> list[dict]:
    query = (select(users.c.id, users.c.email, users.c.role).where(users.c.workspace_id == workspace_id)
             .order_by(users.c.email))
    return [dict(r) for r in conn.execute(query).mappings()]


def user_exists(conn: Connection, workspace_id: str, email: str) -> bool:
    query = select(users.c.id).where(users.c.workspace_id == workspace_id, users.c.email == email)
    return conn.execute(query).first() is not None


def find_user_by_token(conn: Connection, token: str):
    query = (select(users.c.id, users.c.workspace_id, users.c.email, users.c.role, tokens.c.id.label("token_id"),
                    tokens.c.last_used_at)
             .join(tokens, tokens.c.user_id == users.c.id)
             .where(tokens.c.token_hash == hash_token(token)))
    return conn.execute(query).mappings().first()
