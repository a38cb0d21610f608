"""The campaign list (GET /api/v1/campaigns, and the dashboard's list) reads each part of
its items for the whole page at once: its statements do not grow with the number of
campaigns on the page, sending ones (when each sends next) included, and every item equals
the campaign's own view."""

import asyncio
from datetime import timedelta

from sqlalchemy import event

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import dashboard
from drumbeat.store.tables import integrations
from tests.factory import ALL_DAYS, add_leads, new_campaign, sandbox_key, workspace


def _campaigns(ctx, principal, n: int, ok_key: str, failing_key: str) -> list[str]:
    """n campaigns of each kind a list shows: draft, scheduled, capped with a ramp and run
    to the end, failing (error groups), uncapped and completed, stopped by dead keys (key
    errors, pause_details.keys) and by a rejected template (campaign errors)."""
    ids = []
    dead_key = sandbox_key(ctx, principal, label="dead", fail="key")
    rejecting_key = sandbox_key(ctx, principal, label="rejecting", fail="campaign")
    soon = ctx.clock() + timedelta(days=2)
    for i in range(n):
        ids.append(new_campaign(ctx, principal, name=f"draft {i}"))
        scheduled = new_campaign(ctx, principal, name=f"scheduled {i}", schedule={
            "timezone": "Europe/Berlin", "days": ALL_DAYS, "window_start": "09:00", "window_end": "17:00",
            "randomize_within_window": False, "start_at": None})
        add_leads(ctx, scheduled, 3, start=10_000 * len(ids))
        svc.schedule(ctx, principal, scheduled, soon)
        ids.append(scheduled)
        capped = new_campaign(ctx, principal, name=f"capped {i}", integration_ids=[ok_key],
                              limits={"daily_cap": 1000, "weekly_cap": 5000, "rate_per_second": None,
                                      "ramp": {"start": 5, "increase": 5, "every_days": 1}})
        failing = new_campaign(ctx, principal, name=f"failing {i}", integration_ids=[failing_key])
        done = new_campaign(ctx, principal, name=f"done {i}", integration_ids=[ok_key])
        dead = new_campaign(ctx, principal, name=f"dead keys {i}", integration_ids=[dead_key])
        rejected = new_campaign(ctx, principal, name=f"rejected {i}", integration_ids=[rejecting_key])
        for cid, leads in ((capped, 4), (failing, 30), (done, 6), (dead, 3), (rejected, 3)):
            add_leads(ctx, cid, leads, start=10_000 * (len(ids) + 1))
            svc.start(ctx, principal, cid)
            ids.append(cid)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=64, tick_seconds=3600).drain())
    return ids


def _statements(ctx, call) -> tuple[int, object]:
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(ctx.db, "before_cursor_execute", count)
    try:
        result = call()
    finally:
        event.remove(ctx.db, "before_cursor_execute", count)
    return len(seen), result


def test_the_list_costs_the_same_statements_for_a_page_of_7_campaigns_as_for_35(ctx):
    principal = workspace(ctx)
    ok_key = sandbox_key(ctx, principal, label="ok")
    failing_key = sandbox_key(ctx, principal, label="failing", fail="lead")
    ids = _campaigns(ctx, principal, 5, ok_key, failing_key)
    statuses = {svc.get_campaign(ctx, principal, i)["status"] for i in ids}
    # the kinds the page mixes (the failing ones end failed, or paused when held first)
    assert {"draft", "scheduled", "completed"} <= statuses and statuses & {"failed", "paused"}

    # one campaign of each kind on the small page, five on the large one
    small, page = _statements(ctx, lambda: svc.list_campaigns(ctx, principal, limit=7))
    large, whole = _statements(ctx, lambda: svc.list_campaigns(ctx, principal, limit=35))
    assert len(page["items"]) == 7 and len(whole["items"]) == 35
    assert {item["status"] for item in whole["items"]} == statuses
    # error groups of every scope were read too
    assert {e["scope"] for item in whole["items"] for e in item["errors"]} == {"lead", "key", "campaign"}
    assert small == large


