"""Database faults at the API (issue 8): a read-only, unreachable or full database answers
every write with 503 `unavailable` — never a 500 — and nothing is half-written; reads
still work where the database can serve them, and writes work again once it can."""

from __future__ import annotations

import dataclasses
import errno
import json
import re
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from drumbeat.app import create_app
from drumbeat.channels.inbound import sign_sha256
from drumbeat.services.context import Context
from drumbeat.services.workspaces import init_workspace
from drumbeat.store.db import make_engine, migrate
from tests.api.test_bad_input import SMS, error_of, snapshot
from tests.api.test_callbacks import integration, sent_lead, wa_status
from tests.conftest import IN_CI, PG_ADMIN, postgresql_only
from tests.factory import add_leads, new_campaign, workspace
from tests.pg_cluster import chown_to_postgres, throwaway_cluster

API = "/api/v1"


@pytest.fixture
def seeded(ctx, client, owner) -> dict:
    """A draft campaign with leads, a sandbox key, a WhatsApp key and one sent attempt."""
    campaign = client.post(f"{API}/campaigns", json={"name": "Faults", "steps": [SMS]}, headers=owner["headers"])
    assert campaign.status_code == 201
    cid = campaign.json()["id"]
    add_leads(ctx, cid, 3)
    sms = client.post(f"{API}/integrations", json={"channel": "sms", "provider": "sandbox", "config": {}},
                      headers=owner["headers"]).json()["id"]
    p = workspace(ctx, "Other")
    wa = integration(ctx, p, "whatsapp_cloud", "whatsapp", {"access_token": "t", "app_secret": "meta-secret"},
                     {"phone_number_id": "42"})
    sent_lead(ctx, new_campaign(ctx, p), wa, message_id="wamid.F")
    return {"campaign": cid, "sms": sms, "wa": wa}


def writes(s: dict) -> list[tuple[str, str, dict | None]]:
    cid = s["campaign"]
    return [
        ("POST", "/campaigns", {"name": "New", "steps": [SMS]}),
        ("PATCH", f"/campaigns/{cid}", {"name": "Renamed"}),
        ("POST", f"/campaigns/{cid}/leads", {"leads": [{"phone": "+4915123456701"}, {"phone": "+4915123456702"}]}),
        ("POST", f"/campaigns/{cid}/start", None),
        ("POST", f"/campaigns/{cid}/schedule", {"start_at": "2030-01-01T09:00:00+00:00"}),
        ("POST", f"/campaigns/{cid}/duplicate", {"include_leads": True}),
        ("POST", f"/campaigns/{cid}/cancel", {"confirm": "Faults"}),
        ("POST", "/integrations", {"channel": "sms", "provider": "sandbox", "config": {}}),
        ("PATCH", f"/integrations/{s['sms']}", {"enabled": False}),
        ("POST", f"/integrations/{s['sms']}/health", {"event": "disconnected"}),
        ("POST", "/suppressions", {"phone": "+4915550000001"}),
        ("POST", "/users", {"email": "new@acme.test", "role": "viewer"}),
        ("PUT", "/workspace/subscription", {"status": "canceled"}),
        ("POST", "/webhooks", {"url": "https://hooks.test/x", "secret": "s" * 16, "events": ["campaign.paused"]}),
    ]


def check_writes_refused(c: TestClient, headers: dict, s: dict) -> None:
    for method, path, body in writes(s):
        error_of(c.request(method, API + path, json=body, headers=headers), 503, "unavailable")
    csv = c.post(f"{API}/campaigns/{s['campaign']}/leads/import", content=b"phone\n+4915123456703\n",
                 headers={**headers, "Content-Type": "text/csv"})
    error_of(csv, 503, "unavailable")
    receipt = json.dumps(wa_status("wamid.F", "read")).encode()
    callback = c.post(f"/webhooks/whatsapp/{s['wa']}", content=receipt,
                      headers={"X-Hub-Signature-256": sign_sha256(receipt, "meta-secret")})
    error_of(callback, 503, "unavailable")


