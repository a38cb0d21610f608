"""Worker processes against one database and a provider outside them.

Shared by the tests that race, kill or pause `drumbeat worker` processes (the kill test,
tests/engine/test_concurrency.py, the crash tests): start N workers against a database,
SIGKILL and restart them, wait for quiescence, and count what the provider received per
recipient. The provider is a fake server in the test process (tests/fakes/providers.py),
so a send a killed worker made is still seen, whatever our own attempt rows say.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, text

from drumbeat.services.context import Context, Principal
from drumbeat.store import integrations as integration_store
from drumbeat.store.db import make_engine, migrate
from drumbeat.store.secrets import SecretBox
from drumbeat.store.tables import attempts, leads
from tests.conftest import PUBLIC_URL
from tests.fakes.providers import FakeHTTPProvider, FakeSmtp, FakeTwilio, FakeWhatsApp
from tests.pg_cluster import throwaway_cluster

WORKABLE = ("not_contacted", "in_progress")


def spawn_worker(db_url: str, secret_key: str, log_path: Path, *, concurrency: int = 16, lanes: int = 1,
                 **settings: str) -> subprocess.Popen:
    """A `drumbeat worker` process; `settings` are more DRUMBEAT_* variables (lease_seconds="15")."""
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": db_url, "DRUMBEAT_SECRET_KEY": secret_key,
           "DRUMBEAT_TICK_SECONDS": "0.02", **{f"DRUMBEAT_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "worker", "--concurrency", str(concurrency),
                             "--lanes", str(lanes)], env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))


def wait_started(log_path: Path, deadline: float, lanes: int = 1) -> None:
    while log_path.read_text().count("worker started") < lanes:
        assert time.monotonic() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.02)


def wait_while(busy: Callable[[], bool], procs: list[subprocess.Popen], logs: list[Path], deadline: float) -> None:
    """Poll `busy()` until it is false; fail if a worker process died or time ran out."""
    while busy():
        assert time.monotonic() < deadline, "the workers did not finish"
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, log.read_text()[-2000:]
        time.sleep(0.2)


class Fleet:
    """N worker processes on one database. `with Fleet(...) as fleet:` starts them; leaving
    the block stops them (SIGTERM, then SIGKILL if one hangs; at once on an error)."""

    def __init__(self, db_url: str, secret_key: str, tmp_path: Path, n: int, *, concurrency: int = 16,
                 lanes: int = 1, **settings: str) -> None:
        self.db_url, self.secret_key, self.dir = db_url, secret_key, tmp_path
        self.concurrency, self.lanes, self.settings = concurrency, lanes, settings
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.kills = 0
        self.n = n

    def _spawn(self, i: int, log: Path) -> subprocess.Popen:
        return spawn_worker(self.db_url, self.secret_key, log, concurrency=self.concurrency, lanes=self.lanes,
                            **self.settings)

    def start(self) -> Fleet:
        self.logs = [self.dir / f"worker{i}.log" for i in range(self.n)]
        self.procs = [self._spawn(i, log) for i, log in enumerate(self.logs)]
        return self

    def wait_started(self, deadline: float, *which: int) -> None:
        for i in which or range(self.n):
            wait_started(self.logs[i], deadline, self.lanes)

    def kill(self, i: int) -> None:
        """SIGKILL worker i: whatever it had in flight is cut off mid-call."""
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()
        self.kills += 1

    def restart(self, i: int) -> None:
        """A fresh process in place of worker i (its own log, so the old one stays readable)."""
        self.logs[i] = self.dir / f"worker{i}.{self.kills}.log"
        self.procs[i] = self._spawn(i, self.logs[i])

    def wait_while(self, busy: Callable[[], bool], deadline: float) -> None:
        wait_while(busy, self.procs, self.logs, deadline)

    def stop(self) -> list[int]:
        """SIGTERM every worker (they finish and record their calls); their exit codes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=30))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            for proc in self.procs:
                proc.kill()
        self.stop()


# --- the database side ------------------------------------------------------------------

def leads_by_state(ctx: Context, campaign_id: str) -> dict[str, int]:
    with ctx.db.connect() as conn:
        return dict(conn.execute(select(leads.c.state, func.count()).where(leads.c.campaign_id == campaign_id)
                                 .group_by(leads.c.state)).all())