def test_every_item_of_the_list_equals_the_campaign_s_own_view(ctx):
    principal = workspace(ctx)
    ok_key = sandbox_key(ctx, principal, label="ok")
    failing_key = sandbox_key(ctx, principal, label="failing", fail="lead")
    ids = _campaigns(ctx, principal, 1, ok_key, failing_key)
    sending = new_campaign(ctx, principal, name="sending", integration_ids=[ok_key],
                           limits={"daily_cap": 2, "weekly_cap": None, "rate_per_second": None, "ramp": None})
    add_leads(ctx, sending, 5, start=900_000)
    svc.start(ctx, principal, sending)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=64, tick_seconds=3600).drain())

    items = svc.list_campaigns(ctx, principal, sort="name", order="asc")["items"]
    assert sorted(item["id"] for item in items) == sorted([*ids, sending])
    for item in items:  # but missing_variables, which only a campaign's own view reads
        own = svc.get_campaign(ctx, principal, item["id"])
        assert "missing_variables" in own and item == {k: v for k, v in own.items() if k != "missing_variables"}
    by_name = {item["name"]: item for item in items}
    assert by_name["sending"]["status"] == "sending"
    assert by_name["sending"]["next_send_reason"] == "daily_cap"  # 2 sent today, 3 wait for tomorrow
    assert by_name["sending"]["caps"]["today"] == 2
    assert by_name["capped 0"]["caps"]["ramp_cap"] == 5
    assert by_name["failing 0"]["errors"][0]["code"] == "sandbox:lead"
    assert by_name["failing 0"]["errors"][0]["scope"] == "lead"
    assert [(e["scope"], e["code"]) for e in by_name["dead keys 0"]["errors"]] == [("key", "sandbox:key")]
    assert by_name["dead keys 0"]["paused_reason"] == "all_keys_failed"
    assert [k["label"] for k in by_name["dead keys 0"]["pause_details"]["keys"]] == ["dead"]
    assert by_name["dead keys 0"]["pause_explanation"]["fix"]["action"] == "update_key"
    assert [(e["scope"], e["code"]) for e in by_name["rejected 0"]["errors"]] == [("campaign", "sandbox:campaign")]
    assert by_name["scheduled 0"]["next_send_at"] is not None


def _sending(ctx, principal, key: str, n: int, start: int) -> list[str]:
    """n sending campaigns, each waiting for a different reason: a spent daily cap, a
    closed window, the keys' own daily cap, the rate, or due now."""
    ids = []
    kinds = [{"limits": {"daily_cap": 1, "weekly_cap": None, "rate_per_second": None, "ramp": None}},
             {"schedule": {"timezone": "Pacific/Kiritimati", "days": ["sat"], "window_start": "03:00",
                           "window_end": "04:00", "randomize_within_window": False, "start_at": None}},
             {"limits": {"daily_cap": None, "weekly_cap": None, "rate_per_second": 0.001, "ramp": None}},
             {}]
    for i in range(n):
        cid = new_campaign(ctx, principal, name=f"sending {start + i}", integration_ids=[key], **kinds[i % len(kinds)])
        add_leads(ctx, cid, 3, start=1000 * (start + i))
        svc.start(ctx, principal, cid)
        ids.append(cid)
    return ids


def test_the_next_sends_of_a_page_cost_the_same_statements_for_five_sending_campaigns_as_for_fifteen(ctx):
    principal = workspace(ctx)
    key = sandbox_key(ctx, principal, label="ok")
    capped_key = sandbox_key(ctx, principal, label="capped")
    with ctx.db.begin() as conn:  # a key whose own daily cap is spent once it has sent one
        conn.execute(integrations.update().where(integrations.c.id == capped_key).values(daily_cap=1))
    drain = lambda: asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=8,  # noqa: E731
                                       tick_seconds=3600).drain())
    # each kind once on the small page, three times on the large one
    first = _sending(ctx, principal, key, 4, 0) + _sending(ctx, principal, capped_key, 1, 4)
    drain()
    few, small = _statements(ctx, lambda: dashboard.campaign_page(ctx, principal, per_page=50))
    more = _sending(ctx, principal, key, 8, 5) + _sending(ctx, principal, capped_key, 2, 13)
    drain()
    many, large = _statements(ctx, lambda: dashboard.campaign_page(ctx, principal, per_page=50))
    assert len(small["items"]) == 5 and len(large["items"]) == 15
    assert few == many
    # and each row says what the campaign's own view says
    for row in large["items"]:
        own = svc.get_campaign(ctx, principal, row["id"])
        assert (row["next_send_at"], row["next_send_reason"]) == (own["next_send_at"], own["next_send_reason"])
        assert row["replies"] == own["progress"]["replied"] and row["channels"] == ["whatsapp"]
    reasons = {row["next_send_reason"] for row in large["items"]}
    assert {"daily_cap", "window", "rate"} <= reasons, reasons
    assert {row["id"] for row in large["items"]} == {*first, *more}
