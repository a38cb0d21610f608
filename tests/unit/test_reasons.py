"""Pause reasons, their explanations and their severity (DESIGN.md §2, §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drumbeat.domain.channels import Channel
from drumbeat.domain.reasons import EXPLANATIONS, SEVERITY, PauseReason, most_severe, pause_reason_for

R = PauseReason


def test_the_pause_reasons_are_exactly_those_of_the_design():
    assert {r.value for r in PauseReason} == {
        "manual", "all_keys_failed", "high_failure_rate", "account_disconnected",
        "account_restricted", "subscription_canceled", "template_rejected",
    }


@pytest.mark.parametrize("reason", list(PauseReason))
def test_every_pause_reason_has_a_one_line_explanation(reason):
    text = reason.text

    assert text == EXPLANATIONS[reason]
    assert text.strip() == text
    assert len(text) > 10
    assert "\n" not in text


def test_no_two_reasons_share_an_explanation():
    assert len(set(EXPLANATIONS.values())) == len(PauseReason)


def test_the_severity_order_is_exactly_the_one_of_the_design():
    assert SEVERITY == (
        R.ACCOUNT_RESTRICTED,
        R.SUBSCRIPTION_CANCELED,
        R.TEMPLATE_REJECTED,
        R.ALL_KEYS_FAILED,
        R.HIGH_FAILURE_RATE,
        R.ACCOUNT_DISCONNECTED,
    )


@pytest.mark.parametrize(("more", "less"), [(SEVERITY[i], SEVERITY[j]) for i in range(len(SEVERITY))
                                            for j in range(i + 1, len(SEVERITY))])
def test_the_more_severe_of_two_reasons_wins(more, less):
    assert most_severe([less.value, more.value]) is more
    assert most_severe([more.value, less.value]) is more


def test_a_system_reason_outranks_manual():
    assert most_severe(["manual", "account_disconnected"]) is R.ACCOUNT_DISCONNECTED


def test_manual_alone_stays_manual():
    assert most_severe(["manual"]) is R.MANUAL


def test_an_unknown_reason_is_rejected():
    with pytest.raises(ValueError):
        most_severe(["bored"])


def test_a_campaign_pauses_when_its_only_due_channel_is_held():
    assert pause_reason_for({"email": "all_keys_failed"}, {"email"}) is R.ALL_KEYS_FAILED


def test_a_campaign_keeps_sending_while_one_due_channel_is_unheld():
    held = {"linkedin": "account_disconnected"}

    assert pause_reason_for(held, {"linkedin", "email"}) is None


def test_a_campaign_pauses_with_the_most_severe_reason_when_every_due_channel_is_held():
    held = {"linkedin": "account_disconnected", "whatsapp": "template_rejected", "sms": "high_failure_rate"}

    assert pause_reason_for(held, {"linkedin", "whatsapp", "sms"}) is R.TEMPLATE_REJECTED


def test_holds_on_channels_no_lead_waits_on_do_not_name_the_pause():
    held = {"whatsapp": "account_restricted", "sms": "account_disconnected"}

    assert pause_reason_for(held, {"sms"}) is R.ACCOUNT_DISCONNECTED


def test_a_campaign_with_no_due_channel_never_pauses():
    assert pause_reason_for({"email": "account_restricted"}, set()) is None
    assert pause_reason_for({}, set()) is None


def test_a_campaign_without_holds_never_pauses():
    assert pause_reason_for({}, {"email", "sms"}) is None


channels = st.sets(st.sampled_from([c.value for c in Channel]))


@given(
    held=st.dictionaries(st.sampled_from([c.value for c in Channel]), st.sampled_from([r.value for r in PauseReason])),
    due=channels,
)
def test_a_pause_happens_exactly_when_every_due_channel_is_held_and_names_one_of_their_holds(held, due):
    result = pause_reason_for(held, due)

    should_pause = bool(due) and due <= held.keys()
    assert (result is not None) == should_pause
    if result is not None:
        due_reasons = {PauseReason(held[c]) for c in due}
        assert result in due_reasons
        if result is PauseReason.MANUAL:
            assert due_reasons == {PauseReason.MANUAL}
        else:
            assert all(SEVERITY.index(result) <= SEVERITY.index(r) for r in due_reasons - {PauseReason.MANUAL})
