"""Gate `template` and Meta's messaging limits, as pure functions."""

from __future__ import annotations

import pytest

from drumbeat.domain.channels import effective_daily_cap, messaging_limit
from drumbeat.domain.gates import PoolMember, evaluate_gates, template_facts
from drumbeat.domain.reasons import PauseReason

STEPS = [{"channel": "sms", "template": {"body": "Hi"}},
         {"channel": "whatsapp", "template": {"name": "promo", "language": "en", "body": "x"}}]
POOLS = {"sms": [PoolMember("s1", "active", True)], "whatsapp": [PoolMember("w1", "active", True)]}


def entry(status="APPROVED", language="en"):
    return {"name": "promo", "language": language, "status": status, "components": [{"type": "BODY", "text": "Hi"}]}


def test_an_approved_template_that_fits_passes_the_gate():
    report = evaluate_gates(subscription_active=True, status="draft", pools=POOLS,
                            templates=template_facts(STEPS, {"w1": [entry()]}))
    assert [g.ok for g in report.gates if g.gate == "template"] == [True]
    assert report.open_channels == ["sms", "whatsapp"] and report.blocked_channels == {}


@pytest.mark.parametrize(("entries", "says"), [
    ([entry(status="PENDING")], "is PENDING, not APPROVED"),
    ([entry(language="de")], "has no language 'en'"),
    ([], "is not in the catalogue"),
])
def test_a_template_not_approved_or_not_fitting_holds_only_the_whatsapp_channel(entries, says):
    report = evaluate_gates(subscription_active=True, status="paused", pools=POOLS,
                            templates=template_facts(STEPS, {"w1": entries}))
    closed = [g for g in report.gates if g.gate == "template"]
    assert [(g.ok, g.channel, g.integration_id) for g in closed] == [(False, "whatsapp", "w1")]
    assert says in closed[0].reason and closed[0].reason.startswith("step 1: ")
    assert report.blocked_channels == {"whatsapp": PauseReason.TEMPLATE_REJECTED}
    assert report.open_channels == ["sms"] and report.may_run  # the SMS step may still go


def test_steps_behind_every_lead_and_integrations_without_a_catalogue_are_not_checked():
    assert template_facts(STEPS, {"w1": [entry(status="REJECTED")]}, first=2) == []
    assert template_facts(STEPS, {}) == []


def test_with_only_a_whatsapp_channel_a_closed_template_gate_refuses_the_start():
    report = evaluate_gates(subscription_active=True, status="draft", pools={},
                            templates=template_facts(STEPS[1:], {"w1": [entry(status="PAUSED")]}))
    assert not report.may_run


@pytest.mark.parametrize(("current", "max_daily", "expected"), [
    ("TIER_250", None, (True, 250)), ("TIER_1K", None, (True, 1000)), ("TIER_UNLIMITED", None, (True, None)),
    ("TIER_1K", "2000", (True, 2000)), (None, None, (False, None)), ("TIER_NOT_SET", None, (False, None)),
])
def test_meta_limits_read_as_sends_a_day(current, max_daily, expected):
    assert messaging_limit(current, max_daily) == expected


def test_a_key_is_held_to_the_lower_of_its_daily_cap_and_the_providers_limit():
    assert [effective_daily_cap(a, b) for a, b in [(None, None), (None, 250), (100, 250), (500, 250), (7, None)]] == \
        [None, 250, 100, 250, 7]
