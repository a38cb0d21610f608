"""The campaign lifecycle table of DESIGN.md §2, checked pair by pair."""

from __future__ import annotations

import itertools

import pytest

from drumbeat.domain.exceptions import ConfirmationRequired, InvalidTransition
from drumbeat.domain.lifecycle import (
    TERMINAL_STATUSES,
    Action,
    Status,
    check_cancel_confirmation,
    finished_status,
    transition,
)
from drumbeat.domain.reasons import PauseReason

S, A = Status, Action
SYSTEM_REASONS = [r for r in PauseReason if r is not PauseReason.MANUAL]

# The table of DESIGN.md §2, written out independently of the code under test.
# Each allowed pair names (target status, paused_reason after the move). The pairs whose
# answer depends on context (pause of a paused campaign, resume of a sending one) are
# listed with the context that allows them; the refusing context is tested separately.
ALLOWED: dict[tuple[Status, Action], tuple[Status, PauseReason | None]] = {
    (S.DRAFT, A.SCHEDULE): (S.SCHEDULED, None),
    (S.DRAFT, A.START): (S.SENDING, None),
    (S.DRAFT, A.CANCEL): (S.CANCELED, None),
    (S.SCHEDULED, A.START): (S.SENDING, None),
    (S.SCHEDULED, A.UNSCHEDULE): (S.DRAFT, None),
    (S.SCHEDULED, A.CANCEL): (S.CANCELED, None),
    (S.SENDING, A.PAUSE): (S.PAUSED, PauseReason.MANUAL),
    (S.SENDING, A.AUTO_PAUSE): (S.PAUSED, PauseReason.HIGH_FAILURE_RATE),
    (S.SENDING, A.RESUME): (S.SENDING, None),  # only with holds
    (S.SENDING, A.COMPLETE): (S.COMPLETED, None),
    (S.SENDING, A.FAIL): (S.FAILED, None),
    (S.SENDING, A.CANCEL): (S.CANCELED, None),
    (S.PAUSED, A.PAUSE): (S.PAUSED, PauseReason.MANUAL),  # only when the system paused it
    (S.PAUSED, A.RESUME): (S.SENDING, None),
    (S.PAUSED, A.CANCEL): (S.CANCELED, None),
}
ALL_PAIRS = list(itertools.product(Status, Action))
REFUSED = [pair for pair in ALL_PAIRS if pair not in ALLOWED]


def _context(status: Status) -> dict:
    """The context in which an allowed pair of the table is allowed."""
    return {
        "paused_reason": PauseReason.ALL_KEYS_FAILED if status is S.PAUSED else None,
        "reason": PauseReason.HIGH_FAILURE_RATE,
        "has_holds": True,
    }


def test_the_table_covers_every_status_and_every_action():
    assert len(Status) == 7
    assert set(ALLOWED) | set(REFUSED) == set(ALL_PAIRS)
    assert len(ALL_PAIRS) == len(Status) * len(Action)


@pytest.mark.parametrize(("status", "action"), list(ALLOWED), ids=lambda v: str(v))
def test_an_allowed_action_moves_the_campaign_to_the_status_the_table_names(status, action):
    expected_status, expected_reason = ALLOWED[(status, action)]

    t = transition(status.value, action, **_context(status))

    assert t.from_status is status
    assert t.action is action
    assert t.to_status is expected_status
    assert t.paused_reason == expected_reason


@pytest.mark.parametrize(("status", "action"), list(ALLOWED), ids=lambda v: str(v))
def test_a_transition_carries_a_pause_reason_if_and_only_if_it_ends_paused(status, action):
    t = transition(status.value, action, **_context(status))

    assert (t.to_status is S.PAUSED) == (t.paused_reason is not None)


