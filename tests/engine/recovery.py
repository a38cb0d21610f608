"""A PostgreSQL restart, measured (issue 21, quick recovery): shared by
tests/engine/test_db_recovery.py and bench/recovery.py.

Two "processes" (each a thread with its own event loop and its own connection pool, as
`drumbeat worker` runs them: a worker with the notifier beside it) send a campaign through
sandbox keys that note when each send starts. The server is stopped (`immediate`: a crash);
while it is down a sweeper starts in each process, so its first sweep fails (a sweep due
during an outage); after `outage_seconds` the server is started again and polled every few
milliseconds until it accepts a connection. Measured from that moment: each worker's first
send, each sweeper's first sweep. The notifiers' log lines over the outage are kept.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, field

import psycopg
from structlog.testing import capture_logs

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.notifier import Notifier
from drumbeat.engine.sweeper import Sweeper
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services.context import Context
from drumbeat.store.db import make_engine, migrate
from drumbeat.store.secrets import SecretBox
from tests.factory import add_leads, new_campaign, sandbox_key, workspace
from tests.pg_cluster import Cluster

LEADS = 3000


class NotingSandbox(SandboxAdapter):
    """The sandbox, noting when each send starts (time.monotonic())."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[float] = []

    async def send(self, credential, message):
        self.started.append(time.monotonic())
        return await super().send(credential, message)


class CountingWorker(Worker):
    """The worker, counting its rounds begun (each reads the database: a probe during an outage)."""

    tries = 0

    async def step(self) -> bool:
        self.tries += 1
        return await super().step()


class CountingNotifier(Notifier):
    """The notifier, counting its rounds (each reads the outbox: a probe during an outage)."""

    rounds = 0

    async def deliver_due(self) -> int:
        self.rounds += 1
        return await super().deliver_due()


class Process:
    """One worker process's event loop on a thread: worker and notifier; later a sweeper."""

    def __init__(self, url: str, secret_key: str, name: str, concurrency: int) -> None:
        self.ctx = Context(db=make_engine(url), box=SecretBox(secret_key))
        self.sandbox = NotingSandbox()
        self.worker = CountingWorker(self.ctx, {"sandbox": self.sandbox}, concurrency=concurrency, owner=name)
        self.notifier = CountingNotifier(self.ctx)
        self.sweeper = Sweeper(self.ctx, owner=name)  # the default period: 60 s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stop = asyncio.Event()
        self.tasks: list = []

    def start(self, *loops) -> None:
        if not self.thread.is_alive():
            self.thread.start()
        self.tasks += [asyncio.run_coroutine_threadsafe(loop.run(self.stop), self.loop) for loop in loops]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        try:
            for task in self.tasks:
                task.result(timeout=60)  # surfaces a loop's crash
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.ctx.db.dispose()


@dataclass
class Recovery:
    outage_seconds: float
    workers: list[float] = field(default_factory=list)  # seconds from accepting connections to its first send
    sweepers: list[float] = field(default_factory=list)  # ...to its first sweep
    worker_probes: list[int] = field(default_factory=list)  # rounds each worker began while the server was down
    notifier_rounds: list[int] = field(default_factory=list)  # rounds each notifier ran while the server was down
    notifier_logs: list[str] = field(default_factory=list)  # every notifier's log lines, in order
    worker_errors_logged: int = 0
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def slowest(self) -> float:
        return max(self.workers + self.sweepers)


def _wait(condition, deadline: float, what: str, processes: list[Process]) -> None:
    while not condition():
        for p in processes:
            for task in p.tasks:
                if task.done():
                    task.result()  # a loop that died: its error, not a timeout
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def _accepting(cluster: Cluster, deadline: float) -> float:
    """Poll until the server accepts a connection; the moment it did (time.monotonic())."""
    while True:
        tried_at = time.monotonic()
        try:
            psycopg.connect(cluster.libpq_url(), connect_timeout=2).close()
            return tried_at
        except psycopg.OperationalError:
            assert tried_at < deadline, "the server did not start\n" + cluster.log_tail()
            time.sleep(0.005)


def measure_restart(cluster: Cluster, secret_key: str, *, outage_seconds: float = 7.0, processes: int = 2,
                    concurrency: int = 4, latency_ms: int = 20) -> Recovery:
    with cluster.admin() as admin:
        admin.execute("CREATE DATABASE drumbeat")
    url = cluster.url("drumbeat")
    setup = Context(db=make_engine(url), box=SecretBox(secret_key))
    try:
        migrate(setup.db)
        p = workspace(setup)
        sandbox_key(setup, p, "whatsapp", latency_ms=latency_ms)
        cid = new_campaign(setup, p)
        add_leads(setup, cid, LEADS)
        svc.start(setup, p, cid)
    finally:
        setup.db.dispose()
    running = [Process(url, secret_key, f"p{i}", concurrency) for i in range(processes)]
    result = Recovery(outage_seconds)
    deadline = time.monotonic() + 120
    with capture_logs() as logged:  # (at every level: a filtering logger set up elsewhere would hide the info lines)
        try:
            _restart(cluster, running, result, deadline, outage_seconds, logged)
        finally:
            for proc in running:
                proc.close()
    return result


def _restart(cluster: Cluster, running: list[Process], result: Recovery, deadline: float, outage_seconds: float,
             logged: list[dict]) -> None:
    for proc in running:
        proc.start(proc.worker, proc.notifier)
    _wait(lambda: all(proc.sandbox.started for proc in running), deadline, "every worker sending", running)
    cluster.stop("immediate")
    down_at = time.monotonic()
    rounds_before = [proc.notifier.rounds for proc in running]
    tries_before = [proc.worker.tries for proc in running]
    for proc in running:  # a sweep due during the outage
        proc.start(proc.sweeper)
    time.sleep(max(0.0, down_at + outage_seconds - time.monotonic()))  # the outage itself
    cluster.start_nowait()
    up_at = _accepting(cluster, deadline)
    result.notifier_rounds = [proc.notifier.rounds - n for proc, n in zip(running, rounds_before, strict=True)]
    result.worker_probes = [proc.worker.tries - n for proc, n in zip(running, tries_before, strict=True)]

    def back() -> bool:
        return all(any(t >= up_at for t in proc.sandbox.started) and (proc.sweeper.swept_at or 0) >= up_at
                   for proc in running)

    _wait(back, deadline, "every worker and sweeper back", running)
    # ...and each notifier has said so (its next round is at most a second away).
    _wait(lambda: sum(e["event"] == "notifier: database reachable again" for e in logged) >= len(running),
          deadline, "every notifier back", running)
    result.load_average = os.getloadavg()
    for proc in running:
        result.workers.append(min(t for t in proc.sandbox.started if t >= up_at) - up_at)
        result.sweepers.append(proc.sweeper.swept_at - up_at)
    result.notifier_logs = [e["event"] for e in logged if e["event"].startswith("notifier")]
    result.worker_errors_logged = sum(e["event"] == "database error, retrying" for e in logged)
