"""Workers outlive their database connections (issue 8, database faults): two worker
processes on PostgreSQL while every one of their connections is terminated again and
again (pg_terminate_backend) reconnect with backoff and finish the campaign by
themselves, with nobody lost, nobody contacted twice and nobody left in doubt."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import func, select

from drumbeat.services import campaigns as svc
from drumbeat.store.tables import attempts
from tests.conftest import PG_ADMIN
from tests.engine.test_concurrency import _spawn_worker, _wait_started, double_contacts, wait_while
from tests.engine.test_worker import TWO_STEPS
from tests.factory import add_leads, new_campaign, sandbox_key, workspace

LEADS = 3000
TERMINATIONS = 12


def terminate_connections(dbname: str) -> int:
    """End every backend connected to `dbname` (the workers'; not this admin connection)."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        return len(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,)).fetchall())


def test_workers_whose_connections_are_terminated_again_and_again_finish_without_loss(ctx, db_url, secret_key,
                                                                                    tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("server connections to terminate: the PostgreSQL deployment")
    dbname = db_url.rsplit("/", 1)[1]
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp", latency_ms=5)
    sandbox_key(ctx, p, "email", latency_ms=5)
    cid = new_campaign(ctx, p, steps=TWO_STEPS)
    add_leads(ctx, cid, LEADS)
    svc.start(ctx, p, cid)
    ctx.db.dispose()  # the test's own pooled connections would be terminated too
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    procs = [_spawn_worker(db_url, secret_key, log) for log in logs]
    terminated, sent_between = [], []
    try:
        deadline = time.monotonic() + 240
        for log in logs:
            _wait_started(log, deadline)
        for _ in range(TERMINATIONS):
            time.sleep(0.4)
            terminated.append(terminate_connections(dbname))
            with ctx.db.connect() as conn:
                sent_between.append(conn.execute(select(func.count()).select_from(attempts)).scalar_one())
            ctx.db.dispose()
        wait_while(lambda: svc.get_campaign(ctx, p, cid)["status"] == "sending", procs, logs, deadline)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    assert sum(terminated) >= TERMINATIONS  # every round really cut connections
    assert sent_between[0] < sent_between[-1] < 2 * LEADS  # ...while the work was under way
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed"
    assert view["progress"]["completed"] == LEADS and view["progress"]["in_doubt"] == 0
    assert view["breakdown"]["sent"] == 2 * LEADS  # both steps, each once
    assert double_contacts(ctx) == 0
    assert any("database error, retrying" in log.read_text() for log in logs)
