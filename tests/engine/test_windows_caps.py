"""Windows, caps, the ramp and scheduled starts in the engine (DESIGN.md §5, §6), with a
hand-moved clock; and three worker processes racing for one daily cap on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.sweeper import Sweeper
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services.context import Context
from drumbeat.store.tables import attempts, campaigns, leads, workspaces
from tests.conftest import FakeClock, postgresql_only
from tests.engine.test_concurrency import _spawn_worker, _wait_started
from tests.engine.test_statements import StatementLog
from tests.engine.test_worker import TWO_STEPS
from tests.factory import ALL_DAYS, add_leads, new_campaign, sandbox_key, workspace

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def clocked(ctx: Context, start: datetime = MONDAY_10) -> tuple[Context, FakeClock]:
    clock = FakeClock(start)
    return dataclasses.replace(ctx, clock=clock), clock


def schedule(start="09:00", end="17:00", tz="UTC", days=ALL_DAYS, randomize=False) -> dict:
    return {"timezone": tz, "days": days, "window_start": start, "window_end": end,
            "randomize_within_window": randomize, "start_at": None}


def limits(daily=None, weekly=None, ramp=None, rate=None) -> dict:
    return {"daily_cap": daily, "weekly_cap": weekly, "rate_per_second": rate, "ramp": ramp}


def drain(ctx: Context) -> None:
    """What a worker process does at the clock's instant: its sweeper places the parked
    leads now within reach, then the worker sends whatever is due."""
    Sweeper(ctx).sweep_once()
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=64).drain())


def sent(ctx: Context) -> int:
    with ctx.db.connect() as conn:
        return conn.execute(select(func.count()).select_from(attempts).where(attempts.c.status == "sent")).scalar_one()


def due_times(ctx: Context) -> list[datetime]:
    with ctx.db.connect() as conn:
        rows = conn.execute(select(leads.c.next_action_at).where(leads.c.state.in_(("not_contacted", "in_progress")))
                            .order_by(leads.c.next_action_at)).scalars()
        return list(rows)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_nothing_is_sent_while_the_window_is_closed_and_next_send_at_says_when_and_why(ctx):
    c, clock = clocked(ctx, at("2026-03-02T18:00:00+00:00"))
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule())
    add_leads(c, cid, 20)
    view = svc.start(c, p, cid)
    assert view["next_send_at"] == at("2026-03-03T09:00:00+00:00") and view["next_send_reason"] == "window"
    drain(c)
    assert sent(c) == 0
    clock.now = at("2026-03-03T09:00:00+00:00")
    drain(c)
    assert sent(c) == 20


def test_a_lead_that_becomes_due_outside_its_window_is_moved_to_the_next_opening_not_sent(ctx):
    c, clock = clocked(ctx, at("2026-03-02T16:30:00+00:00"))
    p = workspace(c)
    sandbox_key(c, p, "whatsapp")
    sandbox_key(c, p, "email")
    steps = [TWO_STEPS[0], {**TWO_STEPS[1], "delay_seconds": 3600}]
    cid = new_campaign(c, p, steps=steps, schedule=schedule())
    add_leads(c, cid, 5)
    svc.start(c, p, cid)
    drain(c)
    assert sent(c) == 5
    # step 2 is due at 17:30 (an hour after the send), clamped into Tuesday's window
    assert set(due_times(c)) == {at("2026-03-03T09:00:00+00:00")}
    view = svc.get_campaign(c, p, cid)
    assert view["next_send_reason"] == "window" and view["next_send_at"] == at("2026-03-03T09:00:00+00:00")
    clock.now = at("2026-03-02T17:45:00+00:00")
    with c.db.begin() as conn:  # even a lead forced due now waits for its window
        conn.execute(update(leads).values(next_action_at=clock.now))
    drain(c)
    assert sent(c) == 5
    assert set(due_times(c)) == {at("2026-03-03T09:00:00+00:00")}


def test_next_send_at_counts_leads_in_their_own_zone_whose_window_is_open(ctx):
    c, clock = clocked(ctx, at("2026-03-02T18:00:00+00:00"))  # 19:00 in Berlin, 13:00 in New York
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(tz="Europe/Berlin"))
    add_leads(c, cid, 3)
    with c.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.campaign_id == cid).values(timezone="America/New_York"))
    view = svc.start(c, p, cid)
    assert view["next_send_at"] == clock.now and view["next_send_reason"] is None
    drain(c)
    assert sent(c) == 3


def test_with_a_cap_next_send_at_is_a_leads_own_window_outside_the_campaigns(ctx):
    c, clock = clocked(ctx)  # Monday 10:00 UTC: the campaign's night window is closed
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(start="22:00", end="06:00"), limits=limits(daily=10))
    add_leads(c, cid, 2)
    with c.db.begin() as conn:  # their night, 22:00-06:00 in Tokyo, is 13:00-21:00 UTC
        conn.execute(update(leads).where(leads.c.campaign_id == cid).values(timezone="Asia/Tokyo"))
    view = svc.start(c, p, cid)
    assert view["next_send_at"] == at("2026-03-02T13:00:00+00:00") and view["next_send_reason"] == "window"
    clock.now = view["next_send_at"]
    drain(c)
    assert sent(c) == 2


def test_the_daily_cap_holds_and_resuming_while_it_is_spent_reports_the_next_send(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(), limits=limits(daily=10))
    add_leads(c, cid, 25)
    svc.start(c, p, cid)
    drain(c)
    assert sent(c) == 10
    view = svc.get_campaign(c, p, cid)
    assert view["caps"]["today"] == 10 and view["caps"]["daily_cap"] == 10
    assert view["next_send_at"] == at("2026-03-03T09:00:00+00:00") and view["next_send_reason"] == "daily_cap"
    svc.pause(c, p, cid)
    with c.db.begin() as conn:  # leads that fell due during the pause, as after a long one
        conn.execute(update(leads).where(leads.c.state == "not_contacted").values(next_action_at=clock.now))
    view = svc.resume(c, p, cid)
    assert view["status"] == "sending"
    assert view["next_send_at"] == at("2026-03-03T09:00:00+00:00") and view["next_send_reason"] == "daily_cap"
    drain(c)
    assert sent(c) == 10
    clock.now = at("2026-03-03T12:00:00+00:00")
    drain(c)
    assert sent(c) == 20
    clock.now = at("2026-03-04T09:00:00+00:00")
    drain(c)
    assert sent(c) == 25 and svc.get_campaign(c, p, cid)["status"] == "completed"


def test_a_campaign_paused_across_two_days_resumes_without_a_burst(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(randomize=True), limits=limits(daily=50))
    add_leads(c, cid, 300)
    svc.start(c, p, cid)
    clock.now = at("2026-03-02T16:59:59.999999+00:00")
    drain(c)
    assert sent(c) == 50  # Monday: the cap, spread over 10:00-17:00
    svc.pause(c, p, cid)
    clock.now = at("2026-03-04T11:00:00+00:00")  # Tuesday and Wednesday morning passed while paused
    svc.resume(c, p, cid)
    times = due_times(c)
    placed = [t for t in times if t >= clock.now]  # nothing is due at once: no burst
    assert len(times) == 250 and len(placed) == 100  # the next two openings' sends; the rest wait parked
    today = [t for t in placed if t < at("2026-03-04T17:00:00+00:00")]
    assert len(today) == 50 and len(set(today)) > 40  # at random slots of the rest of the window
    tomorrow = [t for t in placed if t not in today]
    assert all(t.date() == datetime(2026, 3, 5).date() and 9 <= t.hour < 17 for t in tomorrow)
    drain(c)
    assert sent(c) == 50
    for day in range(4, 9):  # then 50 a day, the parked ones placed by the sweeper a day ahead
        clock.now = at(f"2026-03-0{day}T16:59:59.999999+00:00")
        drain(c)
        assert sent(c) == 50 + 50 * (day - 3)
        ahead = [t for t in due_times(c) if t > clock.now]
        assert len(ahead) == min(50, 300 - sent(c)) and all(9 <= t.hour < 17 for t in ahead)
    assert svc.get_campaign(c, p, cid)["status"] == "completed"


def test_the_ramp_raises_the_daily_cap_from_the_first_sending_day(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(), limits=limits(daily=100, ramp={"start": 5, "increase": 5,
                                                                                 "every_days": 1}))
    add_leads(c, cid, 40)
    svc.start(c, p, cid)
    drain(c)
    assert sent(c) == 5
    view = svc.get_campaign(c, p, cid)
    assert view["caps"]["ramp_cap"] == 5 and view["next_send_reason"] == "ramp"
    clock.now = at("2026-03-03T10:00:00+00:00")
    drain(c)
    assert sent(c) == 15
    assert svc.get_campaign(c, p, cid)["caps"]["ramp_cap"] == 10


def test_the_weekly_cap_carries_over_to_next_monday(ctx):
    c, clock = clocked(ctx, at("2026-03-06T10:00:00+00:00"))  # a Friday
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(), limits=limits(daily=10, weekly=15))
    add_leads(c, cid, 40)
    svc.start(c, p, cid)
    drain(c)
    clock.now = at("2026-03-07T10:00:00+00:00")
    drain(c)
    assert sent(c) == 15
    view = svc.get_campaign(c, p, cid)
    assert view["caps"]["this_week"] == 15 and view["next_send_reason"] == "weekly_cap"
    assert view["next_send_at"] == at("2026-03-09T09:00:00+00:00")


def test_leads_with_their_own_time_zone_are_contacted_in_their_local_window(ctx):
    c, clock = clocked(ctx, at("2026-03-02T14:30:00+00:00"))  # 09:30 in New York, 23:30 in Tokyo
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(tz="Europe/Berlin"))
    add_leads(c, cid, 3)
    with c.db.begin() as conn:
        ids = list(conn.execute(select(leads.c.id).order_by(leads.c.id)).scalars())
        conn.execute(update(leads).where(leads.c.id == ids[1]).values(timezone="America/New_York"))
        conn.execute(update(leads).where(leads.c.id == ids[2]).values(timezone="Asia/Tokyo"))
    svc.start(c, p, cid)
    drain(c)
    with c.db.connect() as conn:
        done = set(conn.execute(select(attempts.c.lead_id).where(attempts.c.status == "sent")).scalars())
        tokyo = conn.execute(select(leads.c.next_action_at).where(leads.c.id == ids[2])).scalar_one()
    assert done == {ids[0], ids[1]}
    assert tokyo == at("2026-03-03T09:00:00+09:00")


def _night_campaign_with_leads_waiting(ctx: Context, groups: list[tuple[int, str | None, str]]):
    """Monday 00:30 UTC, a 22:00-06:00 UTC window, a daily cap of 2; leads due on Sunday
    evening, in id order by `groups` of (how many, own zone, due at HH:MM UTC), unparked.
    New York's and Tokyo's windows (03:00-11:00, 13:00-21:00 UTC) are closed now."""
    c, clock = clocked(ctx, at("2026-03-02T00:30:00+00:00"))  # 19:30 in New York, 09:30 in Tokyo
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(start="22:00", end="06:00"), limits=limits(daily=2))
    add_leads(c, cid, sum(n for n, _, _ in groups))
    svc.start(c, p, cid)
    with c.db.begin() as conn:
        ids = list(conn.execute(select(leads.c.id).where(leads.c.campaign_id == cid).order_by(leads.c.id)).scalars())
        first = 0
        for n, tz, due in groups:
            conn.execute(update(leads).where(leads.c.id.in_(ids[first:first + n]))
                         .values(timezone=tz, next_action_at=at(f"2026-03-01T{due}:00+00:00")))
            first += n
        conn.execute(update(campaigns).where(campaigns.c.id == cid).values(parked_before=None))
    return c, clock, p, cid, ids


def test_leads_deferred_to_their_own_window_take_no_share_of_a_capped_claim(ctx):
    """With a daily cap a claim takes at most the cap's budget; the longest-waiting due
    leads may be in their own zone whose window is closed: they are moved to their next
    slot, and the claim goes on to the leads it may send now, not stop there."""
    c, clock, p, cid, ids = _night_campaign_with_leads_waiting(  # the own zones' leads first
        ctx, [(2, "America/New_York", "23:00"), (2, "Asia/Tokyo", "23:10"), (2, None, "23:20")])
    assert svc.get_campaign(c, p, cid)["next_send_at"] == clock.now
    drain(c)
    with c.db.connect() as conn:
        done = set(conn.execute(select(attempts.c.lead_id).where(attempts.c.status == "sent")).scalars())
        later = dict(conn.execute(select(leads.c.id, leads.c.next_action_at).where(leads.c.id.in_(ids[:4]))).all())
    assert done == set(ids[4:])  # the campaign's own-zone leads, within the cap
    assert [later[i] for i in ids[:4]] == [at("2026-03-02T03:00:00+00:00")] * 2 + [at("2026-03-02T13:00:00+00:00")] * 2


def test_a_small_cap_behind_hundreds_of_leads_of_a_closed_zone_is_claimed_in_a_few_passes(ctx):
    """600 New York leads wait at the head of the queue while New York's window is closed,
    and the day's cap leaves 2: one claim moves all 600 to their slot and sends the two
    campaign-zone leads, looking DEFER_PASS leads further per pass — not two at a time
    (301 passes in one transaction)."""
    c, clock, p, cid, ids = _night_campaign_with_leads_waiting(
        ctx, [(600, "America/New_York", "23:00"), (2, None, "23:20")])
    worker = Worker(c, {"sandbox": SandboxAdapter()}, concurrency=32, tick_seconds=3600)
    with StatementLog(c.db) as log:
        asyncio.run(worker.step())
    passes = [s for s in log.statements if s.startswith("UPDATE leads") and "RETURNING" in s
              and "suppressions" not in s]  # the consent check after each pass is not a pass
    asyncio.run(worker.drain())
    with c.db.connect() as conn:
        sent = set(conn.execute(select(attempts.c.lead_id).where(attempts.c.status == "sent")).scalars())
        slots = set(conn.execute(select(leads.c.next_action_at).where(leads.c.id.in_(ids[:600]))).scalars())
    assert sent == set(ids[600:])
    assert slots == {at("2026-03-02T03:00:00+00:00")}  # New York's 22:00
    assert 2 <= len(passes) <= 5, len(passes)  # 2, then claims.DEFER_PASS (256) at a time: 2 + 256 + 256 + 88


def test_an_integrations_daily_cap_holds_across_the_campaigns_that_use_it(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    key = sandbox_key(c, p)
    from drumbeat.store.tables import integrations

    with c.db.begin() as conn:
        conn.execute(update(integrations).where(integrations.c.id == key).values(daily_cap=30))
    first = new_campaign(c, p, name="one")
    second = new_campaign(c, p, name="two")
    add_leads(c, first, 25)
    add_leads(c, second, 25, start=100)
    svc.start(c, p, first)
    svc.start(c, p, second)
    drain(c)
    assert sent(c) == 30
    view = svc.get_campaign(c, p, second)
    assert view["next_send_reason"] == "integration_cap"
    assert view["next_send_at"] == at("2026-03-03T00:00:00+00:00")
    clock.now = at("2026-03-03T00:00:01+00:00")
    drain(c)
    assert sent(c) == 50


def test_a_key_level_answer_gives_its_budget_back(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p, label="dead", fail="key")
    sandbox_key(c, p, label="good")
    cid = new_campaign(c, p, limits=limits(daily=20))
    add_leads(c, cid, 30)
    svc.start(c, p, cid)
    drain(c)
    assert sent(c) == 20  # the dead key's refusals did not eat the cap
    assert svc.get_campaign(c, p, cid)["caps"]["today"] == 20


def test_a_scheduled_campaign_is_started_by_a_worker_at_start_at_with_actor_system(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p)
    add_leads(c, cid, 5)
    view = svc.schedule(c, p, cid, at("2026-03-02T12:00:00+00:00"))
    assert view["status"] == "scheduled" and view["next_send_at"] == at("2026-03-02T12:00:00+00:00")
    drain(c)
    assert svc.get_campaign(c, p, cid)["status"] == "scheduled" and sent(c) == 0
    clock.now = at("2026-03-02T12:00:00+00:00")
    drain(c)
    assert sent(c) == 5
    start = [e for e in svc.get_timeline(c, p, cid) if e["action"] == "start"][0]
    assert start["actor_type"] == "system" and start["from_status"] == "scheduled"


def test_a_due_start_at_refused_by_the_gates_starts_and_pauses_at_once_with_the_reason(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p)
    add_leads(c, cid, 5)
    svc.schedule(c, p, cid, at("2026-03-02T12:00:00+00:00"))
    with c.db.begin() as conn:
        conn.execute(update(workspaces).values(subscription_status="canceled"))
    clock.now = at("2026-03-02T12:00:00+00:00")
    drain(c)
    view = svc.get_campaign(c, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "subscription_canceled"
    assert view["paused_by"] == {"type": "system", "id": "scheduler"}
    # Started, then held and paused at once by the scheduler: the start is not skipped.
    assert [(e["action"], e["from_status"], e["to_status"], e["reason"], e["actor_type"])
            for e in svc.get_timeline(c, p, cid)][-3:] == [
        ("start", "scheduled", "sending", None, "system"),
        ("hold_placed", None, None, "subscription_canceled", "system"),
        ("auto_pause", "sending", "paused", "subscription_canceled", "system"),
    ]
    assert sent(c) == 0


def _zone_near_local_noon() -> str:
    """A fixed-offset zone where it is about noon now, so the test's day cannot roll over."""
    offset = max(-12, min(14, 12 - datetime.now(UTC).hour))
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