def _sqlite_path(db_url: str) -> Path:
    return Path(make_url(db_url).database)


def _set_pg_read_only(db_url: str, on: bool) -> None:
    name = make_url(db_url).database
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        if on:
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        else:
            admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')


@pytest.fixture
def read_only_ctx(ctx, db_url, seeded) -> Iterator[Context]:
    """The test's database, opened read-only by a new engine (new connections)."""
    if db_url.startswith("sqlite"):
        # The file opened read-only (chmod would not stop a test running as root).
        engine = make_engine(f"sqlite:///file:{_sqlite_path(db_url)}?mode=ro&uri=true")
    else:
        _set_pg_read_only(db_url, True)
        engine = make_engine(db_url)
    yield dataclasses.replace(ctx, db=engine)
    engine.dispose()
    if not db_url.startswith("sqlite"):
        _set_pg_read_only(db_url, False)


def test_every_write_on_a_read_only_database_is_503_and_changes_nothing(ctx, owner, seeded, read_only_ctx):
    before = snapshot(ctx)
    with TestClient(create_app(read_only_ctx)) as c:
        check_writes_refused(c, owner["headers"], seeded)
        # Reads go on: the dashboard and API stay useful while the database is read-only.
        listed = c.get(f"{API}/campaigns", headers=owner["headers"])
        assert listed.status_code == 200 and [x["name"] for x in listed.json()["items"]] == ["Faults"]
        assert c.get(f"{API}/campaigns/{seeded['campaign']}/leads", headers=owner["headers"]).status_code == 200
    assert snapshot(ctx) == before


def test_writes_work_again_once_the_database_is_writable(ctx, db_url, owner, seeded, read_only_ctx):
    with TestClient(create_app(read_only_ctx)) as c:
        error_of(c.post(f"{API}/suppressions", json={"phone": "+4915550000001"}, headers=owner["headers"]),
                 503, "unavailable")
    if not db_url.startswith("sqlite"):
        _set_pg_read_only(db_url, False)
    writable = make_engine(db_url)  # new connections see the database as it is now
    try:
        with TestClient(create_app(dataclasses.replace(ctx, db=writable))) as c:
            again = c.post(f"{API}/suppressions", json={"phone": "+4915550000001"}, headers=owner["headers"])
            assert again.status_code == 201, again.text
    finally:
        writable.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def unreachable_ctx(request, tmp_path, secret_key) -> Iterator[Context]:
    from drumbeat.store.secrets import SecretBox

    if request.param == "sqlite":  # a file that cannot be opened: its directory does not exist
        url = f"sqlite:///{tmp_path / 'gone' / 'drumbeat.db'}"
    else:  # nothing listens on port 1
        url = "postgresql+psycopg://postgres@127.0.0.1:1/drumbeat?connect_timeout=2"
    engine = make_engine(url)
    yield Context(db=engine, box=SecretBox(secret_key))
    engine.dispose()


def test_an_unreachable_database_answers_503_to_writes_and_reads_and_health_says_so(unreachable_ctx):
    headers = {"Authorization": "Bearer dbt_" + "x" * 43}
    s = {"campaign": "c" * 32, "sms": "i" * 32, "wa": "w" * 32}
    with TestClient(create_app(unreachable_ctx)) as c:
        check_writes_refused(c, headers, s)
        error_of(c.get(f"{API}/campaigns", headers=headers), 503, "unavailable")
        health = c.get("/healthz")
        assert health.status_code == 503 and health.json()["database"] == "unavailable"


@postgresql_only  # SQLite has no server connections to drop
def test_the_database_dropping_connections_mid_use_is_503_not_500_and_then_recovers(ctx, db_url, owner, seeded):
    engine = make_engine(db_url, pool_size=1)
    app = create_app(dataclasses.replace(ctx, db=engine))
    name = make_url(db_url).database
    try:
        with TestClient(app) as c:
            assert c.get(f"{API}/campaigns", headers=owner["headers"]).status_code == 200  # pool warmed
            before = suppression_count(name)
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:  # refuse and drop every connection
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            error_of(c.post(f"{API}/suppressions", json={"phone": "+4915550000002"}, headers=owner["headers"]),
                     503, "unavailable")
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert suppression_count(name) == before
            again = c.post(f"{API}/suppressions", json={"phone": "+4915550000002"}, headers=owner["headers"])
            assert again.status_code == 201, again.text
            assert suppression_count(name) == before + 1
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        engine.dispose()


