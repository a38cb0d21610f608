"""A resume that checks the keys (issue 21): the pure verdict on each key marked failed in
the last run, from its probe's result, and what the one gate check makes of it."""

from __future__ import annotations

import pytest

from drumbeat.channels.errors import key_mark_kind, probe_outcome
from drumbeat.domain.errors import ErrorClass, SendResult
from drumbeat.domain.gates import PoolMember, evaluate_gates
from drumbeat.domain.key_checks import KeyMark, MarkKind, ProbeOutcome, ProbeResult, judge_mark
from drumbeat.domain.reasons import PauseReason

OK = ProbeOutcome.OK


def mark(iid="k1", code="whatsapp:190", kind=MarkKind.AUTH, answered=False, label="Acme WA") -> KeyMark:
    return KeyMark(iid, label, code, "Invalid OAuth access token", kind, answered)


def probe(iid="k1", outcome=OK, code=None, message=None) -> ProbeResult:
    return ProbeResult(iid, outcome, code, message)


def member(iid="k1", m: KeyMark | None = None, health="active", enabled=True) -> PoolMember:
    return PoolMember(iid, health, enabled, m is not None, m)


def gates(pools, probes=None, timeout=5.0):
    return evaluate_gates(subscription_active=True, status="paused", pools=pools, probes=probes or {},
                          probe_timeout=timeout)


def key_pool(report, channel="whatsapp"):
    return [g for g in report.gates if g.gate == "key_pool" and g.channel == channel]


# judge_mark


def test_an_authentication_mark_whose_probe_passes_is_cleared():
    verdict = judge_mark(mark(), probe(), timeout_seconds=5)
    assert verdict.cleared is True and verdict.reason is None and verdict.error is None


def test_a_mark_whose_probe_is_refused_stays_with_the_probe_s_error_and_words():
    verdict = judge_mark(mark(), probe(outcome=ProbeOutcome.REFUSED, code="whatsapp:190", message="Token expired"),
                         timeout_seconds=5)
    assert verdict.cleared is False
    assert verdict.error == {"code": "whatsapp:190", "message": "Token expired"}
    assert "'Acme WA' still fails its connection test: whatsapp:190 (Token expired)" in verdict.reason


def test_a_probe_that_timed_out_keeps_the_mark_and_says_it_got_no_answer_in_time():
    verdict = judge_mark(mark(), probe(outcome=ProbeOutcome.TIMEOUT, code="whatsapp:timeout",
                                       message="no answer within 2 s"), timeout_seconds=2)
    assert verdict.cleared is False
    assert "no answer within 2 s" in verdict.reason and verdict.error["code"] == "whatsapp:timeout"


def test_an_unreachable_provider_keeps_the_mark_and_says_it_could_not_be_reached():
    verdict = judge_mark(mark(), probe(outcome=ProbeOutcome.UNREACHABLE, code="whatsapp:connection",
                                       message="could not reach the provider (ConnectError)"), timeout_seconds=5)
    assert verdict.cleared is False
    assert "could not be reached" in verdict.reason and verdict.error["code"] == "whatsapp:connection"


def test_a_mark_nobody_probed_stays():
    verdict = judge_mark(mark(), None, timeout_seconds=5)
    assert verdict.cleared is False and verdict.error["code"] == "whatsapp:190"
    assert "has not been tested" in verdict.reason


@pytest.mark.parametrize("code", ["twilio:20005", "whatsapp:131042"])
def test_a_billing_or_account_mark_is_not_cleared_by_a_passing_probe(code):
    verdict = judge_mark(mark(code=code, kind=key_mark_kind(code)), probe(), timeout_seconds=5)
    assert verdict.cleared is False
    assert verdict.error["code"] == code  # the mark's own error: the probe had none
    assert "billing or account error" in verdict.reason and "save the key's credentials again" in verdict.reason


def test_a_billing_mark_a_person_answered_is_cleared_once_its_probe_passes():
    answered = mark(code="twilio:20005", kind=MarkKind.ACCOUNT, answered=True)
    assert judge_mark(answered, probe(), timeout_seconds=5).cleared is True
    refused = probe(outcome=ProbeOutcome.REFUSED, code="twilio:20005", message="Account not active")
    assert judge_mark(answered, refused, timeout_seconds=5).cleared is False


# the adapters' knowledge: which marks are authentication errors, how a probe ended


