"""The sign-in throttle's pure sliding-window rule (the counts it reads live in the database:
tests/services/test_sign_in_throttle.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drumbeat.domain.throttle import ThrottleRule, retry_after_seconds, wait_before_next_attempt, wait_for_any

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


def test_an_attempt_counted_under_two_keys_waits_for_the_longer():
    blocked_early = [at(0)] * 5
    blocked_late = [at(5)] * 5
    assert wait_for_any([blocked_early, blocked_late], at(6), RULE) == timedelta(minutes=14)
    assert wait_for_any([[at(0)] * 4, []], at(6), RULE) is None
