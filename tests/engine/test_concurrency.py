"""Pause, resume and many workers: nobody is contacted twice, nobody is lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.store.tables import attempts, leads
from tests.engine.test_worker import TWO_STEPS
from tests.factory import add_leads, new_campaign, sandbox_key, workspace


def count(ctx, query) -> int:
    with ctx.db.connect() as conn:
        return conn.execute(query).scalar_one()


def attempts_started(ctx) -> int:
    return count(ctx, select(func.count()).select_from(attempts))


def double_contacts(ctx) -> int:
    """(lead, step) pairs with more than one accepted send."""
    per_pair = (select(attempts.c.lead_id, attempts.c.step).where(attempts.c.status.in_(("sent", "delivered", "read")))
                .group_by(attempts.c.lead_id, attempts.c.step).having(func.count() > 1).subquery())
    return count(ctx, select(func.count()).select_from(per_pair))


def accepted_pairs(ctx) -> int:
    return count(ctx, select(func.count()).select_from(attempts).where(attempts.c.status == "sent"))


class ThreadedWorker:
    """A real worker running its loop on another thread, as `drumbeat serve` does."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self.stop_event = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.error: BaseException | None = None

    def _main(self):
        async def main():
            self.stop_event = asyncio.Event()
            await self.worker.run(self.stop_event)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def __enter__(self):
        self.thread.start()
        while self.stop_event is None:
            time.sleep(0.001)
        return self

    def wait_rounds(self, n: int, timeout: float = 120) -> None:
        """Block until the worker has completed n more loop rounds."""
        target = self.worker.rounds + n
        deadline = time.monotonic() + timeout
        while self.worker.rounds < target:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.002)

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=30)
        assert self.error is None, self.error


def test_pause_and_resume_twenty_times_during_a_5000_lead_run_contacts_everyone_once_per_step(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp", latency_ms=1)
    sandbox_key(ctx, p, "email", latency_ms=1)
    cid = new_campaign(ctx, p, steps=TWO_STEPS)
    add_leads(ctx, cid, 5000)
    svc.start(ctx, p, cid)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=32, tick_seconds=0.01)
    with ThreadedWorker(worker) as running:
        for _ in range(20):
            running.wait_rounds(3)
            svc.pause(ctx, p, cid)
            after_pause = attempts_started(ctx)
            running.wait_rounds(5)  # in-flight calls finish; nothing new may start
            assert attempts_started(ctx) == after_pause
            view = svc.get_campaign(ctx, p, cid)
            assert view["status"] == "paused" and view["paused_reason"] == "manual"
            svc.resume(ctx, p, cid)
        deadline = time.monotonic() + 300
        while svc.get_campaign(ctx, p, cid)["status"] == "sending":
            assert time.monotonic() < deadline
            running.wait_rounds(1)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed"
    assert view["progress"]["completed"] == 5000
    assert double_contacts(ctx) == 0
    assert accepted_pairs(ctx) == 10_000
    pauses = [e for e in svc.get_timeline(ctx, p, cid) if e["action"] == "pause"]
    assert len(pauses) == 20


def test_a_pause_racing_a_busy_worker_stops_new_attempts_the_moment_it_commits(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp")
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 3000)
    svc.start(ctx, p, cid)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=64, tick_seconds=0.01)
    with ThreadedWorker(worker) as running:
        running.wait_rounds(2)
        svc.pause(ctx, p, cid)  # committed when this returns
        frozen = attempts_started(ctx)
        running.wait_rounds(10)
        assert attempts_started(ctx) == frozen
    not_contacted = count(ctx, select(func.count()).select_from(leads).where(leads.c.state == "not_contacted"))
    assert not_contacted == 3000 - frozen  # every lead not attempted kept its state
    assert count(ctx, select(func.count()).select_from(leads).where(leads.c.lease_owner.is_not(None))) == 0


