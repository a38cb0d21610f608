"""A worker killed at any instant (SIGKILL) loses nothing (DESIGN.md §3, crash): three
worker processes on PostgreSQL over 20,000 leads, one of them killed at random moments ten
times and restarted. Afterwards every lead is terminal or in doubt, no lead has two
accepted sends for one step, and no more leads are in doubt than the killed workers had
sends in flight."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from drumbeat.services import campaigns as svc
from drumbeat.store.tables import attempts, leads
from tests.engine.test_concurrency import double_contacts
from tests.factory import add_leads, new_campaign, sandbox_key, workspace

LEADS = 20_000
KILLS = 10
CONCURRENCY = 16


def spawn(db_url: str, secret_key: str, log_path) -> subprocess.Popen:
    # A short lease so the dead worker's leads come back quickly, but not so short that a
    # live worker stalled by a loaded machine loses its own (which would be safe, in doubt,
    # but would blur the bound below).
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": db_url, "DRUMBEAT_SECRET_KEY": secret_key,
           "DRUMBEAT_TICK_SECONDS": "0.05", "DRUMBEAT_LEASE_SECONDS": "4", "DRUMBEAT_SWEEP_SECONDS": "600"}
    return subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "worker", "--concurrency", str(CONCURRENCY)],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))


def wait_started(log_path, deadline: float) -> None:
    while "worker started" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.02)


def by_state(ctx) -> dict[str, int]:
    with ctx.db.connect() as conn:
        return dict(conn.execute(select(leads.c.state, func.count()).group_by(leads.c.state)).all())


def leased(ctx) -> int:
    with ctx.db.connect() as conn:
        return conn.execute(select(func.count()).select_from(leads).where(leads.c.lease_owner.is_not(None))).scalar()


def test_a_worker_killed_ten_times_loses_no_lead_and_contacts_nobody_twice(ctx, db_url, secret_key, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("worker processes racing over one database: the PostgreSQL deployment")
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp", latency_ms=25)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, LEADS)
    svc.start(ctx, p, cid)
    rng = random.Random(os.environ.get("KILL_SEED"))
    started = time.monotonic()
    deadline = started + 150
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    procs = [spawn(db_url, secret_key, log) for log in logs]
    kills = 0
    try:
        for _ in range(KILLS):
            wait_started(logs[0], deadline)
            time.sleep(rng.uniform(0.2, 1.0))  # a random moment of its work
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            kills += 1
            logs[0] = tmp_path / f"worker0.{kills}.log"
            procs[0] = spawn(db_url, secret_key, logs[0])
        work_left_at_last_kill = by_state(ctx).get("not_contacted", 0)
        # let the survivors (and the restarted worker) finish, leases expire and be recovered
        while by_state(ctx).get("not_contacted", 0) + by_state(ctx).get("in_progress", 0) or leased(ctx):
            assert time.monotonic() < deadline, (by_state(ctx), leased(ctx))
            assert all(proc.poll() is None for proc in procs), logs[1].read_text()[-2000:]
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    elapsed = time.monotonic() - started
    states = by_state(ctx)
    with ctx.db.connect() as conn:
        total_attempts = conn.execute(select(func.count()).select_from(attempts)).scalar()
        accepted = conn.execute(select(func.count()).select_from(attempts)
                                .where(attempts.c.status.in_(("sent", "delivered", "read")))).scalar()
    in_doubt = states.get("in_doubt", 0)
    print(f"\nkill test: {LEADS} leads, 3 workers x concurrency {CONCURRENCY}, {kills} SIGKILLs, "
          f"{elapsed:.1f}s; leads by state {states}; attempts {total_attempts}, accepted {accepted}; "
          f"in doubt {in_doubt} (bound {CONCURRENCY * kills}); not contacted at the last kill "
          f"{work_left_at_last_kill}; double contacts {double_contacts(ctx)}")
    assert kills == KILLS
    assert work_left_at_last_kill > 0, "the campaign finished before the last kill: make the run longer"
    assert sum(states.values()) == LEADS
    assert set(states) <= {"completed", "in_doubt"}
    assert double_contacts(ctx) == 0
    assert in_doubt <= CONCURRENCY * kills
    assert accepted + in_doubt == LEADS  # every lead was sent once or waits for a person
    view = svc.get_campaign(ctx, p, cid)
    assert view["progress"]["in_doubt"] == in_doubt
    assert view["status"] == ("sending" if in_doubt else "completed")  # never completes while in doubt
