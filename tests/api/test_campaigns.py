"""Campaigns over HTTP: create, validation, lifecycle actions, edits, listing, timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert

from drumbeat.store.tables import leads

API = "/api/v1"
SMS_STEP = {"channel": "sms", "template": {"body": "Hi {{first_name}}"}}
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


# --- helpers shared with the other API tests --------------------------------------------------

def create_campaign(client, headers, **fields) -> dict:
    body = {"name": "Spring promo", "steps": [SMS_STEP], **fields}
    response = client.post(f"{API}/campaigns", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def create_sandbox(client, headers, channel: str = "sms", **fields) -> dict:
    body = {"channel": channel, "provider": "sandbox", "label": f"{channel} sandbox", "config": {}, **fields}
    response = client.post(f"{API}/integrations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def enroll(ctx, campaign_id: str, phone: str = "+4915112345678", email: str | None = None) -> None:
    """Put a lead in a campaign directly: the lead import API is tested elsewhere, and the
    gates only look at channels that unfinished leads still wait on."""
    now = datetime.now(UTC)
    with ctx.db.begin() as conn:
        conn.execute(insert(leads).values(campaign_id=campaign_id, phone=phone, email=email, attributes={},
                                          state="not_contacted", current_step=0, next_action_at=now,
                                          created_at=now, updated_at=now))


def act(client, headers, campaign_id: str, action: str, body: dict | None = None):
    return client.post(f"{API}/campaigns/{campaign_id}/{action}", json=body, headers=headers)


def get(client, headers, campaign_id: str) -> dict:
    response = client.get(f"{API}/campaigns/{campaign_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def timeline(client, headers, campaign_id: str) -> list[dict]:
    response = client.get(f"{API}/campaigns/{campaign_id}/timeline", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def future(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def fields_of(response) -> list[str]:
    assert response.status_code == 422, response.text
    body = response.json()["error"]
    assert body["code"] == "validation_error"
    return [f["field"] for f in body["details"]["fields"]]


def sending_campaign(client, ctx, headers) -> dict:
    create_sandbox(client, headers)
    campaign = create_campaign(client, headers)
    enroll(ctx, campaign["id"])
    response = act(client, headers, campaign["id"], "start")
    assert response.status_code == 200, response.text
    return response.json()


def in_status(client, ctx, headers, status: str) -> dict:
    """A campaign brought to `status` through the API."""
    if status == "draft":
        return create_campaign(client, headers)
    if status == "scheduled":
        campaign = create_campaign(client, headers)
        return act(client, headers, campaign["id"], "schedule", {"start_at": future()}).json()
    campaign = sending_campaign(client, ctx, headers)
    if status == "paused":
        return act(client, headers, campaign["id"], "pause").json()
    if status == "canceled":
        return act(client, headers, campaign["id"], "cancel", {"confirm": campaign["name"]}).json()
    return campaign


# --- create -----------------------------------------------------------------------------------

def test_a_campaign_created_with_only_name_and_steps_is_a_draft_with_the_documented_defaults(client, owner):
    campaign = create_campaign(client, owner["headers"])

    assert isinstance(campaign["id"], str)
    assert campaign["status"] == "draft"
    assert campaign["schedule"] == {"timezone": "UTC", "days": ALL_DAYS, "window_start": "00:00",
                                    "window_end": "24:00", "randomize_within_window": False, "start_at": None}
    assert campaign["limits"] == {"daily_cap": None, "weekly_cap": None, "rate_per_second": None, "ramp": None}
    assert campaign["failure_policy"] == {"window": 50, "threshold": 0.5, "min_samples": 20}
    assert campaign["integration_ids"] is None
    assert campaign["steps"] == [{"channel": "sms", "template": {"body": "Hi {{first_name}}"}, "delay_seconds": 0}]
    assert campaign["paused_reason"] is None and campaign["holds"] == []
    assert campaign["progress"]["total"] == 0 and campaign["progress"]["percent"] == 0
    assert campaign["created_at"].endswith("+00:00")
    assert campaign["next_send_at"] is None


def test_the_campaign_object_has_exactly_the_fields_of_the_contract(client, owner):
    campaign = create_campaign(client, owner["headers"])

    assert set(campaign) == {
        "id", "name", "status", "paused_reason", "paused_reason_text", "paused_at", "paused_by",
        "pause_details", "holds", "steps", "schedule", "limits", "failure_policy", "integration_ids",
        "created_at", "started_at", "finished_at", "next_send_at", "next_send_reason", "caps", "progress",
        "breakdown", "errors", "missing_variables",
        "pause_explanation",  # additive (issue 19): the pause in plain words
        "in_doubt_policy", "in_doubt_silence_seconds"}  # additive (issue 21, API.md v1.1)
    assert set(campaign["caps"]) == {"today", "this_week", "daily_cap", "weekly_cap", "ramp_cap"}
    assert set(campaign["breakdown"]) == {"sent", "delivered", "read", "replied", "failed"}


def test_a_full_body_is_stored_as_given(client, owner):
    integration = create_sandbox(client, owner["headers"], channel="whatsapp")
    body = {
        "name": "Full",
        "steps": [{"channel": "whatsapp", "template": {"name": "promo", "language": "en", "body": "Hi"},
                   "delay_seconds": 0},
                  {"channel": "email", "template": {"subject": "News", "body": "Hello"}, "delay_seconds": 3600}],
        "integration_ids": [integration["id"]],
        "schedule": {"timezone": "Europe/Berlin", "days": ["fri", "mon"], "window_start": "09:00",
                     "window_end": "17:00", "randomize_within_window": True, "start_at": None},
        "limits": {"daily_cap": 100, "weekly_cap": 400, "rate_per_second": 2.5,
                   "ramp": {"start": 10, "increase": 10, "every_days": 2}},
        "failure_policy": {"window": 30, "threshold": 0.25, "min_samples": 10},
    }
    campaign = create_campaign(client, owner["headers"], **{k: v for k, v in body.items() if k != "name"},
                               name="Full")

    assert campaign["steps"] == body["steps"]
    assert campaign["integration_ids"] == [integration["id"]]
    assert campaign["schedule"] == {**body["schedule"], "days": ["mon", "fri"]}  # canonical order
    assert campaign["limits"] == body["limits"]
    assert campaign["failure_policy"] == body["failure_policy"]


def test_a_linkedin_step_defaults_to_sending_a_message(client, owner):
    campaign = create_campaign(client, owner["headers"], steps=[
        {"channel": "linkedin", "template": {"action": "invite", "body": "Let's connect"}},
        {"channel": "linkedin", "template": {"body": "Thanks!", "wait_seconds": 86400}}])

    assert [s["template"].get("action") for s in campaign["steps"]] == ["invite", "message"]
    assert campaign["steps"][1]["template"]["wait_seconds"] == 86400


def test_an_unknown_time_zone_is_refused_naming_schedule_timezone(client, owner):
    response = client.post(f"{API}/campaigns", headers=owner["headers"], json={
        "name": "x", "steps": [SMS_STEP], "schedule": {"timezone": "Mars/Olympus_Mons"}})

    assert fields_of(response) == ["schedule.timezone"]


def test_an_unknown_field_is_refused_not_ignored(client, owner):
    top = client.post(f"{API}/campaigns", headers=owner["headers"],
                      json={"name": "x", "steps": [SMS_STEP], "priority": "high"})
    nested = client.post(f"{API}/campaigns", headers=owner["headers"], json={
        "name": "x", "steps": [{"channel": "email", "template": {"subjet": "typo", "body": "b"}}]})

    assert fields_of(top) == ["priority"]
    assert "steps.0.template.subjet" in fields_of(nested)


def test_an_email_step_without_a_subject_is_refused(client, owner):
    response = client.post(f"{API}/campaigns", headers=owner["headers"], json={
        "name": "x", "steps": [SMS_STEP, {"channel": "email", "template": {"body": "Hello"}}]})

    assert fields_of(response) == ["steps.1.template"]
    assert "subject" in response.json()["error"]["details"]["fields"][0]["message"]


@pytest.mark.parametrize(("change", "field"), [
    ({"name": ""}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"name": 12}, "name"),
    ({"steps": []}, "steps"),
    ({"steps": "sms"}, "steps"),
    ({"steps": [{"channel": "fax", "template": {"body": "b"}}]}, "steps.0.channel"),
    ({"steps": [{"channel": "sms", "template": {"body": "   "}}]}, "steps.0.template.body"),
    ({"steps": [{"channel": "sms", "template": {}}]}, "steps.0.template.body"),
    ({"steps": [{"channel": "sms", "template": {"body": "b"}, "delay_seconds": -1}]}, "steps.0.delay_seconds"),
    ({"steps": [{"channel": "sms", "template": {"body": "b"}, "delay_seconds": 10**30}]}, "steps.0.delay_seconds"),
    ({"steps": [{"channel": "linkedin", "template": {"body": "b", "action": "poke"}}]},
     "steps.0.template.action"),
    ({"steps": [{"channel": "linkedin", "template": {"body": "b", "wait_seconds": -5}}]},
     "steps.0.template.wait_seconds"),
    ({"schedule": {"days": []}}, "schedule.days"),
    ({"schedule": {"days": ["monday"]}}, "schedule.days.0"),
    ({"schedule": {"window_start": "25:00"}}, "schedule.window_start"),
    ({"schedule": {"window_start": "24:00"}}, "schedule.window_start"),
    ({"schedule": {"window_end": "9am"}}, "schedule.window_end"),
    ({"schedule": {"window_start": "10:00", "window_end": "10:00"}}, "schedule"),
    ({"schedule": {"start_at": "2030-01-01T09:00:00"}}, "schedule.start_at"),
    ({"limits": {"daily_cap": 0}}, "limits.daily_cap"),
    ({"limits": {"weekly_cap": 10**20}}, "limits.weekly_cap"),
    ({"limits": {"rate_per_second": 0}}, "limits.rate_per_second"),
    ({"limits": {"ramp": {"start": 0, "increase": 1, "every_days": 1}}}, "limits.ramp.start"),
    ({"limits": {"ramp": {"start": 1, "increase": -1, "every_days": 1}}}, "limits.ramp.increase"),
    ({"limits": {"ramp": {"start": 1, "increase": 1, "every_days": 0}}}, "limits.ramp.every_days"),
    ({"failure_policy": {"window": 0}}, "failure_policy.window"),
    ({"failure_policy": {"threshold": 0}}, "failure_policy.threshold"),
    ({"failure_policy": {"threshold": 1.5}}, "failure_policy.threshold"),
    ({"failure_policy": {"window": 10, "min_samples": 11}}, "failure_policy"),
    ({"integration_ids": "all"}, "integration_ids"),
    ({"integration_ids": ["0" * 32]}, "integration_ids"),
])
def test_invalid_campaign_input_is_a_422_naming_the_field(client, owner, change, field):
    response = client.post(f"{API}/campaigns", headers=owner["headers"],
                           json={"name": "x", "steps": [SMS_STEP], **change})

    assert field in fields_of(response)
    assert client.get(f"{API}/campaigns", headers=owner["headers"]).json()["items"] == []


def test_integration_ids_of_another_workspace_are_refused(client, ctx, owner):
    from drumbeat.services.workspaces import init_workspace

    other = init_workspace(ctx, "Rival", "boss@rival.test")
    theirs = create_sandbox(client, {"Authorization": f"Bearer {other['token']}"})

    response = client.post(f"{API}/campaigns", headers=owner["headers"],
                           json={"name": "x", "steps": [SMS_STEP], "integration_ids": [theirs["id"]]})

    assert fields_of(response) == ["integration_ids"]


# --- lifecycle actions ----------------------------------------------------------------------

def test_schedule_and_unschedule_move_between_draft_and_scheduled(client, owner):
    campaign = create_campaign(client, owner["headers"])
    start_at = future(days=2)

    scheduled = act(client, owner["headers"], campaign["id"], "schedule", {"start_at": start_at})
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    assert datetime.fromisoformat(scheduled.json()["schedule"]["start_at"]) == datetime.fromisoformat(start_at)
    assert datetime.fromisoformat(scheduled.json()["next_send_at"]) == datetime.fromisoformat(start_at)

    unscheduled = act(client, owner["headers"], campaign["id"], "unschedule")
    assert unscheduled.status_code == 200
    assert unscheduled.json()["status"] == "draft"
    assert unscheduled.json()["schedule"]["start_at"] is None


def test_a_start_at_in_another_offset_is_answered_in_utc(client, owner):
    campaign = create_campaign(client, owner["headers"])
    local = (datetime.now(UTC) + timedelta(days=1)).astimezone(timezone(timedelta(hours=5, minutes=30)))

    body = act(client, owner["headers"], campaign["id"], "schedule", {"start_at": local.isoformat()}).json()

    assert body["schedule"]["start_at"].endswith("+00:00")
    assert datetime.fromisoformat(body["schedule"]["start_at"]) == local


@pytest.mark.parametrize("start_at", [
    "2020-01-01T09:00:00+00:00",  # in the past
    "2030-01-01T09:00:00",  # no offset
    "tomorrow",
    None,
])
def test_schedule_needs_a_future_time_with_an_offset(client, owner, start_at):
    campaign = create_campaign(client, owner["headers"])

    response = act(client, owner["headers"], campaign["id"], "schedule", {"start_at": start_at})

    assert fields_of(response) == ["start_at"]
    assert get(client, owner["headers"], campaign["id"])["status"] == "draft"


def test_start_without_any_integration_is_refused_by_the_key_pool_gate(client, ctx, owner):
    campaign = create_campaign(client, owner["headers"])
    enroll(ctx, campaign["id"])
    before = timeline(client, owner["headers"], campaign["id"])

    response = act(client, owner["headers"], campaign["id"], "start")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "resume_blocked"
    key_pool = [g for g in error["details"]["gates"] if g["gate"] == "key_pool"]
    assert key_pool == [{"gate": "key_pool", "ok": False, "reason": "no active integration on this channel",
                         "channel": "sms"}]
    assert get(client, owner["headers"], campaign["id"])["status"] == "draft"
    assert timeline(client, owner["headers"], campaign["id"]) == before


def test_a_start_blocked_by_two_gates_lists_both_and_changes_nothing(client, ctx, owner):
    campaign = create_campaign(client, owner["headers"])
    enroll(ctx, campaign["id"])
    canceled = client.put(f"{API}/workspace/subscription", json={"status": "canceled"}, headers=owner["headers"])
    assert canceled.status_code == 200, canceled.text
    before = timeline(client, owner["headers"], campaign["id"])

    response = act(client, owner["headers"], campaign["id"], "start")

    assert response.status_code == 409 and response.json()["error"]["code"] == "resume_blocked"
    assert response.json()["error"]["details"]["gates"] == [
        {"gate": "subscription", "ok": False, "reason": "the workspace subscription is not active"},
        {"gate": "status", "ok": True, "reason": None},
        {"gate": "key_pool", "ok": False, "reason": "no active integration on this channel", "channel": "sms"},
    ]
    assert get(client, owner["headers"], campaign["id"])["status"] == "draft"
    assert timeline(client, owner["headers"], campaign["id"]) == before


def test_start_pause_resume_and_cancel_walk_the_lifecycle(client, ctx, owner):
    create_sandbox(client, owner["headers"])
    campaign = create_campaign(client, owner["headers"])
    enroll(ctx, campaign["id"])
    cid = campaign["id"]

    started = act(client, owner["headers"], cid, "start").json()
    assert started["status"] == "sending" and started["started_at"] is not None

    paused = act(client, owner["headers"], cid, "pause").json()
    assert paused["status"] == "paused"
    assert paused["paused_reason"] == "manual" and paused["paused_reason_text"]
    assert paused["paused_by"] == {"type": "user", "id": owner["user_id"]}

    resumed = act(client, owner["headers"], cid, "resume").json()
    assert resumed["status"] == "sending" and resumed["paused_reason"] is None

    canceled = act(client, owner["headers"], cid, "cancel", {"confirm": "Spring promo"})
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled" and canceled.json()["finished_at"] is not None
    assert canceled.json()["progress"]["canceled"] == 1


def test_a_scheduled_campaign_may_start_at_once(client, ctx, owner):
    create_sandbox(client, owner["headers"])
    campaign = in_status(client, ctx, owner["headers"], "scheduled")
    enroll(ctx, campaign["id"])

    assert act(client, owner["headers"], campaign["id"], "start").json()["status"] == "sending"


@pytest.mark.parametrize(("status", "action", "body"), [
    ("draft", "pause", None),
    ("draft", "resume", None),
    ("draft", "unschedule", None),
    ("scheduled", "schedule", {"start_at": future()}),
    ("scheduled", "pause", None),
    ("sending", "start", None),
    ("sending", "resume", None),  # no holds: nothing to resume
    ("sending", "schedule", {"start_at": future()}),
    ("paused", "start", None),
    ("paused", "pause", None),  # already paused by a person
    ("paused", "unschedule", None),
    ("canceled", "start", None),
    ("canceled", "resume", None),
    ("canceled", "pause", None),
    ("canceled", "cancel", {"confirm": "Spring promo"}),
])
def test_a_refused_transition_is_a_409_that_changes_nothing(client, ctx, owner, status, action, body):
    campaign = in_status(client, ctx, owner["headers"], status)
    before = get(client, owner["headers"], campaign["id"])
    history = timeline(client, owner["headers"], campaign["id"])

    response = act(client, owner["headers"], campaign["id"], action, body)

    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "invalid_transition"
    assert response.json()["error"]["details"] == {"from": status, "action": action}
    after = get(client, owner["headers"], campaign["id"])
    assert (after["status"], after["paused_reason"], after["schedule"]) == \
        (before["status"], before["paused_reason"], before["schedule"])
    assert timeline(client, owner["headers"], campaign["id"]) == history


@pytest.mark.parametrize("body", [None, {}, {"confirm": None}, {"confirm": "spring promo"}, {"confirm": "Spring"}])
def test_cancel_without_the_exact_name_is_refused(client, owner, body):
    campaign = create_campaign(client, owner["headers"])

    response = act(client, owner["headers"], campaign["id"], "cancel", body)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "confirmation_required"
    assert get(client, owner["headers"], campaign["id"])["status"] == "draft"


def test_duplicate_copies_steps_schedule_and_limits_into_a_new_draft(client, ctx, owner):
    integration = create_sandbox(client, owner["headers"])
    source = create_campaign(
        client, owner["headers"], integration_ids=[integration["id"]],
        steps=[SMS_STEP, {"channel": "email", "template": {"subject": "S", "body": "B"}, "delay_seconds": 60}],
        schedule={"timezone": "Asia/Tokyo", "days": ["mon"], "window_start": "08:00", "window_end": "12:00"},
        limits={"daily_cap": 5, "ramp": {"start": 1, "increase": 2, "every_days": 3}},
        failure_policy={"window": 20, "threshold": 0.3, "min_samples": 5})
    enroll(ctx, source["id"])
    act(client, owner["headers"], source["id"], "start")

    response = act(client, owner["headers"], source["id"], "duplicate", {"include_leads": False})

    assert response.status_code == 201
    copy = response.json()
    assert copy["id"] != source["id"] and copy["status"] == "draft"
    assert copy["name"] == "Spring promo (copy)"
    for key in ("steps", "schedule", "limits", "failure_policy", "integration_ids"):
        assert copy[key] == source[key], key
    assert copy["progress"]["total"] == 0
    assert get(client, owner["headers"], source["id"])["status"] == "sending"
    assert [e["action"] for e in timeline(client, owner["headers"], copy["id"])] == ["duplicate"]


def test_duplicate_with_leads_enrolls_fresh_copies(client, ctx, owner):
    source = create_campaign(client, owner["headers"])
    enroll(ctx, source["id"], phone="+4915100000001")
    enroll(ctx, source["id"], phone="+4915100000002")

    copy = act(client, owner["headers"], source["id"], "duplicate", {"include_leads": True}).json()

    assert copy["progress"]["total"] == 2 and copy["progress"]["not_contacted"] == 2


# --- edits ------------------------------------------------------------------------------------

def patch(client, headers, campaign_id: str, body: dict):
    return client.patch(f"{API}/campaigns/{campaign_id}", json=body, headers=headers)


def test_a_draft_may_change_everything_including_steps(client, owner):
    campaign = create_campaign(client, owner["headers"])
    new_steps = [{"channel": "email", "template": {"subject": "Hi", "body": "Mail"}, "delay_seconds": 0},
                 {"channel": "sms", "template": {"body": "Text"}, "delay_seconds": 600}]

    response = patch(client, owner["headers"], campaign["id"], {
        "name": "Renamed", "steps": new_steps, "limits": {"daily_cap": 10},
        "schedule": {"timezone": "America/New_York"}, "failure_policy": {"window": 10, "min_samples": 5}})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Renamed" and body["steps"] == new_steps
    assert body["limits"]["daily_cap"] == 10
    assert body["schedule"]["timezone"] == "America/New_York"
    assert body["failure_policy"] == {"window": 10, "threshold": 0.5, "min_samples": 5}
    assert timeline(client, owner["headers"], campaign["id"])[-1]["action"] == "edit"


def test_a_patch_is_validated_like_a_create(client, owner):
    campaign = create_campaign(client, owner["headers"])

    assert fields_of(patch(client, owner["headers"], campaign["id"], {"schedule": {"timezone": "Nowhere"}})) \
        == ["schedule.timezone"]
    assert fields_of(patch(client, owner["headers"], campaign["id"], {"status": "sending"})) == ["status"]
    assert fields_of(patch(client, owner["headers"], campaign["id"], {"name": None})) == ["name"]
    assert get(client, owner["headers"], campaign["id"])["schedule"]["timezone"] == "UTC"


def test_editing_the_schedule_of_a_scheduled_campaign_keeps_its_start_time(client, ctx, owner):
    campaign = in_status(client, ctx, owner["headers"], "scheduled")

    edited = patch(client, owner["headers"], campaign["id"], {"schedule": {"timezone": "Europe/Paris"}}).json()

    assert edited["status"] == "scheduled"
    assert edited["schedule"]["start_at"] == campaign["schedule"]["start_at"] is not None
    assert edited["schedule"]["timezone"] == "Europe/Paris"


def test_steps_may_not_change_once_scheduled(client, ctx, owner):
    campaign = in_status(client, ctx, owner["headers"], "scheduled")

    response = patch(client, owner["headers"], campaign["id"], {"steps": [SMS_STEP, SMS_STEP]})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"
    assert len(get(client, owner["headers"], campaign["id"])["steps"]) == 1


def test_while_paused_only_templates_may_change(client, ctx, owner):
    campaign = in_status(client, ctx, owner["headers"], "paused")
    fixed = [{"channel": "sms", "template": {"body": "Hello {{first_name}}, fixed"}}]

    edited = patch(client, owner["headers"], campaign["id"], {"steps": fixed, "name": "Fixed"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["steps"][0]["template"] == {"body": "Hello {{first_name}}, fixed"}
    assert edited.json()["name"] == "Fixed"

    for steps in ([{"channel": "whatsapp", "template": {"body": "x"}}],
                  [SMS_STEP, SMS_STEP],
                  [{**SMS_STEP, "delay_seconds": 60}]):
        refused = patch(client, owner["headers"], campaign["id"], {"steps": steps})
        assert refused.status_code == 409, steps
        assert refused.json()["error"]["code"] == "invalid_transition"
    assert get(client, owner["headers"], campaign["id"])["steps"] == edited.json()["steps"]


@pytest.mark.parametrize("status", ["sending", "canceled"])
def test_nothing_may_change_while_sending_or_once_finished(client, ctx, owner, status):
    campaign = in_status(client, ctx, owner["headers"], status)

    response = patch(client, owner["headers"], campaign["id"], {"name": "Late"})

    assert response.status_code == 409
    assert response.json()["error"]["details"]["from"] == status
    assert get(client, owner["headers"], campaign["id"])["name"] == "Spring promo"


# --- list, read, timeline ---------------------------------------------------------------------

def test_the_list_filters_by_status_and_searches_names(client, ctx, owner):
    h = owner["headers"]
    alpha = create_campaign(client, h, name="Alpha launch")
    beta = create_campaign(client, h, name="Beta LAUNCH")
    gamma = create_campaign(client, h, name="Gamma")
    act(client, h, beta["id"], "schedule", {"start_at": future()})

    def names(**params):
        response = client.get(f"{API}/campaigns", params=params, headers=h)
        assert response.status_code == 200, response.text
        return sorted(c["name"] for c in response.json()["items"])

    assert names(status="draft") == ["Alpha launch", "Gamma"]
    assert names(status="scheduled,draft") == ["Alpha launch", "Beta LAUNCH", "Gamma"]
    assert names(q="launch") == ["Alpha launch", "Beta LAUNCH"]
    assert names(q="launch", status="scheduled") == ["Beta LAUNCH"]
    assert names(q="100%_") == []
    assert names(status="") == ["Alpha launch", "Beta LAUNCH", "Gamma"]  # an empty filter is no filter
    assert {alpha["id"], gamma["id"]} <= {c["id"] for c in client.get(f"{API}/campaigns", headers=h).json()["items"]}


def test_the_list_sorts_and_pages_with_a_cursor(client, owner):
    h = owner["headers"]
    for name in ["delta", "alpha", "echo", "charlie", "bravo"]:
        create_campaign(client, h, name=name)

    seen, cursor = [], None
    while True:
        params = {"sort": "name", "order": "asc", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/campaigns", params=params, headers=h).json()
        assert len(page["items"]) <= 2
        seen += [c["name"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ["alpha", "bravo", "charlie", "delta", "echo"]
    desc = client.get(f"{API}/campaigns", params={"sort": "name", "order": "desc"}, headers=h).json()
    assert [c["name"] for c in desc["items"]] == ["echo", "delta", "charlie", "bravo", "alpha"]
    assert desc["next_cursor"] is None
    by_percent = client.get(f"{API}/campaigns", params={"sort": "percent"}, headers=h)
    assert by_percent.status_code == 200 and len(by_percent.json()["items"]) == 5


@pytest.mark.parametrize("params", [
    {"status": "running"}, {"sort": "budget"}, {"order": "up"}, {"limit": 0}, {"limit": 501},
    {"limit": "ten"}, {"cursor": "not-a-cursor"}, {"q": "a\x00b"},
])
def test_bad_list_parameters_are_a_422(client, owner, params):
    response = client.get(f"{API}/campaigns", params=params, headers=owner["headers"])

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_a_cursor_far_beyond_the_end_is_an_empty_page(client, owner):
    import base64
    import json

    create_campaign(client, owner["headers"])
    cursor = base64.urlsafe_b64encode(json.dumps({"o": 10**30}).encode()).decode()

    page = client.get(f"{API}/campaigns", params={"cursor": cursor}, headers=owner["headers"]).json()

    assert page == {"items": [], "next_cursor": None}


def test_the_timeline_lists_every_transition_oldest_first_with_its_actor(client, ctx, owner):
    campaign = sending_campaign(client, ctx, owner["headers"])
    act(client, owner["headers"], campaign["id"], "pause")

    entries = timeline(client, owner["headers"], campaign["id"])

    assert [(e["action"], e["from_status"], e["to_status"]) for e in entries] == [
        ("create", None, "draft"), ("start", "draft", "sending"), ("pause", "sending", "paused")]
    assert all(e["actor"] == {"type": "user", "id": owner["user_id"]} for e in entries)
    assert entries[2]["reason"] == "manual"
    assert all(e["at"].endswith("+00:00") for e in entries)
    times = [datetime.fromisoformat(e["at"]) for e in entries]
    assert times == sorted(times)
    assert set(entries[0]) == {"at", "from_status", "to_status", "action", "reason", "actor", "details"}


@pytest.mark.parametrize("campaign_id", ["0" * 32, "nope", "x" * 300, "%00", "%E2%80%8F"])
def test_an_unknown_or_impossible_campaign_id_is_not_found(client, owner, campaign_id):
    for method, suffix in (("GET", ""), ("GET", "/timeline"), ("POST", "/pause"), ("PATCH", "")):
        response = client.request(method, f"{API}/campaigns/{campaign_id}{suffix}",
                                  json={"name": "x"} if method == "PATCH" else None, headers=owner["headers"])
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.json()["error"]["code"] == "not_found"



def test_a_template_with_a_variable_no_lead_provides_is_refused_at_create_and_at_edit(client, owner):
    steps = [{"channel": "email", "template": {"subject": "Hi {{frist_name}}", "body": "Hello {{first_name}}"}}]
    refused = client.post("/api/v1/campaigns", json={"name": "Typo", "steps": steps}, headers=owner["headers"])
    assert refused.status_code == 422
    fields = refused.json()["error"]["details"]["fields"]
    assert fields[0]["field"] == "steps.0.template.subject" and "frist_name" in fields[0]["message"]
    steps[0]["template"]["subject"] = "Hi {{first_name}} from {{attributes.company}}"
    created = client.post("/api/v1/campaigns", json={"name": "Fixed", "steps": steps}, headers=owner["headers"])
    assert created.status_code == 201
    steps[0]["template"]["body"] = "{{unknown}}"
    edit = client.patch(f"/api/v1/campaigns/{created.json()['id']}", json={"steps": steps}, headers=owner["headers"])
    assert edit.status_code == 422 and "unknown" in edit.json()["error"]["details"]["fields"][0]["message"]