def suppression_count(name: str) -> int:
    base = PG_ADMIN.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/{name}") as conn:
        return conn.execute("SELECT count(*) FROM suppressions").fetchone()[0]


# --- a full disk -----------------------------------------------------------------------

def csv_of(first: int, n: int = 200) -> bytes:
    """n new leads (fewer than one import batch: one transaction)."""
    return b"phone\n" + b"".join(b"+49151%08d\n" % i for i in range(first, first + n))


@contextmanager
def tiny_filesystem(size: str) -> Iterator[Path]:
    """A real filesystem of `size` (tmpfs), unmounted and removed on the way out."""
    where = Path(tempfile.mkdtemp(prefix="drumbeat-full-"))
    try:
        try:
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                                     capture_output=True, text=True)
            problem = mounted.stderr.strip() if mounted.returncode != 0 else None
        except OSError as exc:  # no mount command at all
            problem = str(exc)
        if problem is not None:
            # A real full filesystem is the point (SQLite's max_page_count would refuse new
            # pages, not a growing WAL; PostgreSQL has no such knob), so CI must be able to mount.
            message = f"cannot mount a tiny filesystem here ({problem})"
            if IN_CI:
                pytest.fail(f"the full-disk tests must run in CI (as root): {message}")
            pytest.skip(message)
        try:
            yield where
        finally:
            if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(where)], check=True)  # still busy: detach now
    finally:
        where.rmdir()


class FullDisk:
    """The database's filesystem, filled up by a ballast file and freed by removing it."""

    def __init__(self, filesystem: Path) -> None:
        self.ballast = filesystem / "ballast"

    def fill(self) -> None:
        with open(self.ballast, "wb", buffering=0) as f:
            try:
                while True:  # a short write takes the last bytes; the next one fails
                    f.write(b"\0" * 65536)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc

    def free(self) -> None:
        self.ballast.unlink()


@dataclass
class FullDiskApp:
    ctx: Context
    disk: FullDisk
    raw_write_error: Callable[[], str]  # the error a write gets straight from the database now


def _sqlite_on(filesystem: Path, box) -> Iterator[FullDiskApp]:
    path = filesystem / "drumbeat.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)

    def raw_write_error() -> str:
        with sqlite3.connect(path) as raw:
            try:
                raw.execute("CREATE TABLE full_disk_probe AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL"
                            " SELECT i + 1 FROM n WHERE i < 1000) SELECT i, randomblob(1000) AS b FROM n")
            except sqlite3.OperationalError as exc:
                return f"{exc.sqlite_errorname}: {exc}"
            raise AssertionError("the write went through: the disk is not full")

    try:
        yield FullDiskApp(Context(db=engine, box=box), FullDisk(filesystem), raw_write_error)
    finally:
        engine.dispose()


