"""Every stop in plain words: one sentence per pause reason and hold, naming the channel and
what failed, with the action that fixes it (domain.explanations)."""

from __future__ import annotations

import pytest

from drumbeat.domain.explanations import FIX_ACTIONS, explain
from drumbeat.domain.reasons import PauseReason

R = PauseReason

KEY = {"integration_id": "i1", "label": "Acme WA", "code": "whatsapp:190", "message": "access token expired",
       "at": "2026-03-02T15:24:09+00:00"}

# One case per reason, with the details its hold or pause carries (services.holds,
# engine.detectors), and the sentence it gives.
CASES = {
    R.ALL_KEYS_FAILED: (
        {"channel": "whatsapp", "keys": [KEY]},
        "Every WhatsApp key failed: 'Acme WA' answered whatsapp:190 (access token expired) at 15:24 UTC; "
        "update the key, then resume.",
        {"action": "update_key", "integration_id": "i1"}),
    R.ACCOUNT_DISCONNECTED: (
        {"channel": "linkedin", "integration_id": "i2", "integration_label": "Sales LI", "health": "disconnected"},
        "The LinkedIn account 'Sales LI' is disconnected; reconnect it and sending resumes by itself.",
        {"action": "reconnect_account", "integration_id": "i2"}),
    R.ACCOUNT_RESTRICTED: (
        {"channel": "whatsapp", "integration_id": "i3", "integration_label": "Acme WA", "health": "restricted"},
        "The provider restricted the WhatsApp account 'Acme WA'; review it with the provider, then resume.",
        {"action": "review_account", "integration_id": "i3"}),
    R.SUBSCRIPTION_CANCELED: (
        {"channel": "sms", "subscription_status": "canceled"},
        "The workspace subscription is not active; renew it and sending resumes by itself.",
        {"action": "renew_subscription"}),
    R.TEMPLATE_REJECTED: (
        {"channel": "whatsapp", "step": 1, "error_code": "whatsapp:132001",
         "error_message": "Template name does not exist in the translation"},
        "WhatsApp rejected the message template of step 2: whatsapp:132001 (Template name does not exist in the "
        "translation); edit the template, then resume.",
        {"action": "edit_template"}),
    R.HIGH_FAILURE_RATE: (
        {"channel": "sms", "window": 50, "counted": 40, "failed": 31, "failed_share": 0.775, "threshold": 0.5,
         "min_samples": 20},
        "31 of the last 40 SMS sends failed; check the lead list and the errors, then resume.",
        {"action": "review_errors"}),
    R.MANUAL: ({}, "Paused by a person; resume it to send again.", {"action": "resume"}),
}


def test_every_reason_has_a_case_and_a_fix():
    assert set(CASES) == set(PauseReason) == set(FIX_ACTIONS)


@pytest.mark.parametrize("reason", list(PauseReason))
def test_each_reason_gives_its_one_plain_sentence_and_its_fix(reason):
    details, text, fix = CASES[reason]

    explanation = explain(reason.value, details).as_dict()

    assert explanation == {"text": text, "fix": fix}
    assert "\n" not in explanation["text"] and "_" not in explanation["text"]  # words, not codes


@pytest.mark.parametrize("reason", list(PauseReason))
def test_each_reason_still_gives_a_sentence_without_details(reason):
    explanation = explain(reason.value, None, "email")

    assert explanation.text.endswith(".") and explanation.action == FIX_ACTIONS[reason]


def test_every_failing_key_is_named_and_the_first_is_the_one_to_fix():
    other = {**KEY, "integration_id": "i9", "label": "Backup WA", "code": "whatsapp:131031",
             "message": "Account has been locked", "at": "2026-03-02T15:25:00+00:00"}

    explanation = explain("all_keys_failed", {"channel": "whatsapp", "keys": [KEY, other]})

    assert "'Acme WA' answered whatsapp:190 (access token expired) at 15:24 UTC; " \
           "'Backup WA' answered whatsapp:131031 (Account has been locked) at 15:25 UTC" in explanation.text
    assert explanation.integration_id == "i1"


def test_a_hold_placed_by_the_gates_names_its_channel_without_keys():
    explanation = explain("all_keys_failed", {"gates": [{"gate": "keys", "ok": False}]}, "sms")

    assert explanation.text == "Every SMS key failed or is disabled in this run; update a key, then resume."


def test_a_long_provider_message_is_cut_to_keep_one_line():
    long = {**KEY, "message": "x" * 500}

    text = explain("all_keys_failed", {"channel": "whatsapp", "keys": [long]}).text

    assert len(text) < 250 and "…" in text


def test_a_pause_left_to_a_person_after_flapping_names_the_cause_that_kept_coming_back():
    explanation = explain("manual", {"previous_reason": "account_disconnected", "integration_id": "i2"})

    assert explanation.text == ("Automatic resume stopped: account disconnected kept coming back; "
                                "fix the cause, then resume.")


def test_a_pause_the_gates_placed_takes_its_channel_from_the_closed_gate():
    gates = [{"gate": "subscription", "ok": True}, {"gate": "keys", "channel": "email", "ok": False}]

    assert explain("all_keys_failed", {"gates": gates}).text.startswith("Every email key failed or is disabled")


def test_a_due_start_refused_for_want_of_a_public_url_says_to_set_it():
    details = {"gates": [{"gate": "subscription", "ok": True, "reason": None},
                         {"gate": "unsubscribe", "ok": False, "reason": "emails need an unsubscribe link"}]}

    explanation = explain("manual", details)

    assert "DRUMBEAT_PUBLIC_URL" in explanation.text and "unsubscribe link" in explanation.text
    assert explanation.as_dict()["fix"] == {"action": "set_public_url"}


def test_a_manual_pause_with_the_unsubscribe_gate_open_is_still_a_persons_pause():
    details = {"gates": [{"gate": "unsubscribe", "ok": True, "reason": None}]}

    assert explain("manual", details).text == "Paused by a person; resume it to send again."


def test_a_key_that_failed_with_a_billing_or_account_error_asks_a_person_to_confirm_the_fix():
    billing = {**KEY, "code": "twilio:20005", "message": "Account not active", "kind": "account"}

    text = explain("all_keys_failed", {"channel": "sms", "keys": [billing]}).text

    assert "billing or account matter" in text and "save the key's credentials again to confirm" in text
    auth = explain("all_keys_failed", {"channel": "sms", "keys": [{**KEY, "kind": "auth"}]}).text
    assert auth.endswith("update the key, then resume.")
