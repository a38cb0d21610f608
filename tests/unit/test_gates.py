"""The one gate check behind start, resume and the sweeper (DESIGN.md §5, API.md)."""

from __future__ import annotations

import pytest

from drumbeat.domain.gates import Gate, PoolMember, evaluate_gates
from drumbeat.domain.lifecycle import TERMINAL_STATUSES, Status
from drumbeat.domain.reasons import PauseReason


def member(iid="int-1", health="active", enabled=True, failed_in_run=False) -> PoolMember:
    return PoolMember(iid, health, enabled, failed_in_run)


def gates_named(report, name, channel=None):
    return [g for g in report.gates if g.gate == name and (channel is None or g.channel == channel)]


def run(pools=None, *, subscription_active=True, status="paused"):
    return evaluate_gates(subscription_active=subscription_active, status=status,
                          pools={"email": [member()]} if pools is None else pools)


# campaign gates


def test_an_active_subscription_passes_the_subscription_gate():
    (gate,) = gates_named(run(), "subscription")

    assert gate.ok is True
    assert gate.reason is None


def test_a_canceled_subscription_fails_the_subscription_gate_and_blocks_the_run():
    report = run(subscription_active=False)

    (gate,) = gates_named(report, "subscription")
    assert gate.ok is False
    assert "subscription" in gate.reason
    assert report.may_run is False


@pytest.mark.parametrize("status", list(Status))
def test_the_status_gate_fails_exactly_for_terminal_statuses(status):
    report = run(status=status.value)

    (gate,) = gates_named(report, "status")
    terminal = status in TERMINAL_STATUSES
    assert gate.ok is not terminal
    if terminal:
        assert status.value in gate.reason
        assert report.may_run is False
    else:
        assert gate.reason is None
        assert report.may_run is True


def test_campaign_gates_carry_no_channel():
    for gate in gates_named(run(), "subscription") + gates_named(run(), "status"):
        assert gate.channel is None
        assert gate.integration_id is None


# key_pool


def test_a_channel_with_no_integration_fails_the_key_pool_gate():
    report = run({"sms": []})

    (gate,) = gates_named(report, "key_pool", "sms")
    assert gate.ok is False
    assert gate.reason
    assert "disconnected" not in gate.reason
    assert report.blocked_channels == {"sms": PauseReason.ALL_KEYS_FAILED}


def test_a_channel_with_only_disabled_integrations_fails_the_key_pool_gate():
    report = run({"sms": [member("a", enabled=False), member("b", "disconnected", enabled=False)]})

    (gate,) = gates_named(report, "key_pool", "sms")
    assert gate.ok is False
    assert "disconnected" not in gate.reason
    assert report.blocked_channels == {"sms": PauseReason.ALL_KEYS_FAILED}
    assert report.open_channels == []


def test_a_channel_with_only_disconnected_integrations_fails_and_says_disconnected():
    report = run({"linkedin": [member("a", "disconnected"), member("b", "disconnected")]})

    (gate,) = gates_named(report, "key_pool", "linkedin")
    assert gate.ok is False
    assert "disconnected" in gate.reason
    assert report.blocked_channels == {"linkedin": PauseReason.ACCOUNT_DISCONNECTED}


def test_one_active_integration_is_enough_to_pass_the_key_pool_gate():
    pool = [member("a", "disconnected"), member("b", enabled=False), member("c", "active")]
    report = run({"whatsapp": pool})

    (gate,) = gates_named(report, "key_pool", "whatsapp")
    assert gate.ok is True
    assert gate.reason is None
    assert report.open_channels == ["whatsapp"]
    assert report.blocked_channels == {}


def test_each_channel_gets_its_own_key_pool_gate():
    report = run({"email": [member("e")], "sms": [], "linkedin": [member("l", "disconnected")]})

    pool_gates = {g.channel: g.ok for g in gates_named(report, "key_pool")}
    assert pool_gates == {"email": True, "sms": False, "linkedin": False}


# integration_health


def test_a_restricted_enabled_integration_fails_integration_health_and_names_it():
    report = run({"whatsapp": [member("wa-ok"), member("wa-bad", "restricted")]})

    (gate,) = gates_named(report, "integration_health", "whatsapp")
    assert gate.ok is False
    assert gate.integration_id == "wa-bad"
    assert "restricted" in gate.reason
    assert report.blocked_channels == {"whatsapp": PauseReason.ACCOUNT_RESTRICTED}
    assert "whatsapp" not in report.open_channels


def test_every_restricted_integration_gets_its_own_failing_gate():
    report = run({"whatsapp": [member("r1", "restricted"), member("r2", "restricted")]})

    assert sorted(g.integration_id for g in gates_named(report, "integration_health")) == ["r1", "r2"]


def test_a_disabled_restricted_integration_is_out_of_the_pool_and_does_not_fail_integration_health():
    report = run({"whatsapp": [member("ok"), member("off", "restricted", enabled=False)]})

    assert [g for g in gates_named(report, "integration_health") if not g.ok] == []
    assert report.open_channels == ["whatsapp"]


# may_run and blocked channels


def test_the_campaign_may_run_when_its_gates_pass_and_one_channel_is_open():
    report = run({"email": [member("e")], "linkedin": [member("l", "disconnected")]})

    assert report.may_run is True
    assert report.open_channels == ["email"]
    assert report.blocked_channels == {"linkedin": PauseReason.ACCOUNT_DISCONNECTED}