@postgresql_only  # racing worker processes: SQLite has a single writer
def test_three_worker_processes_against_a_daily_cap_of_100_send_exactly_100(ctx, db_url, secret_key, tmp_path):
    p = workspace(ctx)
    sandbox_key(ctx, p, label="a", latency_ms=2)
    sandbox_key(ctx, p, label="b", latency_ms=2)
    cid = new_campaign(ctx, p, schedule=schedule("00:00", "24:00", tz=_zone_near_local_noon()),
                       limits=limits(daily=100))
    svc.start(ctx, p, cid)
    add_leads(ctx, cid, 1000)  # due now, all of them: only the counters stand between them and the workers
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    procs = [_spawn_worker(db_url, secret_key, log) for log in logs]
    try:
        deadline = time.monotonic() + 120
        for log in logs:
            _wait_started(log, deadline)
        settled_since = None
        while True:
            assert time.monotonic() < deadline, "the workers did not settle"
            assert all(proc.poll() is None for proc in procs), logs[0].read_text()[-2000:]
            with ctx.db.connect() as conn:
                inflight = conn.execute(select(func.count()).select_from(attempts)
                                        .where(attempts.c.status == "sending")).scalar_one()
            if sent(ctx) >= 100 and not inflight:
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > 2:
                    break
            time.sleep(0.1)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    assert sent(ctx) == 100
    with ctx.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(attempts)).scalar_one() == 100
    assert svc.get_campaign(ctx, p, cid)["caps"]["today"] == 100


def test_rate_per_second_paces_sends_across_claims(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, limits=limits(rate=5))
    svc.start(c, p, cid)
    add_leads(c, cid, 30)  # all due at once (imported while sending: not re-clamped)
    drain(c)
    assert sent(c) == 5  # one second's worth
    clock.advance(seconds=2)
    drain(c)
    assert sent(c) == 10  # idle time does not pile up: at most one second's worth at once
    for _ in range(8):
        clock.advance(seconds=0.25)
        drain(c)
    assert 18 <= sent(c) <= 20  # two more seconds: ten more, give or take the rounding


def test_with_a_rate_the_re_clamp_spaces_the_leads_by_its_interval(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, limits=limits(rate=4))
    add_leads(c, cid, 8)
    svc.start(c, p, cid)
    times = due_times(c)
    assert times == [clock.now + timedelta(seconds=0.25 * k) for k in range(8)]
