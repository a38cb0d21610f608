"""Workers outlive their database connections (issue 8, database faults): two worker
processes on PostgreSQL while every one of their connections is terminated again and
again (pg_terminate_backend), or while the server itself is restarted and crashed,
reconnect with backoff and finish the campaign by themselves, with nobody lost, nobody
contacted twice and nobody left in doubt."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
from sqlalchemy import func, select
from structlog.testing import capture_logs

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services.context import Context
from drumbeat.store import claims
from drumbeat.store.db import make_engine, migrate
from drumbeat.store.secrets import SecretBox
from drumbeat.store.tables import attempts
from tests.conftest import PG_ADMIN, PUBLIC_URL, postgresql_only
from tests.engine.test_concurrency import (
    ThreadedWorker,
    _spawn_worker,
    _wait_started,
    attempts_started,
    double_contacts,
    wait_while,
)
from tests.engine.test_worker import TWO_STEPS
from tests.factory import add_leads, new_campaign, sandbox_key, workspace
from tests.pg_cluster import Cluster, throwaway_cluster

LEADS = 3000
TERMINATIONS = 12


def terminate_connections(dbname: str) -> int:
    """End every backend connected to `dbname` (the workers'; not this admin connection)."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        return len(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,)).fetchall())


def _started_two_step_campaign(ctx, n: int):
    """A WhatsApp-then-email campaign of `n` leads on slightly slow sandbox keys, started."""
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp", latency_ms=5)
    sandbox_key(ctx, p, "email", latency_ms=5)
    cid = new_campaign(ctx, p, steps=TWO_STEPS)
    add_leads(ctx, cid, n)
    svc.start(ctx, p, cid)
    return p, cid


@postgresql_only  # server connections to terminate: the PostgreSQL deployment
def test_workers_whose_connections_are_terminated_again_and_again_finish_without_loss(ctx, db_url, secret_key,
                                                                                    tmp_path):
    dbname = db_url.rsplit("/", 1)[1]
    p, cid = _started_two_step_campaign(ctx, LEADS)
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
        # Until it finishes, or nothing but leads in doubt is left (they wait for a person:
        # the campaign cannot finish by itself then, and the assertions below say so).
        wait_while(lambda: _still_running(svc.get_campaign(ctx, p, cid)), procs, logs, deadline)
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


# --- the server itself restarted mid-run ---------------------------------------------

RESTART_LEADS = 2000
# (share of the 2 * RESTART_LEADS sends started, how): a clean restart (sessions
# terminated, checkpoint), a crash restart (SIGQUIT to every backend, crash recovery from
# the WAL at start), and a crash after which the server stays down until every worker has
# failed twice (an outage longer than one retry: the backoff itself is exercised).
RESTARTS = [(0.15, "fast"), (0.4, "immediate"), (0.65, "immediate, down a while")]


def _log_events(log: Path) -> list[dict]:
    """The worker's JSON log lines, up to the last complete one (it may be mid-write)."""
    written = log.read_text().rpartition("\n")[0]
    return [json.loads(line) for line in written.splitlines() if line.startswith("{")]


def _errors_logged(log: Path) -> int:
    return sum(e["event"] == "database error, retrying" for e in _log_events(log))


def _still_running(view: dict) -> bool:
    workable = view["progress"]["not_contacted"] + view["progress"]["in_progress"]
    return view["status"] == "sending" and (workable > 0 or view["progress"]["in_doubt"] == 0)


def test_workers_outlive_their_postgresql_server_restarted_and_crashed_mid_run(secret_key, tmp_path):
    # Its own throwaway server (the shared one serves other tests meanwhile), so no db_url.
    with throwaway_cluster() as cluster:
        with cluster.admin() as admin:
            admin.execute("CREATE DATABASE drumbeat")
        url = cluster.url("drumbeat")
        ctx = Context(db=make_engine(url), box=SecretBox(secret_key), public_url=PUBLIC_URL)
        try:
            migrate(ctx.db)
            _run_through_restarts(cluster, ctx, url, secret_key, tmp_path)
        finally:
            ctx.db.dispose()


def _run_through_restarts(cluster: Cluster, ctx: Context, url: str, secret_key: str, tmp_path: Path) -> None:
    p, cid = _started_two_step_campaign(ctx, RESTART_LEADS)
    total = 2 * RESTART_LEADS
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    # A short lease: a lead whose claim committed but whose worker never heard so (the
    # commit's answer lost in the crash) is recovered within the test, not after 2 min.
    procs = [_spawn_worker(url, secret_key, log, lease_seconds="10") for log in logs]
    started_at_restart = []
    try:
        deadline = time.monotonic() + 50
        for log in logs:
            _wait_started(log, deadline)
        for share, mode in RESTARTS:
            wait_while(lambda s=share: attempts_started(ctx) < s * total, procs, logs, deadline)
            started_at_restart.append(attempts_started(ctx))
            assert svc.get_campaign(ctx, p, cid)["status"] == "sending"  # ...mid-run, really
            if mode == "immediate, down a while":
                errors = [_errors_logged(log) for log in logs]
                cluster.stop("immediate")
                wait_while(lambda e=errors: any(_errors_logged(log) < n + 2 for log, n in zip(logs, e, strict=True)),
                           procs, logs, deadline)
                cluster.start()
            else:
                cluster.restart(mode)
        # Until it finishes, or nothing but leads in doubt is left (they wait for a person:
        # the campaign cannot finish by itself then, and the assertions below say so).
        wait_while(lambda: _still_running(svc.get_campaign(ctx, p, cid)), procs, logs, deadline)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    assert started_at_restart == sorted(started_at_restart) and started_at_restart[-1] < total
    view = svc.get_campaign(ctx, p, cid)
    recovered = [e for log in logs for e in _log_events(log)
                 if e["event"] in ("leads in doubt", "expired leases recovered")]
    assert view["status"] == "completed", (view["progress"], recovered)
    assert view["progress"]["completed"] == RESTART_LEADS and view["progress"]["in_doubt"] == 0, view["progress"]
    assert view["breakdown"]["sent"] == total  # both steps, each exactly once
    assert double_contacts(ctx) == 0
    # The server really crashed twice and recovered from its WAL (a committed claim or
    # outcome survives a crash: nothing the workers were told was committed is lost).
    assert cluster.logfile.read_text().count("automatic recovery in progress") == 2
    for log in logs:
        events = [e["event"] for e in _log_events(log)]
        # Each worker saw every outage and came back after it (not one long error).
        assert events.count("database reachable again") >= len(RESTARTS), log.read_text()[-2000:]
        assert "database error, retrying" in events


# --- a commit whose answer never came --------------------------------------------------

def test_a_claim_committed_though_its_worker_was_told_the_commit_failed_is_sent_not_left_in_doubt(
        ctx, monkeypatch):
    """The server committed a claim and crashed (or the connection broke) before answering
    COMMIT: the worker sees an error, yet its leads are leased to it with `sending`
    attempts. Nobody was contacted, so they must not end in doubt: the worker sends them."""
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp")
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 40)
    svc.start(ctx, p, cid)
    claimed, lost = [], []
    real_claim, real_commit = claims.claim_due_leads, ctx.db.dialect.do_commit

    claiming_threads = set()

    def claim_due_leads(*args, **kwargs):
        result = real_claim(*args, **kwargs)
        claimed.extend(result or [])
        claiming_threads.add(threading.get_ident())
        return result

    def commit_then_lose_the_answer(dbapi_conn):
        real_commit(dbapi_conn)
        # The first claim that took leads: committed, then "failed" (the worker's commit, not
        # one of this test's reads that happens to commit while that claim is under way).
        if claimed and not lost and threading.get_ident() in claiming_threads:
            lost.extend(claimed)
            raise ctx.db.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(claims, "claim_due_leads", claim_due_leads)
    monkeypatch.setattr(ctx.db.dialect, "do_commit", commit_then_lose_the_answer)
    # A lease short enough that, were the claim forgotten, lease recovery would find it.
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=8, tick_seconds=0.01, lease_seconds=0.5)
    with capture_logs() as logged, ThreadedWorker(worker) as running:
        deadline = time.monotonic() + 60
        while _still_running(svc.get_campaign(ctx, p, cid)):
            assert time.monotonic() < deadline, svc.get_campaign(ctx, p, cid)["progress"]
            running.wait_rounds(1)
    assert lost  # the fault really happened, to a claim of leads
    assert any(e["event"] == "database error, retrying" for e in logged)
    view = svc.get_campaign(ctx, p, cid)
    assert view["progress"]["in_doubt"] == 0, view["progress"]
    assert view["status"] == "completed" and view["progress"]["completed"] == 40
    assert view["breakdown"]["sent"] == 40 and double_contacts(ctx) == 0
    with ctx.db.connect() as conn:  # the lost claim's own attempts were the ones sent
        statuses = conn.execute(select(attempts.c.status).where(
            attempts.c.id.in_([c.attempt_id for c in lost]))).scalars().all()
    assert statuses == ["sent"] * len(lost)
