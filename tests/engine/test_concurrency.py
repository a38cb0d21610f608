"""Pause, resume and many workers: nobody is contacted twice, nobody is lost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.store.tables import attempts, leads
from tests.conftest import postgresql_only
from tests.engine.harness import (
    Fleet,
    attempts_inserted_between,
    attempts_written_between,
    commit_ordered_database,
    commit_times,
    leads_by_state,
    quiescent,
    receipts,
    settled,
    smtp_key,
    wait_while,
    whatsapp_key,
)
from tests.engine.harness import spawn_worker as _spawn_worker
from tests.engine.harness import wait_started as _wait_started  # noqa: F401 - other test modules import it here
from tests.engine.test_worker import TWO_STEPS
from tests.factory import add_leads, new_campaign, sandbox_key, workspace
from tests.fakes.providers import QUIET_SMTP


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


class _CountAttemptsBeforeCommit:
    """An engine stand-in whose transactions count the attempts just before they commit."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.attempts: int | None = None

    @contextmanager
    def begin(self):
        with self.engine.begin() as conn:
            yield conn
            self.attempts = conn.execute(select(func.count()).select_from(attempts)).scalar_one()

    def connect(self):
        return self.engine.connect()


def pause_counting_attempts(ctx, principal, campaign_id: str) -> int:
    """Pause, and count the attempts inside the pause's own transaction: a claim commits
    before the pause locks the campaign row, or waits for it and sees the campaign paused
    (on SQLite the pause holds the one write lock), so this is exactly what started before
    the pause. A count after pause() returned would also take an attempt committed since."""
    db = _CountAttemptsBeforeCommit(ctx.db)
    svc.pause(replace(ctx, db=db), principal, campaign_id)
    assert db.attempts is not None
    return db.attempts


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
            before_pause = pause_counting_attempts(ctx, p, cid)
            running.wait_rounds(5)  # in-flight calls finish; nothing new may start
            assert attempts_started(ctx) == before_pause
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


PAUSE_LEADS = 3000
PAUSES = 5


def test_a_pause_stops_worker_processes_from_starting_any_attempt_once_it_commits_until_the_resume(
        secret_key, tmp_path, whatsapp_server):
    """Two `drumbeat worker` processes, paused and resumed five times mid-flight. Which
    attempt started before a pause is read from PostgreSQL's commit order, not from a count
    taken after pause() returned (an attempt committed in between would pass as "before"):
    no attempt's inserting transaction committed between a pause's and the resume's. The
    calls in flight at a pause still finish and are recorded; every lead not attempted keeps
    its state; and at the end the provider received each lead exactly once."""
    whatsapp_server.latency = 0.05  # each send in flight a while: a pause lands mid-call
    # Its own PostgreSQL (commit timestamps are a server setting), so no db_url.
    with commit_ordered_database(secret_key) as (ctx, url):
        p = workspace(ctx)
        whatsapp_key(ctx, p, whatsapp_server)
        cid = new_campaign(ctx, p)
        add_leads(ctx, cid, PAUSE_LEADS)
        svc.start(ctx, p, cid)
        with Fleet(url, secret_key, tmp_path, 2) as fleet:
            deadline = time.monotonic() + 180
            fleet.wait_started(deadline)
            for _ in range(PAUSES):
                fleet.wait_while(lambda: in_flight(ctx, cid) < 8, deadline)  # busy workers
                svc.pause(ctx, p, cid)
                fleet.wait_while(lambda: not settled(ctx, cid), deadline)  # in-flight calls recorded
                view = svc.get_campaign(ctx, p, cid)
                assert view["status"] == "paused" and view["paused_reason"] == "manual"
                assert leads_by_state(ctx, cid).get("not_contacted", 0) == PAUSE_LEADS - attempts_started(ctx)
                svc.resume(ctx, p, cid)
            fleet.wait_while(lambda: not quiescent(ctx, cid), deadline)
        assert fleet.stop() == [0, 0]
        pauses, resumes = commit_times(ctx, cid, "pause"), commit_times(ctx, cid, "resume")
        assert len(pauses) == len(resumes) == PAUSES
        paused = list(zip(pauses, resumes, strict=True))
        assert [attempts_inserted_between(ctx, lo, hi) for lo, hi in paused] == [0] * PAUSES
        # Each pause raced sends under way: their outcomes were committed after it.
        assert all(attempts_written_between(ctx, lo, hi) > 0 for lo, hi in paused)
        assert svc.get_campaign(ctx, p, cid)["status"] == "completed"
        seen = receipts(ctx, cid, whatsapp_server)
        assert len(seen.received(1)) == PAUSE_LEADS, seen.summary()


def in_flight(ctx, campaign_id: str) -> int:
    return count(ctx, select(func.count()).select_from(attempts).where(
        attempts.c.campaign_id == campaign_id, attempts.c.status == "sending"))


@pytest.mark.filterwarnings(QUIET_SMTP)
def test_two_worker_processes_on_one_database_never_contact_a_lead_twice(
        ctx, db_url, secret_key, tmp_path, whatsapp_server, smtp_server):
    """Counted where the providers see them: the fake WhatsApp and SMTP servers of the test
    process each received every lead exactly once."""
    p = workspace(ctx)
    whatsapp_key(ctx, p, whatsapp_server)
    smtp_key(ctx, p, smtp_server)
    cid = new_campaign(ctx, p, steps=TWO_STEPS)
    add_leads(ctx, cid, 1000)
    svc.start(ctx, p, cid)
    with Fleet(db_url, secret_key, tmp_path, 2) as fleet:
        deadline = time.monotonic() + 180
        fleet.wait_while(lambda: svc.get_campaign(ctx, p, cid)["status"] == "sending", deadline)
        status = svc.get_campaign(ctx, p, cid)["status"]
        fleet.wait_started(deadline)
    assert fleet.stop() == [0, 0]  # SIGTERM: graceful exit
    assert status == "completed"
    seen = receipts(ctx, cid, whatsapp_server)
    assert len(seen.received(1)) == 1000, seen.summary()
    emails = Counter(address.lower() for address in smtp_server.rcpts)  # the owner's notices too
    with ctx.db.connect() as conn:
        lead_emails = conn.execute(select(leads.c.email).where(leads.c.campaign_id == cid)).scalars().all()
    assert Counter(emails[address] for address in lead_emails) == {1: 1000}
    assert accepted_pairs(ctx) == 2000 and double_contacts(ctx) == 0


def lease_owners(ctx) -> set[str]:
    with ctx.db.connect() as conn:
        return set(conn.execute(select(leads.c.lease_owner).distinct().where(leads.c.lease_owner.is_not(None)))
                   .scalars())


@postgresql_only  # lanes are PostgreSQL's (on SQLite the worker refuses them: one writer)
def test_a_worker_with_two_lanes_claims_on_both_and_on_sigterm_leaves_nothing_leased_or_in_doubt(
        ctx, db_url, secret_key, tmp_path, whatsapp_server):
    """`drumbeat worker --lanes 2`: two claim loops in one process, each its own lease owner.
    SIGTERM stops both: every call in flight is finished and recorded, and a second run
    contacts the rest, each lead once (counted at the fake provider)."""
    p = workspace(ctx)
    whatsapp_key(ctx, p, whatsapp_server)
    whatsapp_server.latency = 0.02
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
    seen = receipts(ctx, cid, whatsapp_server)
    assert len(seen.received(1)) == 3000, seen.summary()