def settled(ctx: Context, campaign_id: str) -> bool:
    """No lead of the campaign leased and no attempt waiting for its outcome: every call a
    live worker started was answered and recorded, and a dead worker's leases recovered."""
    with ctx.db.connect() as conn:
        leased = conn.execute(select(func.count()).select_from(leads).where(
            leads.c.campaign_id == campaign_id, leads.c.lease_owner.is_not(None))).scalar_one()
        sending = conn.execute(select(func.count()).select_from(attempts).where(
            attempts.c.campaign_id == campaign_id, attempts.c.status == "sending")).scalar_one()
    return leased == 0 and sending == 0


def quiescent(ctx: Context, campaign_id: str) -> bool:
    """Settled, and no lead left for a worker to take: only a person can change it now."""
    return settled(ctx, campaign_id) and not any(leads_by_state(ctx, campaign_id).get(s) for s in WORKABLE)


# --- commit order, from PostgreSQL itself ---------------------------------------------------

# An attempt row's xmin moves on when its outcome is written, so the transaction that
# inserted it is noted in a row of its own that nothing updates (its xmin stays that one).
_NOTE_ATTEMPT_INSERTS = [
    "CREATE TABLE attempt_inserts (attempt_id bigint NOT NULL)",
    "CREATE FUNCTION note_attempt_inserts() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN INSERT INTO attempt_inserts SELECT id FROM inserted; RETURN NULL; END $$",
    "CREATE TRIGGER note_attempt_inserts AFTER INSERT ON attempts REFERENCING NEW TABLE AS inserted "
    "FOR EACH STATEMENT EXECUTE FUNCTION note_attempt_inserts()",
]


@contextmanager
def commit_ordered_database(secret_key: str) -> Iterator[tuple[Context, str]]:
    """(ctx, url) of a migrated database on a private PostgreSQL cluster that records when
    each transaction committed (track_commit_timestamp = on: a server setting, so not on the
    shared server), and notes the transaction that inserted each attempt. Order events by
    `commit_times` and `attempts_inserted_between`, not by any process's clock."""
    with throwaway_cluster() as cluster:
        with cluster.admin() as admin:
            admin.execute("ALTER SYSTEM SET track_commit_timestamp = on")
        cluster.restart("fast")
        with cluster.admin() as admin:
            admin.execute("CREATE DATABASE drumbeat")
        url = cluster.url("drumbeat")
        ctx = Context(db=make_engine(url), box=SecretBox(secret_key), public_url=PUBLIC_URL)
        try:
            migrate(ctx.db)
            with ctx.db.begin() as conn:
                for statement in _NOTE_ATTEMPT_INSERTS:
                    conn.execute(text(statement))
            yield ctx, url
        finally:
            ctx.db.dispose()


def commit_times(ctx: Context, campaign_id: str, action: str) -> list[datetime]:
    """When the transactions that put the campaign's `action` timeline rows (pause, resume...)
    committed, in order: the row is written in the same transaction as the status change."""
    with ctx.db.connect() as conn:
        return list(conn.execute(text(
            "SELECT pg_xact_commit_timestamp(xmin) FROM timeline WHERE campaign_id = :c AND action = :a ORDER BY id"),
            {"c": campaign_id, "a": action}).scalars())


def attempts_inserted_between(ctx: Context, after: datetime, before: datetime) -> int:
    """Attempts whose inserting transaction committed after `after` and before `before`."""
    with ctx.db.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM attempt_inserts WHERE pg_xact_commit_timestamp(xmin) > :lo "
            "AND pg_xact_commit_timestamp(xmin) < :hi"), {"lo": after, "hi": before}).scalar_one()


def attempts_written_between(ctx: Context, after: datetime, before: datetime) -> int:
    """Attempts whose latest change (an outcome, or the insert) committed in between."""
    with ctx.db.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM attempts WHERE pg_xact_commit_timestamp(xmin) > :lo "
            "AND pg_xact_commit_timestamp(xmin) < :hi"), {"lo": after, "hi": before}).scalar_one()


