"""Re-clamp on resume (DESIGN.md §5): one set-based statement moves every lead whose time
passed into the next valid slots, paced by the caps, per lead time zone; on both engines."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from drumbeat.domain import schedule as schedule_rules
from drumbeat.domain.schedule import Window, is_open
from drumbeat.engine.sweeper import Sweeper
from drumbeat.services import campaigns as svc
from drumbeat.store import stats
from drumbeat.store.tables import attempts, campaigns, leads
from tests.engine.test_windows_caps import at, clocked, drain, limits, schedule, sent
from tests.factory import add_leads, new_campaign, sandbox_key, workspace


def lead_rows(ctx) -> list:
    with ctx.db.connect() as conn:
        return conn.execute(select(leads.c.id, leads.c.timezone, leads.c.next_action_at).order_by(leads.c.id)).all()


def test_resume_moves_only_leads_whose_time_passed_into_the_window_longest_waiting_first(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(days=["mon", "tue", "wed", "thu", "fri"]), limits=limits(daily=3))
    add_leads(c, cid, 10)
    svc.start(c, p, cid)
    svc.pause(c, p, cid)
    ids = [r.id for r in lead_rows(c)]
    with c.db.begin() as conn:  # waiting since Sunday, in id order reversed; one planned for next month
        for i, lead_id in enumerate(ids):
            conn.execute(update(leads).where(leads.c.id == lead_id)
                         .values(next_action_at=at("2026-03-01T00:00:00+00:00") - timedelta(minutes=i)))
        conn.execute(update(leads).where(leads.c.id == ids[0]).values(next_action_at=at("2026-04-01T10:00:00+00:00")))
    clock.now = at("2026-03-06T16:00:00+00:00")  # a Friday afternoon
    svc.resume(c, p, cid)
    rows = lead_rows(c)
    assert rows[0].next_action_at == at("2026-04-01T10:00:00+00:00")  # not due: kept
    moved = sorted((r for r in rows[1:] if r.next_action_at >= clock.now), key=lambda r: r.next_action_at)
    # The sends of the next two openings (Friday's rest, Monday) are placed...
    assert Counter(r.next_action_at.date() for r in moved) == {datetime(2026, 3, 6).date(): 3,
                                                                datetime(2026, 3, 9).date(): 3}
    assert {r.id for r in moved[:3]} == {rows[9].id, rows[8].id, rows[7].id}  # the longest waiting go first
    assert {r.next_action_at for r in moved[3:6]} == {at("2026-03-09T09:00:00+00:00")}
    # ...the rest wait parked, where no worker claims them, until the sweeper places them
    # an opening at a time: on Saturday, Tuesday's three.
    assert {r.id for r in rows if r.next_action_at < clock.now} == {rows[1].id, rows[2].id, rows[3].id}
    clock.now = at("2026-03-07T12:00:00+00:00")
    assert Sweeper(c).sweep_once().placed == 3
    assert {r.next_action_at.date() for r in lead_rows(c)[1:4]} == {datetime(2026, 3, 10).date()}
    assert Sweeper(c).sweep_once().placed == 0


def test_leads_planned_for_later_keep_their_share_of_a_days_cap(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(), limits=limits(daily=4))
    add_leads(c, cid, 6)
    svc.start(c, p, cid)
    svc.pause(c, p, cid)
    ids = [r.id for r in lead_rows(c)]
    with c.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id.in_(ids[:3])).values(next_action_at=at("2026-03-03T10:00:00+00:00")))
        conn.execute(update(leads).where(leads.c.id.in_(ids[3:])).values(next_action_at=clock.now))
    clock.now = at("2026-03-02T11:00:00+00:00")
    svc.resume(c, p, cid)
    per_day = Counter(r.next_action_at.date() for r in lead_rows(c))
    assert max(per_day.values()) <= 4
    assert per_day[datetime(2026, 3, 2).date()] == 3  # the due ones today; tomorrow has 3 booked, room for 1


def test_leads_with_their_own_zone_are_re_clamped_into_their_local_window(ctx):
    c, clock = clocked(ctx, at("2026-03-02T20:00:00+00:00"))
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(tz="Europe/Berlin", randomize=True), limits=limits(daily=1000))
    add_leads(c, cid, 60)
    ids = [r.id for r in lead_rows(c)]
    with c.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id.in_(ids[:20])).values(timezone="America/New_York"))
        conn.execute(update(leads).where(leads.c.id.in_(ids[20:40])).values(timezone="Asia/Tokyo"))
        conn.execute(update(leads).where(leads.c.id == ids[40]).values(timezone="Not/AZone"))
    svc.start(c, p, cid)
    window = Window.from_schedule(schedule(tz="Europe/Berlin"))
    for row in lead_rows(c):
        tz = row.timezone if row.timezone != "Not/AZone" else None
        assert row.next_action_at >= clock.now and is_open(row.next_action_at, window, tz), row
    new_york = [r.next_action_at for r in lead_rows(c) if r.timezone == "America/New_York"]
    assert all(t.date() == datetime(2026, 3, 2).date() for t in new_york)  # still Monday's window there (15:00)
    assert len(set(new_york)) == 20  # random slots, not one instant


def test_a_campaign_always_open_without_caps_keeps_its_leads_times_on_resume(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p)
    add_leads(c, cid, 5)
    svc.start(c, p, cid)
    svc.pause(c, p, cid)
    before = lead_rows(c)
    clock.advance(days=3)
    svc.resume(c, p, cid)
    assert lead_rows(c) == before
    assert "reclamp" not in [e["action"] for e in svc.get_timeline(c, p, cid)]


def test_the_re_clamp_is_on_the_timeline_with_the_number_of_leads_moved(ctx):
    c, clock = clocked(ctx, datetime(2026, 3, 2, 20, 0, tzinfo=UTC))
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule())
    add_leads(c, cid, 7)
    svc.start(c, p, cid)
    entry = [e for e in svc.get_timeline(c, p, cid) if e["action"] == "reclamp"][0]
    assert entry["details"] == {"leads": 7}


def parked_ids(ctx, cid: str) -> set[int]:
    with ctx.db.connect() as conn:
        before = conn.execute(select(campaigns.c.parked_before).where(campaigns.c.id == cid)).scalar_one()
        if before is None:
            return set()
        return set(conn.execute(select(leads.c.id).where(leads.c.campaign_id == cid,
                                                         leads.c.next_action_at < before)).scalars())


def _imported_then_started(c, clock, n: int, **campaign):
    """A campaign of `n` leads (one sandbox key), imported and started a minute later."""
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, **campaign)
    add_leads(c, cid, n)
    clock.advance(minutes=1)
    svc.start(c, p, cid)
    return p, cid


def test_parked_leads_are_never_claimed_nor_counted_as_due_and_the_sweeper_places_them_on_the_timeline(ctx):
    c, clock = clocked(ctx)  # Monday 10:00, window 09:00-17:00 every day
    # today's 5 and tomorrow's 5 are placed; 30 wait parked, due since 10:00
    p, cid = _imported_then_started(c, clock, 40, schedule=schedule(), limits=limits(daily=5))
    parked = parked_ids(c, cid)
    assert len(parked) == 30
    with c.db.connect() as conn:
        assert stats.due_leads(conn, clock.now) == [(cid, 5)]  # the queue: only what a worker may take
    drain(c)
    assert sent(c) == 5
    with c.db.connect() as conn:
        contacted = set(conn.execute(select(attempts.c.lead_id)).scalars())
    assert not contacted & parked
    assert svc.get_campaign(c, p, cid)["next_send_at"] == at("2026-03-03T09:00:00+00:00")
    clock.now = at("2026-03-03T09:30:00+00:00")  # Tuesday: the sweeper places Wednesday's five
    drain(c)
    assert sent(c) == 10 and len(parked_ids(c, cid)) == 25
    entry = [e for e in svc.get_timeline(c, p, cid) if e["action"] == "reclamp"][-1]
    assert (entry["actor_type"], entry["actor_id"]) == ("system", "sweeper")
    assert entry["details"] == {"leads": 5, "parked": True}


def test_a_second_resume_sends_the_leads_placed_before_those_parked(ctx):
    c, clock = clocked(ctx)
    p, cid = _imported_then_started(c, clock, 30, schedule=schedule(), limits=limits(daily=5))
    svc.pause(c, p, cid)
    first_parked = parked_ids(c, cid)
    placed = {r.id for r in lead_rows(c)} - first_parked
    clock.advance(days=3)  # every placed slot passed during the pause
    svc.resume(c, p, cid)
    now_placed = {r.id for r in lead_rows(c) if r.next_action_at >= clock.now}
    assert now_placed == placed  # the ten that were next in line stay next, ahead of the twenty parked
    assert parked_ids(c, cid) == first_parked


def test_lifting_the_cap_while_paused_makes_every_parked_lead_due_on_resume(ctx):
    c, clock = clocked(ctx)
    p, cid = _imported_then_started(c, clock, 30, limits=limits(daily=5))  # open all the time
    assert len(parked_ids(c, cid)) == 20
    svc.pause(c, p, cid)
    svc.update_campaign(c, p, cid, {"limits": limits()})
    svc.resume(c, p, cid)
    assert parked_ids(c, cid) == set()
    drain(c)
    assert sent(c) == 25  # the twenty parked and today's five; tomorrow's five keep their slots


def test_without_a_cap_a_randomized_start_places_quarter_hours_and_the_sweeper_the_rest_evenly_to_the_close(
        ctx, monkeypatch):
    """Monday 10:01, window 09:00-17:00, no cap, randomized: the due leads are spread over
    the hours left. The start writes only the next two quarter hours' share, the rest wait
    parked; a sweep every two minutes fills each next quarter, so the sends spread evenly to the
    close, all inside the window, nothing left at 17:00. (2,000 leads stand for a long
    list: spreading is sliced above SPREAD_AT_ONCE waiting leads, here lowered to 500.)"""
    monkeypatch.setattr(schedule_rules, "SPREAD_AT_ONCE", 500)
    c, clock = clocked(ctx)
    p, cid = _imported_then_started(c, clock, 2000, schedule=schedule(randomize=True), limits=limits())
    placed_at_start = 2000 - len(parked_ids(c, cid))
    assert 130 <= placed_at_start <= 150  # 10:01-10:15 and 10:15-10:30 at 2,000 / 419 minutes: 67 + 72
    last = at("2026-03-02T17:00:00+00:00") - timedelta(microseconds=1)  # the opening's last instant
    while True:
        drain(c)  # the sweeper's placement, then the worker's sends
        if clock.now >= last:
            break
        clock.now = min(clock.now + timedelta(minutes=2), last)
    assert sent(c) == 2000 and not parked_ids(c, cid)
    with c.db.connect() as conn:
        times = list(conn.execute(select(attempts.c.created_at)).scalars())
    window = Window.from_schedule(schedule(randomize=True))
    assert all(is_open(t, window) for t in times)
    per_hour = Counter(t.hour for t in times)  # ~286 an hour (random slots: ± ~17)
    assert set(per_hour) == {10, 11, 12, 13, 14, 15, 16}
    assert max(per_hour.values()) <= 350 and min(per_hour.values()) >= 220, per_hour


def test_a_capped_night_campaign_resumed_late_on_sunday_books_no_day_beyond_its_cap_in_any_zone(ctx):
    """A 22:00-06:00 UTC window, a daily cap of 3, Sunday 23:00 UTC: leads in the campaign's
    zone, in New York (its night is 03:00-11:00 UTC: none of it on Sunday) and in Berlin
    (21:00-05:00 UTC). The worker charges each send to its UTC day, so the plan shares each
    day among the zones that can use it: New York's leads take none of Sunday's three and
    no day gets more than three."""
    c, clock = clocked(ctx, at("2026-03-01T23:00:00+00:00"))
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, schedule=schedule(start="22:00", end="06:00"), limits=limits(daily=3))
    add_leads(c, cid, 12)
    zones = [None, "America/New_York", "Europe/Berlin"]
    svc.start(c, p, cid)
    svc.pause(c, p, cid)
    ids = [r.id for r in lead_rows(c)]
    with c.db.begin() as conn:  # all waiting since 22:00, none placed nor parked
        for i, lead_id in enumerate(ids):
            conn.execute(update(leads).where(leads.c.id == lead_id)
                         .values(timezone=zones[i % 3], next_action_at=at("2026-03-01T22:00:00+00:00")))
        conn.execute(update(campaigns).where(campaigns.c.id == cid).values(parked_before=None))
    clock.advance(minutes=1)
    svc.resume(c, p, cid)
    window = Window.from_schedule(schedule(start="22:00", end="06:00"))
    placed = [r for r in lead_rows(c) if r.id not in parked_ids(c, cid)]
    assert len(placed) == 9  # Sunday's, Monday's and Tuesday's three; three wait parked
    for r in placed:
        assert r.next_action_at >= clock.now and is_open(r.next_action_at, window, r.timezone), r
    per_day = Counter(r.next_action_at.astimezone(UTC).date() for r in placed)
    assert per_day == {datetime(2026, 3, d).date(): 3 for d in (1, 2, 3)}
    assert all(r.next_action_at >= at("2026-03-02T03:00:00+00:00") for r in placed if r.timezone == zones[1])


def test_with_a_rate_the_leads_of_two_zones_in_one_day_are_spaced_as_one_sequence(ctx):
    c, clock = clocked(ctx)  # open all the time; London's clock is UTC's in March
    p = workspace(c)
    sandbox_key(c, p)
    cid = new_campaign(c, p, limits=limits(rate=4))
    add_leads(c, cid, 8)
    ids = [r.id for r in lead_rows(c)]
    with c.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id.in_(ids[::2])).values(timezone="Europe/London"))
    svc.start(c, p, cid)
    assert sorted(r.next_action_at for r in lead_rows(c)) == [clock.now + timedelta(seconds=0.25 * k)
                                                               for k in range(8)]
