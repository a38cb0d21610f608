"""Shared fixtures. Storage, engine and API tests run on both SQLite and PostgreSQL.

PostgreSQL: a template database is migrated once per test process and cloned per test
(CREATE DATABASE ... TEMPLATE), so no test shares rows with another. Under CI=true a
missing PostgreSQL fails the run; elsewhere those tests skip with a message.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from drumbeat.app import create_app
from drumbeat.services.context import Context
from drumbeat.store.db import make_engine, migrate
from drumbeat.store.secrets import SecretBox
from tests.fakes.providers import (  # noqa: F401 - fixtures: local fake provider servers
    _smtp_fake,
    _twilio_fake,
    _unipile_fake,
    _whatsapp_fake,
    smtp_server,
    twilio_server,
    unipile_server,
    whatsapp_server,
)

# Argon2id at its cheapest for the suite (services/passwords.py); the default stays strong
# and tests/unit/test_passwords.py checks that it does.
os.environ.setdefault("DRUMBEAT_PASSWORD_HASH_PROFILE", "test")

PG_ADMIN = os.environ.get("DRUMBEAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def pg_url(dbname: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


class PgTemplates:
    """One migrated template database per test process; cheap clones per test."""

    def __init__(self) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.template = f"drumbeat_tpl_{worker}_{os.getpid()}"
        self.ready = False

    def _admin(self):
        return psycopg.connect(PG_ADMIN, autocommit=True)

    def clone(self) -> str:
        with self._admin() as conn:
            if not self.ready:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.template}"')
                conn.execute(f'CREATE DATABASE "{self.template}"')
                engine = make_engine("postgresql+psycopg://" + pg_url(self.template).split("://", 1)[1])
                migrate(engine)
                engine.dispose()
                self.ready = True
            name = f"drumbeat_t_{uuid.uuid4().hex[:12]}"
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            return name

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self.ready:
            self.drop(self.template)


@pytest.fixture(scope="session")
def pg_templates() -> Iterator[PgTemplates]:
    templates = PgTemplates()
    yield templates
    templates.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, pg_templates) -> Iterator[str]:
    """A fresh, migrated database URL (SQLAlchemy form) on each engine."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'drumbeat.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
        return
    problem = _pg_available()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {PG_ADMIN}: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN} ({problem}); SQLite variant still runs")
    name = pg_templates.clone()
    yield "postgresql+psycopg://" + pg_url(name).split("://", 1)[1]
    pg_templates.drop(name)


# For a test that needs the PostgreSQL deployment itself (server connections, racing worker
# processes): collected on PostgreSQL only rather than skipped on SQLite, since CI allows
# no skip outside .ci/allowed-skips.txt. A direct parametrization overrides db_url's params.
postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> None:
        from datetime import timedelta

        self.now += timedelta(**kwargs)


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


# DRUMBEAT_PUBLIC_URL of the test deployments: emails carry unsubscribe links to it, and
# without one no campaign with an email step may start (gate `unsubscribe`).
PUBLIC_URL = "https://drumbeat.test"


@pytest.fixture
def ctx(db_url, secret_key) -> Iterator[Context]:
    engine = make_engine(db_url)
    yield Context(db=engine, box=SecretBox(secret_key), public_url=PUBLIC_URL)
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_ctx(ctx, clock) -> Context:
    """The same database, with a clock the test moves by hand."""
    return dataclasses.replace(ctx, clock=clock)


@pytest.fixture
def client(ctx) -> Iterator[TestClient]:
    with TestClient(create_app(ctx)) as c:
        yield c


@pytest.fixture
def owner(ctx) -> dict:
    """A workspace with its owner: {"workspace_id", "user_id", "token", "headers"}."""
    from drumbeat.services.workspaces import init_workspace

    boot = init_workspace(ctx, "Acme", "owner@acme.test")
    return {**boot, "headers": {"Authorization": f"Bearer {boot['token']}"}}