@pytest.mark.parametrize(("code", "kind"), [
    ("whatsapp:190", MarkKind.AUTH), ("whatsapp:0", MarkKind.AUTH), ("twilio:20003", MarkKind.AUTH),
    ("smtp:535", MarkKind.AUTH), ("unipile:invalid_credentials", MarkKind.AUTH), ("sandbox:key", MarkKind.AUTH),
    ("whatsapp:config", MarkKind.AUTH), ("twilio:http_401", MarkKind.AUTH),
    ("twilio:20005", MarkKind.ACCOUNT), ("whatsapp:131042", MarkKind.ACCOUNT), ("whatsapp:131031", MarkKind.ACCOUNT),
    ("twilio:10001", MarkKind.ACCOUNT), ("unipile:insufficient_credits", MarkKind.ACCOUNT),
    ("whatsapp:http_402", MarkKind.ACCOUNT), (None, MarkKind.ACCOUNT),
])
def test_only_authentication_codes_make_a_mark_a_probe_may_clear(code, kind):
    assert key_mark_kind(code) is kind


@pytest.mark.parametrize(("result", "outcome"), [
    (SendResult(), ProbeOutcome.OK),
    (SendResult(error_class=ErrorClass.KEY, error_code="whatsapp:190"), ProbeOutcome.REFUSED),
    (SendResult(error_class=ErrorClass.TRANSIENT, error_code="twilio:timeout"), ProbeOutcome.TIMEOUT),
    (SendResult(error_class=ErrorClass.TRANSIENT, error_code="smtp:connection"), ProbeOutcome.UNREACHABLE),
    (SendResult(error_class=ErrorClass.TRANSIENT, error_code="whatsapp:http_503"), ProbeOutcome.REFUSED),
])
def test_a_probe_s_answer_is_ok_refused_timed_out_or_unreachable(result, outcome):
    assert probe_outcome(result) is outcome


# the one gate check


def test_a_still_dead_only_key_closes_key_pool_with_its_probe_error_and_holds_all_keys_failed():
    refused = probe(outcome=ProbeOutcome.REFUSED, code="whatsapp:190", message="Token expired")
    report = gates({"whatsapp": [member(m=mark())]}, {"k1": refused})

    [gate] = key_pool(report)
    assert gate.ok is False and gate.integration_id == "k1"
    assert gate.as_dict()["error"] == {"code": "whatsapp:190", "message": "Token expired"}
    assert "still fails its connection test" in gate.reason
    assert report.may_run is False and report.blocked_channels == {"whatsapp": PauseReason.ALL_KEYS_FAILED}
    assert report.kept_marks == ["k1"]


def test_a_fixed_key_opens_key_pool_and_loses_its_mark():
    report = gates({"whatsapp": [member(m=mark())]}, {"k1": probe()})

    [gate] = key_pool(report)
    assert gate.ok is True and "error" not in gate.as_dict()
    assert report.may_run is True and report.kept_marks == []


def test_one_dead_key_beside_a_good_one_keeps_its_mark_but_the_channel_runs():
    refused = probe("k1", ProbeOutcome.REFUSED, "whatsapp:190", "Token expired")
    report = gates({"whatsapp": [member("k1", mark("k1")), member("k2")]}, {"k1": refused})

    assert [g.ok for g in key_pool(report)] == [True]
    assert report.may_run is True and report.kept_marks == ["k1"]


def test_every_dead_key_of_a_channel_is_listed_with_its_own_error():
    probes = {"k1": probe("k1", ProbeOutcome.REFUSED, "whatsapp:190", "expired"),
              "k2": probe("k2", ProbeOutcome.TIMEOUT, "whatsapp:timeout", "no answer within 5 s")}
    report = gates({"whatsapp": [member("k1", mark("k1")), member("k2", mark("k2"))]}, probes)

    closed = key_pool(report)
    assert [(g.ok, g.integration_id, g.error["code"]) for g in closed] == [
        (False, "k1", "whatsapp:190"), (False, "k2", "whatsapp:timeout")]


def test_a_dead_key_on_one_channel_holds_that_channel_while_another_runs():
    refused = probe("k1", ProbeOutcome.REFUSED, "whatsapp:190", "expired")
    report = gates({"whatsapp": [member("k1", mark("k1"))], "email": [member("e1")]}, {"k1": refused})

    assert report.may_run is True
    assert report.open_channels == ["email"] and report.blocked_channels == {"whatsapp": PauseReason.ALL_KEYS_FAILED}


def test_a_mark_without_a_probe_result_counts_as_still_failed():
    report = gates({"whatsapp": [member(m=mark())]}, {})
    [gate] = key_pool(report)
    assert gate.ok is False and report.kept_marks == ["k1"]


def test_a_disabled_key_is_no_use_whatever_its_probe_says():
    report = gates({"whatsapp": [member(m=mark(), enabled=False)]}, {"k1": probe()})
    [gate] = key_pool(report)
    assert gate.ok is False and gate.reason == "no active integration on this channel"