def test_the_campaign_may_not_run_when_every_channel_is_blocked():
    report = run({"email": [], "linkedin": [member("l", "disconnected")]})

    assert report.open_channels == []
    assert report.may_run is False


def test_an_open_channel_does_not_outweigh_a_failed_campaign_gate():
    report = run({"email": [member()]}, subscription_active=False)

    assert report.open_channels == ["email"]
    assert report.may_run is False


def test_a_campaign_with_no_unfinished_leads_has_no_channel_to_block_it():
    report = run({})

    assert [g.gate for g in report.gates] == ["subscription", "status"]
    assert report.blocked_channels == {}
    assert report.may_run is True


def test_blocked_channel_reasons_follow_the_cause():
    report = run({
        "whatsapp": [member("w", "restricted"), member("w2", "active")],
        "linkedin": [member("l", "disconnected")],
        "sms": [member("s", enabled=False)],
        "email": [member("e")],
    })

    assert report.blocked_channels == {
        "whatsapp": PauseReason.ACCOUNT_RESTRICTED,
        "linkedin": PauseReason.ACCOUNT_DISCONNECTED,
        "sms": PauseReason.ALL_KEYS_FAILED,
    }
    assert report.open_channels == ["email"]


def test_a_restriction_outranks_a_disconnection_on_the_same_channel():
    report = run({"linkedin": [member("r", "restricted"), member("d", "disconnected")]})

    assert report.blocked_channels == {"linkedin": PauseReason.ACCOUNT_RESTRICTED}


# a new run


def test_key_failure_marks_of_the_last_run_are_ignored_by_the_gates():
    report = run({"sms": [member("a", failed_in_run=True), member("b", failed_in_run=True)]})

    (gate,) = gates_named(report, "key_pool", "sms")
    assert gate.ok is True
    assert report.open_channels == ["sms"]
    assert report.may_run is True


def test_a_key_failed_in_this_run_is_not_usable_by_the_engine():
    assert member(failed_in_run=True).usable is False
    assert member().usable is True
    assert member(enabled=False).usable is False
    assert member(health="disconnected").usable is False


# API shape


def test_a_campaign_gate_serializes_without_channel_or_integration():
    assert Gate("subscription", True).as_dict() == {"gate": "subscription", "ok": True, "reason": None}


def test_a_failing_integration_gate_serializes_as_api_md_describes():
    report = run({"whatsapp": [member("wa-bad", "restricted")]})

    as_dicts = [g.as_dict() for g in report.gates]
    assert {"gate": "integration_health", "ok": False, "reason": "the account is restricted by the provider",
            "channel": "whatsapp", "integration_id": "wa-bad"} in as_dicts
    for d in as_dicts:
        assert set(d) <= {"gate", "ok", "reason", "channel", "integration_id"}
        assert {"gate", "ok", "reason"} <= set(d)
        assert d["gate"] in {"subscription", "status", "key_pool", "integration_health"}
        assert isinstance(d["ok"], bool)
        assert d["reason"] is None or isinstance(d["reason"], str)
        assert (d["reason"] is None) == d["ok"]


def test_a_key_pool_gate_serializes_with_its_channel():
    (gate,) = gates_named(run({"sms": []}), "key_pool")

    d = gate.as_dict()
    assert d["channel"] == "sms"
    assert d["ok"] is False
    assert "integration_id" not in d


# gate `unsubscribe` (issue 20): emails need DRUMBEAT_PUBLIC_URL for their links


def test_a_campaign_without_an_email_step_has_no_unsubscribe_gate():
    from drumbeat.domain.gates import unsubscribe_gate

    steps = [{"channel": "sms"}, {"channel": "whatsapp"}]

    assert unsubscribe_gate(steps, public_url_set=False) is None
    assert gates_named(evaluate_gates(subscription_active=True, status="draft", pools={"sms": [member()]},
                                      unsubscribe=None), "unsubscribe") == []


def test_an_email_step_without_a_public_url_closes_the_unsubscribe_gate_and_refuses_the_whole_run():
    from drumbeat.domain.gates import UNSUBSCRIBE_GATE_REASON, unsubscribe_gate

    closed = unsubscribe_gate([{"channel": "sms"}, {"channel": "email"}], public_url_set=False)
    report = evaluate_gates(subscription_active=True, status="draft",
                            pools={"sms": [member()], "email": [member("int-2")]}, unsubscribe=closed)

    (gate,) = gates_named(report, "unsubscribe")
    assert (gate.ok, gate.reason, gate.channel) == (False, UNSUBSCRIBE_GATE_REASON, None)
    assert "DRUMBEAT_PUBLIC_URL" in gate.reason
    assert report.open_channels == ["email", "sms"]  # every channel passes, the campaign does not
    assert report.may_run is False
    assert report.blocked_channels == {}  # configuration: no channel is held for it


def test_an_email_step_with_a_public_url_passes_the_unsubscribe_gate():
    from drumbeat.domain.gates import unsubscribe_gate

    report = evaluate_gates(subscription_active=True, status="draft", pools={"email": [member()]},
                            unsubscribe=unsubscribe_gate([{"channel": "email"}], public_url_set=True))

    (gate,) = gates_named(report, "unsubscribe")
    assert gate.ok is True and gate.reason is None
    assert report.may_run is True


def test_the_sweeper_lifts_nothing_while_the_unsubscribe_gate_is_closed():
    from drumbeat.domain.gates import sweep_holds

    report = evaluate_gates(subscription_active=True, status="sending", pools={"email": [member()]},
                            unsubscribe=False)

    assert sweep_holds({"email": "account_disconnected"}, report).lift == []
