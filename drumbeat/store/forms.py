"""The one-time nonces of dashboard forms (table form_submissions, migration 0014)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from drumbeat.store.tables import form_submissions

fs = form_submissions.c


def claim(conn: Connection, nonce: str, workspace_id: str, now: datetime) -> bool:
    """Records the nonce as used; False if it already was. On PostgreSQL a racing claim of
    the same nonce waits on the primary key until the first commits (then finds it) or rolls
    back (then takes it); on SQLite write transactions are serial anyway."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    done = conn.execute(dialect.insert(form_submissions).values(nonce=nonce, workspace_id=workspace_id, used_at=now)
                        .on_conflict_do_nothing(index_elements=["nonce"]).returning(fs.nonce))
    return done.first() is not None


def result_of(conn: Connection, nonce: str, workspace_id: str) -> tuple[bool, str | None]:
    """(used, the first post's result URL) — used by another workspace counts as not found."""
    row = conn.execute(select(fs.result_url).where(fs.nonce == nonce, fs.workspace_id == workspace_id)).first()
    return (row is not None, row.result_url if row else None)


def finish(conn: Connection, nonce: str, result_url: str) -> None:
    conn.execute(update(form_submissions).where(fs.nonce == nonce).values(result_url=result_url))


def release(conn: Connection, nonce: str) -> None:
    conn.execute(delete(form_submissions).where(fs.nonce == nonce, fs.result_url.is_(None)))


def purge_before(conn: Connection, before: datetime) -> int:
    return conn.execute(delete(form_submissions).where(fs.used_at < before)).rowcount
