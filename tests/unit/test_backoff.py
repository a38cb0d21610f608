"""Back-off and jitter (issue 21, quick recovery): pure functions of a count and a random source."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from drumbeat.domain.backoff import (
    MAX_WEBHOOK_TRIES,
    PROBE_AT_MOST_EVERY,
    Outage,
    exponential,
    jittered,
    outage_probe_delay,
    retry_delay,
    webhook_retry_delay,
)
from drumbeat.domain.errors import ErrorClass
from drumbeat.domain.leads import LeadProgress, LeadState, apply_outcome, transient_backoff


class Fixed:
    """A random source that always draws the same number."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


LOW, HIGH = Fixed(0.0), Fixed(0.999999)


def test_a_jittered_wait_is_never_longer_than_the_wait_and_never_shorter_than_half_of_it():
    assert jittered(10.0, LOW) == 10.0
    assert 5.0 < jittered(10.0, HIGH) < 5.0001
    assert jittered(10.0, Fixed(0.5)) == 7.5


@given(failures=st.integers(min_value=1, max_value=10_000), draw=st.floats(min_value=0, max_value=0.999999))
def test_during_an_outage_the_database_is_probed_at_least_once_a_second_however_long_it_lasts(failures, draw):
    delay = outage_probe_delay(failures, Fixed(draw))
    assert 0 < delay <= PROBE_AT_MOST_EVERY


def test_the_probes_start_quick_and_grow_to_one_second_and_no_further():
    nominal = [outage_probe_delay(n, LOW) for n in range(1, 9)]
    assert nominal[0] == 0.1
    assert nominal == sorted(nominal)
    assert nominal[-1] == nominal[-2] == PROBE_AT_MOST_EVERY


def test_workers_that_failed_together_probe_at_different_moments():
    delays = {round(outage_probe_delay(8, random.Random(seed)), 6) for seed in range(20)}
    assert len(delays) == 20
    assert min(delays) >= PROBE_AT_MOST_EVERY / 2


def test_retries_grow_exponentially_to_their_cap():
    assert [exponential(n, base=2, cap=600) for n in (1, 2, 3, 10, 11)] == [2, 4, 8, 600, 600]
    assert retry_delay(3, LOW, base=2, cap=600) == 8
    assert retry_delay(3, Fixed(0.5), base=2, cap=600) == 6


def test_a_webhook_delivery_is_retried_until_its_last_try_then_given_up():
    waits = [webhook_retry_delay(n, LOW) for n in range(1, MAX_WEBHOOK_TRIES + 1)]
    assert all(w is not None and w > 0 for w in waits[:-1])
    assert waits[-1] is None  # the 20th failed try was the last
    assert webhook_retry_delay(3, LOW, max_tries=3) is None and webhook_retry_delay(2, LOW, max_tries=3) == 4


def test_an_outage_is_reported_once_when_it_begins_and_once_when_it_ends():
    outage = Outage()
    assert outage.recovered(now=1.0) is None  # no outage: nothing to say
    assert [outage.failed(now=t) for t in (10.0, 10.5, 11.0, 12.0)] == [True, False, False, False]
    assert outage.failures == 4
    assert outage.recovered(now=13.25) == 3.25
    assert outage.recovered(now=14.0) is None
    assert outage.failed(now=20.0) is True and outage.failures == 1  # the next outage is a new one


NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def test_a_transient_send_error_is_retried_after_a_jittered_wait_no_longer_than_the_nominal_one():
    lead = LeadProgress(LeadState.IN_PROGRESS, 1, NOW, 1)
    waits = {apply_outcome(lead, step_count=3, error_class=ErrorClass.TRANSIENT, error_code="twilio:timeout",
                           now=NOW, rng=random.Random(seed)).lead.next_action_at - NOW for seed in range(10)}
    assert len(waits) == 10
    assert all(transient_backoff(1) / 2 <= w <= transient_backoff(1) for w in waits)
    assert transient_backoff(1, HIGH) < transient_backoff(1, LOW) == transient_backoff(1) == timedelta(seconds=10)
