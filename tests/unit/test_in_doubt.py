"""The rules that settle in-doubt sends without a person (domain.in_doubt)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drumbeat.domain.in_doubt import ProviderMessage, Resolution, lead_after_answer, match_lookup, sweep_verdict

T0 = datetime(2026, 3, 2, 10, 0, 0, 400_000, tzinfo=UTC)  # the attempt committed at 10:00:00.4
LEASE_END = T0 + timedelta(minutes=2)
BODY, SENDER = "Hi Ada, spring is here", "+15005550006"


def msg(sid="SM1", body=BODY, sender=SENDER, service=None, at=T0 + timedelta(seconds=1)) -> ProviderMessage:
    return ProviderMessage(sid, body, sender, service, at, "sent")


def match(messages, sender=SENDER):
    return match_lookup(messages, body=BODY, sender=sender, started_at=T0, lease_until=LEASE_END)


def test_the_one_message_with_the_body_sender_and_a_time_inside_the_lease_is_the_attempts():
    assert match([msg()]).sid == "SM1"


def test_the_providers_whole_seconds_still_match_a_message_created_in_the_attempts_first_second():
    assert match([msg(at=T0.replace(microsecond=0))]).sid == "SM1"


def test_no_match_proves_nothing():
    assert match([]) is None
    assert match([msg(body="Hi Ada, spring is HERE")]) is None
    assert match([msg(sender="+15005550007")]) is None
    assert match([msg(at=T0 - timedelta(seconds=1))]) is None  # before the attempt: an earlier send
    assert match([msg(at=LEASE_END + timedelta(seconds=1))]) is None  # after the lease: someone else's


def test_two_matching_messages_settle_nothing():
    assert match([msg("SM1"), msg("SM2", at=T0 + timedelta(seconds=30))]) is None


def test_a_messaging_service_sender_matches_by_the_service_not_the_number():
    assert match([msg(sender="+15005550009", service="MG1")], sender="MG1").sid == "SM1"
    assert match([msg(sender="+15005550009", service="MG2")], sender="MG1") is None


def verdict(policy="retry_after_silence", *, after=901, statuses_ago: float | None = 60, retried=False):
    now = T0 + timedelta(seconds=after)
    return sweep_verdict(policy=policy, silence_seconds=900, doubted_since=T0, now=now,
                         statuses_since=None if statuses_ago is None else now - timedelta(seconds=statuses_ago),
                         retried_before=retried)


def test_nothing_is_decided_before_the_silence_has_passed():
    assert verdict(after=899) is None
    assert verdict("ask", after=899) is None


def test_after_the_silence_the_policy_retries_once_where_statuses_arrive():
    assert verdict() is Resolution.RETRIED
    assert verdict(retried=True) is Resolution.LEFT  # once


def test_without_recent_statuses_silence_proves_nothing_and_a_person_decides():
    assert verdict(statuses_ago=None) is Resolution.LEFT
    assert verdict(statuses_ago=3601) is Resolution.LEFT


def test_ask_leaves_it_for_a_person():
    assert verdict("ask") is Resolution.LEFT


STEPS = [{"channel": "sms", "template": {"body": "a"}, "delay_seconds": 0},
         {"channel": "sms", "template": {"body": "b"}, "delay_seconds": 3600}]
LEAD = {"state": "in_doubt", "current_step": 0, "next_action_at": T0, "retries": 0, "attempt_no": 1,
        "timezone": None, "last_error": None}
ALWAYS = {"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
          "window_start": "00:00", "window_end": "24:00"}


def test_an_accepted_in_doubt_send_plans_the_next_step_as_the_answer_would_have():
    now = T0 + timedelta(minutes=5)
    fields, status, counted = lead_after_answer(LEAD, STEPS, ALWAYS, error_class=None, error_code=None, now=now)
    assert (fields["state"], fields["current_step"], fields["attempt_no"]) == ("in_progress", 1, 0)
    assert fields["next_action_at"] == now + timedelta(hours=1) and status == "sent" and not counted


def test_a_transient_failure_makes_the_in_doubt_lead_workable_again_for_its_retry():
    from drumbeat.domain.errors import ErrorClass

    fields, status, _ = lead_after_answer(LEAD, STEPS, ALWAYS, error_class=ErrorClass.TRANSIENT,
                                          error_code="whatsapp:131000", now=T0)
    assert fields["state"] == "not_contacted" and fields["current_step"] == 0 and fields["retries"] == 1
    assert status == "failed"
