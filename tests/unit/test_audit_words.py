"""The audit log in words (domain.audit): each entry as one sentence, secrets by key name."""

from __future__ import annotations

import pytest

from drumbeat.domain.audit import changed_keys, describe, field_changes

USER = {"type": "user", "id": "u1", "user_id": "u1"}
TOKEN = {"type": "token", "id": "t1", "user_id": "u1"}
SYSTEM = {"type": "system", "id": "engine", "user_id": None}


def entry(action: str, object_type: str, details: dict | None = None, actor: dict = USER,
          object_id: str = "o1") -> dict:
    return {"at": "2026-03-02T10:00:00Z", "actor": actor, "action": action, "object_type": object_type,
            "object_id": object_id, "details": details or {}}


def test_a_credential_change_is_named_by_its_key():
    text = describe(entry("updated", "integration", {"label": "Acme WA", "credentials": ["access_token"]}),
                    actor_email="ops@acme.test", object_name="Acme WA")

    assert text == "ops@acme.test changed the credentials (access_token) of integration 'Acme WA'"


def test_a_campaign_pause_reads_as_who_paused_what():
    text = describe(entry("pause", "campaign", {"reason": "manual"}), actor_email="ops@acme.test",
                    object_name="Spring")

    assert text == "ops@acme.test paused campaign 'Spring'"


def test_an_auto_pause_is_drumbeats_with_its_reason():
    text = describe(entry("auto_pause", "campaign", {"reason": "all_keys_failed"}, actor=SYSTEM),
                    object_name="Spring")

    assert text == "Drumbeat paused campaign 'Spring' (all keys failed)"


def test_an_api_call_says_it_came_through_a_token():
    text = describe(entry("start", "campaign", actor=TOKEN), actor_email="ops@acme.test", object_name="Spring")

    assert text == "ops@acme.test (API token) started campaign 'Spring'"


@pytest.mark.parametrize(("action", "object_type", "details", "expected"), [
    ("created", "integration", {"label": "Acme WA"}, "ops@acme.test added integration 'Acme WA'"),
    ("updated", "integration", {"label": "X", "changes": {"enabled": {"from": True, "to": False}}},
     "ops@acme.test disabled integration 'X'"),
    ("updated", "integration", {"label": "New", "changes": {"label": {"from": "Old", "to": "New"}},
                                "config": ["base_url"]},
     "ops@acme.test changed the label from Old to New and the settings (base_url) of integration 'New'"),
    ("updated", "integration", {"label": "X", "changes": {"health": {"from": "active", "to": "disconnected"}}},
     "ops@acme.test changed the health from active to disconnected of integration 'X'"),
    ("updated", "integration", {"label": "WA", "templates_synced": 3},
     "ops@acme.test synced the message templates of integration 'WA' (3 templates)"),
    ("created", "user", {"email": "new@acme.test", "role": "viewer"},
     "ops@acme.test added user new@acme.test as viewer"),
    ("updated", "user", {"email": "new@acme.test", "changes": {"role": {"from": "viewer", "to": "operator"}}},
     "ops@acme.test made user new@acme.test operator (was viewer)"),
    ("deleted", "user", {"email": "new@acme.test"}, "ops@acme.test removed user new@acme.test"),
    ("deleted", "user", {"email": "new@acme.test", "role": "viewer", "tokens_revoked": 2},
     "ops@acme.test removed user new@acme.test (2 API tokens revoked, signed out everywhere)"),
    ("deleted", "user", {"email": "new@acme.test", "role": "viewer", "tokens_revoked": 1},
     "ops@acme.test removed user new@acme.test (1 API token revoked, signed out everywhere)"),
    ("created", "token", {"user_email": "new@acme.test"}, "ops@acme.test created an API token of new@acme.test"),
    ("deleted", "token", {"user_email": "new@acme.test"}, "ops@acme.test revoked an API token of new@acme.test"),
    ("created", "webhook", {"url": "https://h.example/x"}, "ops@acme.test added webhook https://h.example/x"),
    ("created", "suppression", {"phone": "+4915112345678", "reason": "manual"},
     "ops@acme.test suppressed +4915112345678"),
    ("created", "suppression", {"email": "a@b.test", "reason": "bounce"}, "ops@acme.test suppressed a@b.test "
                                                                           "(a hard bounce)"),
    ("deleted", "suppression", {"email": "a@b.test"},
     "ops@acme.test deleted the suppression of a@b.test; a@b.test may be contacted again"),
    ("created", "suppression", {"phone": None, "erased": True, "reason": "stop_keyword"},
     "ops@acme.test suppressed an erased address (a STOP reply)"),
    ("deleted", "suppression", {"phone": "+4915112345678", "opted_in": True},
     "ops@acme.test lifted the suppression of +4915112345678: the person opted back in (START)"),
    ("updated", "workspace", {"changes": {"subscription_status": {"from": "active", "to": "canceled"}}},
     "ops@acme.test canceled the subscription"),
    ("updated", "workspace", {"changes": {"opt_out_words": {"from": [], "to": ["STOPP"]}}},
     "ops@acme.test changed the opt-out words of the workspace"),
    ("created", "workspace", {"name": "Acme"}, "ops@acme.test created workspace 'Acme'"),
    ("hold_placed", "campaign", {"channel": "whatsapp", "reason": "template_rejected"},
     "ops@acme.test held the WhatsApp channel of campaign 'Spring' (template rejected)"),
    ("hold_lifted", "campaign", {"channel": "sms"}, "ops@acme.test lifted the hold on the SMS channel of campaign "
                                                    "'Spring'"),
    ("cancel", "campaign", {}, "ops@acme.test canceled campaign 'Spring'"),
    ("edit", "campaign", {"fields": ["name"]}, "ops@acme.test edited campaign 'Spring'"),
])
def test_each_kind_of_entry_reads_as_a_sentence(action, object_type, details, expected):
    name = "Spring" if object_type == "campaign" else None
    assert describe(entry(action, object_type, details), actor_email="ops@acme.test", object_name=name) == expected


def test_a_name_gone_from_the_workspace_falls_back_to_the_one_recorded_then_to_the_id():
    assert describe(entry("created", "integration", {"label": "Old label"}), actor_email="a@b.test") \
        == "a@b.test added integration 'Old label'"
    assert describe(entry("start", "campaign", object_id="c9"), actor_email=None) \
        == "user u1 started campaign 'c9'"


def test_changed_keys_names_added_replaced_and_removed_keys_but_not_kept_ones():
    before = {"access_token": "old", "app_secret": "same", "gone": "x"}
    after = {"access_token": "new", "app_secret": "same", "added": "y"}

    assert changed_keys(before, after) == ["access_token", "added", "gone"]
    assert changed_keys({"a": None}, {}) == ["a"]


def test_field_changes_keeps_only_the_fields_given_that_differ():
    assert field_changes({"label": "A", "daily_cap": 5}, {"label": "A", "daily_cap": 6}, ("label", "daily_cap")) \
        == {"daily_cap": {"from": 5, "to": 6}}
