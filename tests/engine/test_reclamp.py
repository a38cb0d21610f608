"""Re-clamp on resume (DESIGN.md §5): one set-based statement moves every lead whose time
passed into the next valid slots, paced by the caps, per lead time zone; on both engines."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from drumbeat.domain.schedule import Window, is_open
from drumbeat.services import campaigns as svc
from drumbeat.store.tables import leads
from tests.engine.test_windows_caps import at, clocked, limits, schedule
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
    moved = sorted(rows[1:], key=lambda r: r.next_action_at)
    per_day = Counter(r.next_action_at.date() for r in moved)
    assert per_day == {datetime(2026, 3, 6).date(): 3, datetime(2026, 3, 9).date(): 3,
                       datetime(2026, 3, 10).date(): 3}
    assert all(r.next_action_at >= clock.now for r in moved)
    assert {r.id for r in moved[:3]} == {rows[9].id, rows[8].id, rows[7].id}  # the longest waiting go first
    assert {r.next_action_at for r in moved[3:6]} == {at("2026-03-09T09:00:00+00:00")}


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
