"""The sign-in throttle: the pure sliding-window rule, and the per-email / per-address
counter the dashboard keeps (web/login_limit.py), driven by a hand-moved clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drumbeat.domain.throttle import ThrottleRule, retry_after_seconds, wait_before_next_attempt
from drumbeat.web.login_limit import LoginThrottle
from tests.conftest import FakeClock

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RULE = ThrottleRule(max_failures=5, window=timedelta(minutes=15))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_fewer_failures_than_the_limit_never_make_anyone_wait():
    assert wait_before_next_attempt([at(0), at(1), at(2), at(3)], at(4), RULE) is None
    assert wait_before_next_attempt([], at(0), RULE) is None


def test_the_limit_reached_inside_the_window_waits_until_the_oldest_failure_ages_out():
    failures = [at(0), at(1), at(2), at(3), at(4)]
    assert wait_before_next_attempt(failures, at(5), RULE) == timedelta(minutes=10)
    assert wait_before_next_attempt(failures, at(14.5), RULE) == timedelta(minutes=0.5)
    assert wait_before_next_attempt(failures, at(15), RULE) is None  # the first one has left the window


def test_failures_older_than_the_window_do_not_count():
    failures = [at(0), at(1), at(20), at(21), at(22), at(23)]
    assert wait_before_next_attempt(failures, at(24), RULE) is None


def test_with_more_failures_than_the_limit_the_wait_ends_when_the_count_falls_below_it():
    failures = [at(3), at(0), at(1), at(2), at(4), at(5)]  # any order
    # Six recent failures: only when two have aged out (at 15 and 16) do four remain.
    assert wait_before_next_attempt(failures, at(6), RULE) == timedelta(minutes=10)


def test_retry_after_is_whole_seconds_and_never_zero_while_blocked():
    assert retry_after_seconds(timedelta(seconds=0.2)) == 1
    assert retry_after_seconds(timedelta(seconds=59.1)) == 60
    assert retry_after_seconds(timedelta(minutes=10)) == 600


def throttle() -> tuple[LoginThrottle, FakeClock]:
    clock = FakeClock(T0)
    return LoginThrottle(RULE, clock), clock


def test_five_failures_for_one_email_block_it_from_any_address_but_not_other_emails():
    t, clock = throttle()
    for i in range(5):
        assert t.attempt("Ann@Acme.test", f"10.0.0.{i}") is None
        clock.advance(seconds=10)
    assert t.attempt("ann@acme.test ", "10.0.0.99") is not None  # same email, another case and address
    assert t.attempt("bob@acme.test", "10.0.0.98") is None


def test_five_failures_from_one_address_block_it_for_every_email_and_token():
    t, clock = throttle()
    for i in range(5):
        assert t.attempt(f"user{i}@acme.test", "10.0.0.1") is None
    assert t.attempt("someone-else@acme.test", "10.0.0.1") is not None
    assert t.attempt("", "10.0.0.1") is not None  # a pasted token: counted by address alone
    assert t.attempt("someone-else@acme.test", "10.0.0.2") is None


def test_a_blocked_caller_may_try_again_once_the_window_has_passed():
    t, clock = throttle()
    for _ in range(5):
        t.attempt("ann@acme.test", "10.0.0.1")
    clock.advance(minutes=5)
    assert t.attempt("ann@acme.test", "10.0.0.1") == timedelta(minutes=10)
    clock.advance(minutes=10)
    assert t.attempt("ann@acme.test", "10.0.0.1") is None


def test_refused_attempts_do_not_extend_the_wait():
    t, clock = throttle()
    for _ in range(5):
        t.attempt("ann@acme.test", "10.0.0.1")
    for _ in range(20):
        clock.advance(seconds=30)
        assert t.attempt("ann@acme.test", "10.0.0.1") is not None
    clock.advance(minutes=5)  # 15 minutes after the five failures
    assert t.attempt("ann@acme.test", "10.0.0.1") is None


def test_a_success_clears_the_emails_count_but_not_the_addresses_earlier_failures():
    t, _ = throttle()
    for _ in range(4):
        assert t.attempt("victim@acme.test", "10.0.0.1") is None
    assert t.attempt("me@acme.test", "10.0.0.1") is None
    t.succeeded("me@acme.test", "10.0.0.1")  # my own password, right
    # The address has 4 failures (my success is not one): one more guess, then blocked.
    assert t.attempt("victim@acme.test", "10.0.0.1") is None
    assert t.attempt("victim@acme.test", "10.0.0.1") is not None
    t2, _ = throttle()
    for _ in range(4):
        t2.attempt("ann@acme.test", "10.0.0.1")
    t2.attempt("ann@acme.test", "10.0.0.2")
    t2.succeeded("ann@acme.test", "10.0.0.2")
    assert t2.attempt("ann@acme.test", "10.0.0.3") is None  # her count starts again
