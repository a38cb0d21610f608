"""Engines for SQLite (the embedded default) and PostgreSQL, and schema migration."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, pool_size: int = 10, pre_ping: bool = True) -> Engine:
    """`pre_ping`: test each pooled connection before use (a round trip per transaction), so
    a request after a database restart does not fail; a worker retries a failed round anyway."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        _sqlite_write_transactions(engine)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping)
    _binary_arrays(engine)
    return engine


def _binary_arrays(engine: Engine) -> None:
    """Send Python lists (the hot path's batch arrays) in PostgreSQL's binary format:
    psycopg's text format quotes every element in Python, half the cost of a batch write."""
    from psycopg.types.array import ListBinaryDumper

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.adapters.register_dumper(list, ListBinaryDumper)


def _sqlite_write_transactions(engine: Engine) -> None:
    """SQLite has one writer: take the write lock at BEGIN (BEGIN IMMEDIATE) so a read
    never has to be upgraded mid-transaction, and wait for the lock instead of failing.
    That makes every transaction serial, the single-writer equivalent of row locks.

    Within one process, threads queue on a Python lock first: SQLite's busy handler
    sleeps and retries, so a worker committing in a tight loop would starve an API
    thread's pause for seconds; a lock hands over as soon as the worker lets go."""
    writer = threading.RLock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        writer.acquire()
        conn.info["holds_writer"] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(conn)
            raise

    def _release(conn):
        if conn.info.pop("holds_writer", False):
            writer.release()

    @event.listens_for(engine, "commit")
    def _on_commit(conn):
        _release(conn)

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn):
        _release(conn)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")  # parallel branches of migrations apply too
