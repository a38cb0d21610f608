"""What one attempt's outcome does to a lead (DESIGN.md §3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drumbeat.domain.errors import ErrorClass
from drumbeat.domain.leads import (
    LONGEST_PROVIDER_CALL,
    MAX_TRANSIENT_RETRIES,
    RETRY_MARGIN,
    AttemptStatus,
    LeadProgress,
    LeadState,
    apply_outcome,
    retry_not_before,
    transient_backoff,
)

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=5)


def lead(state=LeadState.IN_PROGRESS, step=1, next_at=EARLIER, retries=0) -> LeadProgress:
    return LeadProgress(state, step, next_at, retries)


# accepted


def test_an_accepted_send_advances_the_lead_to_the_next_step_after_its_delay():
    change = apply_outcome(lead(step=1, retries=2), step_count=3, error_class=None, error_code=None,
                           now=NOW, next_step_delay=timedelta(days=2))

    assert change.lead == LeadProgress(LeadState.IN_PROGRESS, 2, NOW + timedelta(days=2), 0)
    assert change.attempt_status is AttemptStatus.SENT
    assert change.counted_failure is False
    assert change.last_error is None


def test_an_accepted_first_step_moves_a_not_contacted_lead_in_progress():
    change = apply_outcome(lead(LeadState.NOT_CONTACTED, step=0), step_count=2, error_class=None,
                           error_code=None, now=NOW, next_step_delay=timedelta(hours=1))

    assert change.lead.state is LeadState.IN_PROGRESS
    assert change.lead.current_step == 1
    assert change.lead.next_action_at == NOW + timedelta(hours=1)


def test_an_accepted_send_without_a_delay_makes_the_next_step_due_now():
    change = apply_outcome(lead(step=0), step_count=2, error_class=None, error_code=None, now=NOW)

    assert change.lead.next_action_at == NOW


def test_an_accepted_last_step_completes_the_lead():
    change = apply_outcome(lead(step=2, retries=1), step_count=3, error_class=None, error_code=None,
                           now=NOW, next_step_delay=timedelta(days=1))

    assert change.lead.state is LeadState.COMPLETED
    assert change.lead.current_step == 3
    assert change.lead.retries == 0
    assert change.attempt_status is AttemptStatus.SENT
    assert change.counted_failure is False


def test_a_single_step_campaign_completes_the_lead_on_its_first_accepted_send():
    change = apply_outcome(lead(LeadState.NOT_CONTACTED, step=0), step_count=1, error_class=None,
                           error_code=None, now=NOW)

    assert change.lead.state is LeadState.COMPLETED


def test_an_accepted_send_after_transient_retries_resets_the_retry_count():
    change = apply_outcome(lead(step=0, retries=MAX_TRANSIENT_RETRIES), step_count=3, error_class=None,
                           error_code=None, now=NOW)

    assert change.lead.retries == 0


# lead-level


def test_a_lead_level_error_fails_the_lead_and_counts_as_a_failure():
    change = apply_outcome(lead(step=1), step_count=3, error_class=ErrorClass.LEAD,
                           error_code="whatsapp:131026", now=NOW)

    assert change.lead.state is LeadState.FAILED
    assert change.lead.current_step == 1
    assert change.attempt_status is AttemptStatus.FAILED
    assert change.counted_failure is True
    assert change.last_error == "whatsapp:131026"


# transient


def test_transient_errors_retry_with_growing_backoff_then_fail_the_lead_and_count():
    current = lead(step=1)
    delays = []
    for expected_retries in range(1, MAX_TRANSIENT_RETRIES + 1):
        change = apply_outcome(current, step_count=3, error_class=ErrorClass.TRANSIENT,
                               error_code="twilio:timeout", now=NOW)
        assert change.lead.state is LeadState.IN_PROGRESS
        assert change.lead.current_step == 1
        assert change.lead.retries == expected_retries
        assert change.lead.next_action_at > NOW
        assert change.attempt_status is AttemptStatus.FAILED
        assert change.counted_failure is False
        assert change.last_error == "twilio:timeout"
        delays.append(change.lead.next_action_at - NOW)
        current = change.lead

    assert delays == sorted(delays) and len(set(delays)) == len(delays)

    final = apply_outcome(current, step_count=3, error_class=ErrorClass.TRANSIENT,
                          error_code="twilio:timeout", now=NOW)
    assert final.lead.state is LeadState.FAILED
    assert final.lead.current_step == 1
    assert final.counted_failure is True
    assert final.attempt_status is AttemptStatus.FAILED
    assert final.last_error == "twilio:timeout"


def test_a_transient_retry_keeps_a_not_contacted_lead_not_contacted():
    change = apply_outcome(lead(LeadState.NOT_CONTACTED, step=0), step_count=2,
                           error_class=ErrorClass.TRANSIENT, error_code="sandbox:transient", now=NOW)

    assert change.lead.state is LeadState.NOT_CONTACTED
    assert change.lead.next_action_at == NOW + transient_backoff(0)


def test_the_transient_backoff_grows_and_is_capped_at_five_minutes():
    delays = [transient_backoff(n) for n in range(12)]

    assert delays[0] > timedelta(0)
    assert all(a <= b for a, b in zip(delays, delays[1:], strict=False))
    assert delays[1] > delays[0]
    assert max(delays) == timedelta(minutes=5)


# rate-limited


def test_a_rate_limited_send_waits_the_retry_after_and_is_not_counted():
    before = lead(step=1, retries=1)
    change = apply_outcome(before, step_count=3, error_class=ErrorClass.RATE, error_code="whatsapp:130429",
                           now=NOW, retry_after=timedelta(seconds=30))

    assert change.lead == LeadProgress(before.state, 1, NOW + timedelta(seconds=30), 1)
    assert change.counted_failure is False


def test_a_rate_limited_send_without_retry_after_waits_one_second():
    change = apply_outcome(lead(), step_count=3, error_class=ErrorClass.RATE, error_code="twilio:20429", now=NOW)

    assert change.lead.next_action_at == NOW + timedelta(seconds=1)
    assert change.counted_failure is False


# key-level and campaign-level


def test_a_key_level_error_leaves_the_lead_exactly_as_it_was():
    before = lead(step=2, retries=1)
    change = apply_outcome(before, step_count=3, error_class=ErrorClass.KEY, error_code="whatsapp:190",
                           now=NOW, next_step_delay=timedelta(days=1), retry_after=timedelta(seconds=9))

    assert change.lead == before
    assert change.attempt_status is AttemptStatus.KEY_ERROR
    assert change.counted_failure is False


def test_a_campaign_level_error_leaves_the_lead_as_it_was_and_is_not_counted():
    before = lead(LeadState.NOT_CONTACTED, step=0)
    change = apply_outcome(before, step_count=3, error_class=ErrorClass.CAMPAIGN, error_code="whatsapp:132001",
                           now=NOW)

    assert change.lead == before
    assert change.counted_failure is False
    assert change.attempt_status is not AttemptStatus.SENT


# properties


@st.composite
def leads_and_steps(draw):
    step_count = draw(st.integers(min_value=1, max_value=8))
    step = draw(st.integers(min_value=0, max_value=step_count - 1))
    state = draw(st.sampled_from([LeadState.NOT_CONTACTED, LeadState.IN_PROGRESS]))
    retries = draw(st.integers(min_value=0, max_value=MAX_TRANSIENT_RETRIES))
    offset = draw(st.integers(min_value=-86_400, max_value=86_400))
    return LeadProgress(state, step, NOW + timedelta(seconds=offset), retries), step_count


delays = st.none() | st.integers(min_value=0, max_value=10**6).map(lambda s: timedelta(seconds=s))


@given(leads_and_steps(), st.sampled_from([ErrorClass.KEY, ErrorClass.RATE, ErrorClass.CAMPAIGN]), delays, delays)
def test_key_rate_and_campaign_answers_never_change_state_or_step_or_count(lead_and_steps, error_class, delay, retry):
    before, step_count = lead_and_steps

    change = apply_outcome(before, step_count=step_count, error_class=error_class, error_code="x:1", now=NOW,
                           next_step_delay=delay, retry_after=retry)

    assert change.lead.state is before.state
    assert change.lead.current_step == before.current_step
    assert change.lead.retries == before.retries
    assert change.counted_failure is False


@given(leads_and_steps(), st.sampled_from([None, *ErrorClass]), delays, delays)
def test_an_outcome_never_moves_a_lead_backwards(lead_and_steps, error_class, delay, retry):
    before, step_count = lead_and_steps

    change = apply_outcome(before, step_count=step_count, error_class=error_class, error_code="x:1", now=NOW,
                           next_step_delay=delay, retry_after=retry)

    assert change.lead.current_step >= before.current_step
    assert change.lead.current_step <= step_count
    assert change.counted_failure == (change.lead.state is LeadState.FAILED)
    if error_class is None:
        assert change.lead.current_step == before.current_step + 1
        assert change.lead.state in (LeadState.IN_PROGRESS, LeadState.COMPLETED)


@pytest.mark.parametrize("error_class", list(ErrorClass))
def test_only_an_accepted_send_records_the_attempt_as_sent(error_class):
    change = apply_outcome(lead(), step_count=3, error_class=error_class, error_code="x:1", now=NOW)

    assert change.attempt_status is not AttemptStatus.SENT


# --- retry of an in-doubt lead ----------------------------------------------------------------

def test_a_retry_waits_until_the_doubted_call_must_have_ended():
    started = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert LONGEST_PROVIDER_CALL == timedelta(seconds=70)  # connect 10 s + send 30 s + answer 30 s
    assert retry_not_before(started, started + timedelta(seconds=61)) == started + LONGEST_PROVIDER_CALL + RETRY_MARGIN


def test_a_retry_long_after_the_doubted_call_is_due_at_once():
    started = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    now = started + timedelta(hours=2)
    assert retry_not_before(started, now) == now