@pytest.mark.parametrize("has_holds", [False, True])
@pytest.mark.parametrize("paused_reason", [None, PauseReason.MANUAL, PauseReason.ACCOUNT_RESTRICTED])
@pytest.mark.parametrize(("status", "action"), REFUSED, ids=lambda v: str(v))
def test_an_action_the_table_does_not_allow_is_refused_whatever_the_context(status, action, paused_reason, has_holds):
    with pytest.raises(InvalidTransition) as refused:
        transition(status.value, action, paused_reason=paused_reason, reason=PauseReason.ALL_KEYS_FAILED,
                   has_holds=has_holds)

    assert refused.value.code == "invalid_transition"
    assert refused.value.details == {"from": status.value, "action": action.value}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_a_finished_campaign_accepts_no_action_at_all(status, action):
    with pytest.raises(InvalidTransition):
        transition(status, action, paused_reason=None, reason=PauseReason.MANUAL, has_holds=True)


def test_the_terminal_statuses_are_completed_failed_and_canceled():
    assert TERMINAL_STATUSES == {S.COMPLETED, S.FAILED, S.CANCELED}


@pytest.mark.parametrize("system_reason", SYSTEM_REASONS)
def test_a_manual_pause_of_a_system_paused_campaign_hands_it_to_a_person(system_reason):
    t = transition("paused", A.PAUSE, paused_reason=system_reason.value)

    assert t.from_status is S.PAUSED
    assert t.to_status is S.PAUSED
    assert t.paused_reason is PauseReason.MANUAL


def test_a_manual_pause_of_a_manually_paused_campaign_is_refused():
    with pytest.raises(InvalidTransition) as refused:
        transition("paused", A.PAUSE, paused_reason="manual")

    assert refused.value.details == {"from": "paused", "action": "pause"}


def test_a_manual_pause_of_a_sending_campaign_records_the_reason_manual():
    t = transition("sending", A.PAUSE)

    assert (t.to_status, t.paused_reason) == (S.PAUSED, PauseReason.MANUAL)


def test_resuming_a_sending_campaign_without_holds_is_refused():
    with pytest.raises(InvalidTransition) as refused:
        transition("sending", A.RESUME, has_holds=False)

    assert refused.value.details == {"from": "sending", "action": "resume"}


def test_resuming_a_sending_campaign_with_holds_keeps_it_sending():
    t = transition("sending", A.RESUME, has_holds=True)

    assert (t.from_status, t.to_status, t.paused_reason) == (S.SENDING, S.SENDING, None)


@pytest.mark.parametrize("has_holds", [False, True])
@pytest.mark.parametrize("paused_reason", list(PauseReason))
def test_resuming_a_paused_campaign_is_allowed_whatever_its_reason_or_holds(paused_reason, has_holds):
    t = transition("paused", A.RESUME, paused_reason=paused_reason.value, has_holds=has_holds)

    assert (t.to_status, t.paused_reason) == (S.SENDING, None)


@pytest.mark.parametrize("reason", SYSTEM_REASONS)
def test_an_auto_pause_takes_the_reason_the_detector_gives(reason):
    t = transition("sending", A.AUTO_PAUSE, reason=reason)

    assert (t.to_status, t.paused_reason) == (S.PAUSED, reason)


def test_an_auto_pause_of_an_already_paused_campaign_is_refused():
    with pytest.raises(InvalidTransition):
        transition("paused", A.AUTO_PAUSE, paused_reason="all_keys_failed", reason=PauseReason.HIGH_FAILURE_RATE)


def test_an_unknown_status_is_not_silently_accepted():
    with pytest.raises(ValueError):
        transition("archived", A.START)


def test_cancel_is_confirmed_by_the_campaign_exact_name():
    assert check_cancel_confirmation("Spring promo", "Spring promo") is None


@pytest.mark.parametrize("confirm",
                         ["spring promo", "SPRING PROMO", "Spring promo ", " Spring promo", "Spring", "", None])
def test_cancel_is_refused_unless_the_name_is_typed_exactly(confirm):
    with pytest.raises(ConfirmationRequired) as refused:
        check_cancel_confirmation("Spring promo", confirm)

    assert refused.value.code == "confirmation_required"
    assert "exact name" in refused.value.message


def test_a_finished_campaign_that_contacted_someone_completes():
    action = finished_status(contacted_any=True)

    assert action is A.COMPLETE
    assert transition("sending", action).to_status is S.COMPLETED


def test_a_finished_campaign_that_contacted_nobody_fails():
    action = finished_status(contacted_any=False)

    assert action is A.FAIL
    assert transition("sending", action).to_status is S.FAILED