def _spawn_worker(db_url: str, secret_key: str, log_path, *, lanes: int = 1, **settings: str) -> subprocess.Popen:
    """A `drumbeat worker` process; `settings` are more DRUMBEAT_* variables (lease_seconds="15")."""
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": db_url, "DRUMBEAT_SECRET_KEY": secret_key,
           "DRUMBEAT_TICK_SECONDS": "0.02", **{f"DRUMBEAT_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "worker", "--concurrency", "16",
                             "--lanes", str(lanes)], env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))


def wait_while(busy, procs, logs, deadline: float) -> None:
    """Poll `busy()` until it is false; fail if a worker process died or time ran out."""
    while busy():
        assert time.monotonic() < deadline, "the workers did not finish"
        assert all(proc.poll() is None for proc in procs), logs[0].read_text()[-2000:]
        time.sleep(0.2)


def _wait_started(log_path, deadline: float) -> None:
    while "worker started" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.05)


def test_two_worker_processes_on_one_database_never_contact_a_lead_twice(ctx, db_url, secret_key, tmp_path):
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp", latency_ms=2)
    sandbox_key(ctx, p, "email", latency_ms=2)
    cid = new_campaign(ctx, p, steps=TWO_STEPS)
    add_leads(ctx, cid, 2000)
    svc.start(ctx, p, cid)
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    procs = [_spawn_worker(db_url, secret_key, log) for log in logs]
    try:
        deadline = time.monotonic() + 180
        wait_while(lambda: svc.get_campaign(ctx, p, cid)["status"] == "sending", procs, logs, deadline)
        status = svc.get_campaign(ctx, p, cid)["status"]
        for log in logs:
            _wait_started(log, deadline)
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    for proc in procs:
        proc.terminate()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.wait(timeout=30) == 0, log.read_text()[-1500:]  # SIGTERM: graceful exit
    assert status == "completed"
    assert double_contacts(ctx) == 0
    assert accepted_pairs(ctx) == 4000


def lease_owners(ctx) -> set[str]:
    with ctx.db.connect() as conn:
        return set(conn.execute(select(leads.c.lease_owner).distinct().where(leads.c.lease_owner.is_not(None)))
                   .scalars())


def test_a_worker_with_two_lanes_claims_on_both_and_on_sigterm_leaves_nothing_leased_or_in_doubt(
        ctx, db_url, secret_key, tmp_path):
    """`drumbeat worker --lanes 2`: two claim loops in one process, each its own lease owner.
    SIGTERM stops both: every call in flight is finished and recorded, and a second run
    contacts the rest, each lead once."""
    if not db_url.startswith("postgresql"):
        pytest.skip("lanes are PostgreSQL's (on SQLite the worker refuses them: one writer)")
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp", latency_ms=20)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 3000)
    svc.start(ctx, p, cid)
    log = tmp_path / "worker.log"
    proc = _spawn_worker(db_url, secret_key, log, lanes=2)
    owners: set[str] = set()
    try:
        deadline = time.monotonic() + 120
        while accepted_pairs(ctx) < 600:  # well before the end (3,000 leads at 16 x 50/s)
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-2000:]
            owners |= lease_owners(ctx)
            time.sleep(0.02)
        proc.terminate()
        assert proc.wait(timeout=30) == 0, log.read_text()[-1500:]  # both lanes stopped gracefully
    finally:
        proc.kill()
    assert len(owners) == 2, owners  # both lanes held leases
    assert log.read_text().count("worker started") == 2
    assert lease_owners(ctx) == set()
    assert count(ctx, select(func.count()).select_from(attempts).where(attempts.c.status != "sent")) == 0
    assert count(ctx, select(func.count()).select_from(leads).where(leads.c.state == "in_doubt")) == 0
    stopped_at = accepted_pairs(ctx)
    assert stopped_at < 3000

    proc = _spawn_worker(db_url, secret_key, tmp_path / "again.log", lanes=2)
    try:
        wait_while(lambda: svc.get_campaign(ctx, p, cid)["status"] == "sending", [proc], [tmp_path / "again.log"],
                   time.monotonic() + 120)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert svc.get_campaign(ctx, p, cid)["status"] == "completed"
    assert accepted_pairs(ctx) == 3000
    assert double_contacts(ctx) == 0