def _postgresql_on(filesystem: Path, box) -> Iterator[FullDiskApp]:
    """A throwaway cluster (the shared one must never fill up) whose database lives in a
    tablespace on the tiny filesystem; its WAL stays on the cluster's own disk."""
    space = filesystem / "tablespace"
    space.mkdir()
    chown_to_postgres(space)
    with throwaway_cluster() as cluster:
        with cluster.admin() as admin:
            admin.execute(f"CREATE TABLESPACE tiny LOCATION '{space}'")
            admin.execute("CREATE DATABASE drumbeat TABLESPACE tiny")
        engine = make_engine(cluster.url("drumbeat"))
        migrate(engine)

        def raw_write_error() -> str:
            with psycopg.connect(cluster.libpq_url("drumbeat")) as raw:
                try:
                    raw.execute("CREATE TABLE full_disk_probe AS SELECT g FROM generate_series(1, 100000) g")
                except psycopg.errors.DiskFull as exc:
                    return f"{exc.sqlstate}: {exc}"
                raise AssertionError("the write went through: the disk is not full")

        try:
            yield FullDiskApp(Context(db=engine, box=box), FullDisk(filesystem), raw_write_error)
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def full_disk_app(request, secret_key) -> Iterator[FullDiskApp]:
    from drumbeat.store.secrets import SecretBox

    # SQLite's file needs a few hundred kB; a PostgreSQL database's catalogs about 8 MB.
    with tiny_filesystem("4m" if request.param == "sqlite" else "24m") as filesystem:
        on = _sqlite_on if request.param == "sqlite" else _postgresql_on
        yield from on(filesystem, SecretBox(secret_key))


def test_a_full_disk_answers_503_to_writes_changes_nothing_and_they_succeed_once_space_is_freed(full_disk_app):
    ctx, disk = full_disk_app.ctx, full_disk_app.disk
    boot = init_workspace(ctx, "Acme", "owner@acme.test")
    headers = {"Authorization": f"Bearer {boot['token']}"}
    csv_headers = {**headers, "Content-Type": "text/csv"}
    sqlite = ctx.db.dialect.name == "sqlite"
    with TestClient(create_app(ctx)) as c:
        made = c.post(f"{API}/campaigns", json={"name": "Before", "steps": [SMS]}, headers=headers)
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        assert c.post(f"{API}/campaigns/{cid}/leads/import", content=csv_of(0), headers=csv_headers).status_code == 200
        if sqlite:
            # Fold the WAL into the file and empty it: a write must now grow the WAL, as
            # after any checkpoint (instead of reusing frames an earlier write left).
            with sqlite3.connect(ctx.db.url.database) as raw:
                assert raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        before = snapshot(ctx)
        disk.fill()
        try:
            # The disk is really full: the database itself refuses a write.
            refused = full_disk_app.raw_write_error()
            # (PostgreSQL fails on whichever file it grows first: a catalog's or the probe's
            # sort spill, depending on how full the catalog pages happen to be.)
            assert re.match(r"SQLITE_FULL: database or disk is full|53100: could not (extend|write to) file",
                            refused), refused
            with capture_logs() as logged:
                error_of(c.post(f"{API}/campaigns/{cid}/leads/import", content=csv_of(200), headers=csv_headers),
                         503, "unavailable")
            # ...because of the full disk, and the log says so.
            assert [e["code"] for e in logged if e["event"] == "database unavailable"] == [refused.split(":")[0]]
            # One transaction: the new campaign's row fits, its copied leads do not; neither stays.
            error_of(c.post(f"{API}/campaigns/{cid}/duplicate", json={"include_leads": True}, headers=headers),
                     503, "unavailable")
            if sqlite:  # every SQLite write grows the emptied WAL; on PostgreSQL a row that
                # fits in a page the table already has needs no new space, and is written.
                error_of(c.post(f"{API}/campaigns", json={"name": "During", "steps": [SMS]}, headers=headers),
                         503, "unavailable")
            assert snapshot(ctx) == before  # no lead, no campaign, no timeline entry half-written
            assert c.get(f"{API}/campaigns/{cid}", headers=headers).status_code == 200  # reads go on
        finally:
            disk.free()
        imported = c.post(f"{API}/campaigns/{cid}/leads/import", content=csv_of(200), headers=csv_headers)
        assert imported.status_code == 200 and imported.json()["accepted"] == 200, imported.text
        copy = c.post(f"{API}/campaigns/{cid}/duplicate", json={"include_leads": True}, headers=headers)
        assert copy.status_code == 201 and copy.json()["progress"]["total"] == 400, copy.text
        again = c.post(f"{API}/campaigns", json={"name": "During", "steps": [SMS]}, headers=headers)
        assert again.status_code == 201, again.text
    assert len(snapshot(ctx)["leads"]) == 800
