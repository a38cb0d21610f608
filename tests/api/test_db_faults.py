"""Database faults at the API (issue 8): a read-only or unreachable database answers every
write with 503 `unavailable` — never a 500 — and nothing is half-written; reads of a
read-only database still work, and writes work again once it is writable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from drumbeat.app import create_app
from drumbeat.channels.inbound import sign_sha256
from drumbeat.services.context import Context
from drumbeat.store.db import make_engine
from tests.api.test_bad_input import SMS, error_of, snapshot
from tests.api.test_callbacks import integration, sent_lead, wa_status
from tests.conftest import PG_ADMIN
from tests.factory import add_leads, new_campaign, workspace

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
    yield Context(db=engine, box=ctx.box, clock=ctx.clock)
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
        with TestClient(create_app(Context(db=writable, box=ctx.box))) as c:
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


def test_the_database_dropping_connections_mid_use_is_503_not_500_and_then_recovers(ctx, db_url, owner, seeded):
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite has no server connections to drop")
    engine = make_engine(db_url, pool_size=1)
    app = create_app(Context(db=engine, box=ctx.box))
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
