"""Named locks that one process holds at a time (the sweeper's).

PostgreSQL: a session advisory lock (pg_try_advisory_lock) on a connection kept for the
duration; it goes away with the session if the process dies. SQLite has no advisory
locks: a lease row in `engine_locks`, taken in a write transaction (BEGIN IMMEDIATE makes
the check-and-take atomic), expiring after `ttl` if its holder dies.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, text, update

from drumbeat.store.tables import engine_locks


def advisory_key(name: str) -> int:
    return 0x44524D00_00000000 + zlib.crc32(name.encode())  # "DRM" + the name's checksum


def lock_for_transaction(conn: Connection, name: str) -> None:
    """Hold `name` until the caller's transaction ends (PostgreSQL: a transaction-scoped
    advisory lock). SQLite needs none: its write transactions are serial (store.db)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(name)})


@contextmanager
def exclusive(engine: Engine, name: str, owner: str, now: datetime, ttl: timedelta) -> Iterator[bool]:
    """Yields True to the one process that holds `name` now, False to the others."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            key = advisory_key(name)
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    with engine.begin() as conn:
        row = conn.execute(select(engine_locks).where(engine_locks.c.name == name)).mappings().first()
        if row is None:
            conn.execute(insert(engine_locks).values(name=name, owner=owner, expires_at=now + ttl))
            got = True
        elif row["owner"] == owner or row["expires_at"] <= now:
            conn.execute(update(engine_locks).where(engine_locks.c.name == name)
                         .values(owner=owner, expires_at=now + ttl))
            got = True
        else:
            got = False
    try:
        yield got
    finally:
        if got:
            with engine.begin() as conn:
                conn.execute(delete(engine_locks).where(engine_locks.c.name == name, engine_locks.c.owner == owner))