# --- the provider side ------------------------------------------------------------------

def whatsapp_key(ctx: Context, principal: Principal, fake: FakeWhatsApp, token: str = "tok-1",
                 label: str = "main", app_secret: str | None = None) -> str:
    """A WhatsApp Cloud API integration pointed at the fake server (with the app secret
    its status webhooks are signed with, when given)."""
    secrets = {"access_token": token, **({"app_secret": app_secret} if app_secret else {})}
    with ctx.db.begin() as conn:
        return integration_store.insert_integration(
            conn, principal.workspace_id,
            {"channel": "whatsapp", "provider": "whatsapp_cloud", "label": label,
             "config": {"phone_number_id": "1001", "base_url": f"{fake.base_url}/v23.0"}},
            ctx.box.seal(secrets), ctx.clock())


def twilio_key(ctx: Context, principal: Principal, fake: FakeTwilio, sid: str = "AC" + "1" * 32,
               sender: str = "+15005550006", label: str = "sms") -> str:
    """A Twilio SMS integration pointed at the fake server."""
    with ctx.db.begin() as conn:
        return integration_store.insert_integration(
            conn, principal.workspace_id,
            {"channel": "sms", "provider": "twilio", "label": label,
             "config": {"from": sender, "base_url": fake.base_url}},
            ctx.box.seal({"account_sid": sid, "auth_token": "auth-token"}), ctx.clock())


def smtp_key(ctx: Context, principal: Principal, fake: FakeSmtp, label: str = "mail") -> str:
    """An SMTP integration pointed at the fake server."""
    with ctx.db.begin() as conn:
        return integration_store.insert_integration(
            conn, principal.workspace_id, {"channel": "email", "provider": "smtp", "label": label,
                                           "config": fake.config()},
            ctx.box.seal({"username": "mailer", "password": fake.users["mailer"]}), ctx.clock())


@dataclass
class LeadReceipts:
    """One lead as the provider and our rows see it."""

    lead_id: int
    phone: str
    state: str
    received: int  # sends for this lead that reached the provider (accepted or not)
    message_ids: list[str] = field(default_factory=list)  # ids the provider answered with


@dataclass
class Receipts:
    """Per recipient, what the provider received, beside each lead's state."""

    leads: list[LeadReceipts]

    def received(self, n: int) -> list[LeadReceipts]:
        return [r for r in self.leads if r.received == n]

    def more_than(self, n: int) -> list[LeadReceipts]:
        return [r for r in self.leads if r.received > n]

    def in_state(self, *states: str) -> list[LeadReceipts]:
        return [r for r in self.leads if r.state in states]

    def summary(self) -> str:
        by = Counter((r.state, r.received) for r in self.leads)
        return ", ".join(f"{state} x{n}: {count}" for (state, n), count in sorted(by.items()))


def receipts(ctx: Context, campaign_id: str, fake: FakeHTTPProvider) -> Receipts:
    """Count, per lead of the campaign, the sends the provider received for its phone."""
    per_recipient: Counter[str] = Counter()
    ids: dict[str, list[str]] = {}
    for call in fake.calls():  # one pass: a count per lead would scan every call each time
        per_recipient[call.to] += 1
        message = ((call.answer or {}).get("messages") or [{}])[0]
        if message.get("id"):
            ids.setdefault(call.to, []).append(message["id"])
    with ctx.db.connect() as conn:
        rows = conn.execute(select(leads.c.id, leads.c.phone, leads.c.state)
                            .where(leads.c.campaign_id == campaign_id)).all()
    return Receipts([LeadReceipts(r.id, r.phone, r.state, per_recipient[fake.normalise(r.phone)],
                                  ids.get(fake.normalise(r.phone), [])) for r in rows])


def accepted_message_ids(ctx: Context, campaign_id: str, step: int = 0) -> dict[int, str | None]:
    """Lead id -> the provider message id our accepted attempt of `step` recorded."""
    with ctx.db.connect() as conn:
        return dict(conn.execute(select(attempts.c.lead_id, attempts.c.provider_message_id).where(
            attempts.c.campaign_id == campaign_id, attempts.c.step == step,
            attempts.c.status.in_(("sent", "delivered", "read")))).all())
