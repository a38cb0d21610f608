"""The sign-in throttle's counts, kept in the database (services/sign_ins.py): per email and
per client address, driven by a hand-moved clock, on SQLite and PostgreSQL — and shared by
two app instances (their own engines and processes' worth of state) on one database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from drumbeat.domain.throttle import ThrottleRule
from drumbeat.services.sign_ins import SignInThrottle
from drumbeat.store.tables import sign_in_failures
from tests.conftest import FakeClock

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RULE = ThrottleRule(max_failures=5, window=timedelta(minutes=15))


@pytest.fixture
def throttle(ctx):
    def make() -> tuple[SignInThrottle, FakeClock]:
        clock = FakeClock(T0)
        return SignInThrottle(dataclasses.replace(ctx, clock=clock), RULE), clock
    return make


def test_five_failures_for_one_email_block_it_from_any_address_but_not_other_emails(throttle):
    t, clock = throttle()
    for i in range(5):
        assert t.attempt("Ann@Acme.test", f"10.0.0.{i}") is None
        clock.advance(seconds=10)
    assert t.attempt("ann@acme.test ", "10.0.0.99") is not None  # same email, another case and address
    assert t.attempt("bob@acme.test", "10.0.0.98") is None


def test_five_failures_from_one_address_block_it_for_every_email_and_token(throttle):
    t, clock = throttle()
    for i in range(5):
        assert t.attempt(f"user{i}@acme.test", "10.0.0.1") is None
    assert t.attempt("someone-else@acme.test", "10.0.0.1") is not None
    assert t.attempt("", "10.0.0.1") is not None  # a pasted token: counted by address alone
    assert t.attempt("someone-else@acme.test", "10.0.0.2") is None


def test_a_blocked_caller_may_try_again_once_the_window_has_passed(throttle):
    t, clock = throttle()
    for _ in range(5):
        t.attempt("ann@acme.test", "10.0.0.1")
    clock.advance(minutes=5)
    assert t.attempt("ann@acme.test", "10.0.0.1") == timedelta(minutes=10)
    clock.advance(minutes=10)
    assert t.attempt("ann@acme.test", "10.0.0.1") is None


def test_refused_attempts_do_not_extend_the_wait(throttle):
    t, clock = throttle()
    for _ in range(5):
        t.attempt("ann@acme.test", "10.0.0.1")
    for _ in range(20):
        clock.advance(seconds=30)
        assert t.attempt("ann@acme.test", "10.0.0.1") is not None
    clock.advance(minutes=5)  # 15 minutes after the five failures
    assert t.attempt("ann@acme.test", "10.0.0.1") is None


def test_a_success_clears_the_emails_count_but_not_the_addresses_earlier_failures(throttle):
    t, _ = throttle()
    for _ in range(4):
        assert t.attempt("victim@acme.test", "10.0.0.1") is None
    assert t.attempt("me@acme.test", "10.0.0.1") is None
    t.succeeded("me@acme.test", "10.0.0.1")  # my own password, right
    # The address has 4 failures (my success is not one): one more guess, then blocked.
    assert t.attempt("victim@acme.test", "10.0.0.1") is None
    assert t.attempt("victim@acme.test", "10.0.0.1") is not None
    with t.ctx.db.begin() as conn:  # a second, separate throttle: start from no failures
        conn.execute(sign_in_failures.delete())
    t2, _ = throttle()
    for _ in range(4):
        t2.attempt("ann@acme.test", "10.0.0.1")
    t2.attempt("ann@acme.test", "10.0.0.2")
    t2.succeeded("ann@acme.test", "10.0.0.2")
    assert t2.attempt("ann@acme.test", "10.0.0.3") is None  # her count starts again


def test_two_app_instances_on_one_database_share_the_count(db_url, secret_key):
    """Two throttles with their own engines (as two `drumbeat serve` processes have): the
    failures one counted refuse the other, and none of it lives in either's memory."""
    from drumbeat.services.context import Context
    from drumbeat.store.db import make_engine
    from drumbeat.store.secrets import SecretBox

    clock = FakeClock(T0)
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        a, b = (SignInThrottle(Context(db=e, box=SecretBox(secret_key), clock=clock), RULE) for e in engines)
        for i in range(5):
            assert (a if i % 2 else b).attempt("ann@acme.test", f"10.0.0.{i}") is None
        assert a.attempt("ann@acme.test", "10.0.1.1") is not None
        assert b.attempt("ann@acme.test", "10.0.1.2") == timedelta(minutes=15)
        with engines[0].begin() as conn:
            keys = set(conn.execute(select(sign_in_failures.c.key_hash)).scalars())
        assert keys and not any("ann" in k or "10.0." in k for k in keys)  # hashed, never in clear
    finally:
        for e in engines:
            e.dispose()


def test_expired_failures_are_deleted_on_the_way(throttle, ctx):
    t, clock = throttle()
    for i in range(3):
        t.attempt(f"u{i}@acme.test", "10.0.0.1")
    clock.advance(minutes=16)
    t.attempt("later@acme.test", "10.0.0.9")
    with ctx.db.begin() as conn:
        assert conn.execute(select(sign_in_failures.c.at)).scalars().all() == [clock.now, clock.now]
