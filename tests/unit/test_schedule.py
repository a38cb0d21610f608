"""Window, cap and ramp arithmetic (DESIGN.md §6): pure, with property tests."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from itertools import islice

from hypothesis import given, settings
from hypothesis import strategies as st

from drumbeat.domain.schedule import (
    DAY_NAMES,
    SLICE,
    SPREAD_AT_ONCE,
    DaySlots,
    Limits,
    Ramp,
    Window,
    budget,
    charged_days,
    clamp,
    earliest_send,
    interval_on,
    intervals,
    is_open,
    local_day,
    next_slot,
    placement_horizon,
    plan_days,
    random_slot,
    share_days,
    spread_slices,
    zone,
    zone_openings,
)

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Apia"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def window(start="09:00", end="17:00", days=DAY_NAMES, tz="UTC", randomize=False) -> Window:
    return Window.from_schedule({"timezone": tz, "days": list(days), "window_start": start, "window_end": end,
                                 "randomize_within_window": randomize})


def test_inside_the_window_the_slot_is_now():
    assert next_slot(at("2026-03-02T10:00:00+00:00"), window()) == at("2026-03-02T10:00:00+00:00")


def test_before_the_window_the_slot_is_its_opening_in_the_campaigns_zone():
    w = window(tz="Europe/Berlin")
    assert next_slot(at("2026-03-02T06:00:00+00:00"), w) == at("2026-03-02T09:00:00+01:00")


def test_after_friday_closes_the_next_slot_is_monday_morning():
    w = window(days=["mon", "tue", "wed", "thu", "fri"], tz="America/New_York")
    assert next_slot(at("2026-03-06T17:30:00-05:00"), w) == at("2026-03-09T09:00:00-04:00")  # DST began Sunday


def test_a_window_crossing_midnight_is_open_after_midnight_of_its_day():
    w = window("22:00", "06:00", days=["mon"])
    assert is_open(at("2026-03-03T05:59:00+00:00"), w)  # Tuesday early: Monday's window
    assert not is_open(at("2026-03-03T06:00:00+00:00"), w)
    assert next_slot(at("2026-03-03T06:00:00+00:00"), w) == at("2026-03-09T22:00:00+00:00")


def test_window_end_24_00_is_the_next_midnight():
    w = window("20:00", "24:00", tz="Europe/Berlin")
    opens, closes = interval_on(date(2026, 3, 2), w, zone("Europe/Berlin"))
    assert closes == at("2026-03-03T00:00:00+01:00") and closes - opens == timedelta(hours=4)


def test_spring_forward_gap_in_berlin_moves_a_bound_past_the_gap_without_skipping_the_day():
    w = window("02:30", "05:00", tz="Europe/Berlin")
    opens, closes = interval_on(date(2026, 3, 29), w, zone("Europe/Berlin"))
    assert opens == at("2026-03-29T03:30:00+02:00")  # 02:30 does not exist that night
    assert closes == at("2026-03-29T05:00:00+02:00")
    days = [d for d, _, _ in islice(intervals(at("2026-03-27T12:00:00+00:00"), w), 4)]
    assert days == [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30), date(2026, 3, 31)]


def test_fall_back_repeat_in_new_york_neither_doubles_nor_skips_a_day():
    w = window("01:00", "02:00", tz="America/New_York")
    opens, closes = interval_on(date(2026, 11, 1), w, zone("America/New_York"))
    assert opens == at("2026-11-01T01:00:00-04:00")  # the first 01:00
    assert closes == at("2026-11-01T02:00:00-05:00")  # two hours of real time that night
    days = [d for d, _, _ in islice(intervals(at("2026-10-30T12:00:00+00:00"), w), 4)]
    assert days == [date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]


def test_daily_windows_across_both_dst_changes_open_once_per_local_day_at_local_nine():
    for tz in ("Europe/Berlin", "America/New_York"):
        w = window(tz=tz)
        got = list(zip(range(400), intervals(at("2026-01-01T00:00:00+00:00"), w), strict=False))
        days = [d for _, (d, _, _) in got]
        assert days == [date(2026, 1, 1) + timedelta(days=i) for i in range(400)]
        assert all(o.astimezone(zone(tz)).hour == 9 for _, (_, o, _) in got)


def test_a_lead_with_its_own_zone_gets_its_local_window():
    w = window(tz="Europe/Berlin")
    assert next_slot(at("2026-03-02T10:00:00+00:00"), w, "America/New_York") == at("2026-03-02T09:00:00-05:00")
    assert next_slot(at("2026-03-02T10:00:00+00:00"), w, "Asia/Kolkata") == at("2026-03-02T10:00:00+00:00")


def test_clamp_keeps_a_time_inside_the_window_and_randomizes_only_moved_sends():
    w = window(randomize=True)
    inside = at("2026-03-02T10:00:00+00:00")
    assert clamp(inside, w) == inside
    moved = clamp(at("2026-03-02T18:00:00+00:00"), w, rng=random.Random(1))
    assert at("2026-03-03T09:00:00+00:00") <= moved < at("2026-03-03T17:00:00+00:00")


def test_ramp_cap_grows_every_n_days_up_to_the_daily_cap():
    limits = Limits(daily_cap=100, ramp=Ramp(start=10, increase=15, every_days=2))
    assert [limits.day_cap(k) for k in range(0, 16, 2)] == [10, 25, 40, 55, 70, 85, 100, 100]
    assert limits.day_cap(1) == 10


def test_budget_names_the_tightest_limit():
    limits = Limits(daily_cap=100, weekly_cap=300, ramp=Ramp(20, 10, 1))
    today = date(2026, 3, 4)
    assert budget(limits, today=today, first_day=today, sent_today=20, sent_this_week=20).reason == "ramp"
    assert budget(limits, today=today, first_day=date(2026, 1, 1), sent_today=100,
                  sent_this_week=150).reason == "daily_cap"
    b = budget(limits, today=today, first_day=date(2026, 1, 1), sent_today=10, sent_this_week=300)
    assert b.remaining == 0 and b.reason == "weekly_cap"
    assert budget(Limits(), today=today, first_day=None, sent_today=5, sent_this_week=5).remaining is None


def test_plan_days_spreads_over_days_by_the_caps():
    w = window(days=["mon", "tue", "wed", "thu", "fri"])
    plan = plan_days(at("2026-03-06T16:00:00+00:00"), w, Limits(daily_cap=100), total=250, first_day=None,
                     sent_today=40, sent_this_week=0)
    assert [(p.day.isoformat(), p.capacity) for p in plan] == [
        ("2026-03-06", 60), ("2026-03-09", 100), ("2026-03-10", 100)]
    assert plan[0].opens == at("2026-03-06T16:00:00+00:00")


def test_the_re_clamp_places_the_next_two_openings_counting_the_one_in_progress():
    w = window(days=["mon", "tue", "wed", "thu", "fri"])
    assert placement_horizon(at("2026-03-06T16:00:00+00:00"), w) == at("2026-03-09T17:00:00+00:00")  # Fri, Mon
    assert placement_horizon(at("2026-03-07T12:00:00+00:00"), w) == at("2026-03-10T17:00:00+00:00")  # Mon, Tue
    plan = plan_days(at("2026-03-06T16:00:00+00:00"), w, Limits(daily_cap=100), total=10**9, first_day=None,
                     sent_today=40, sent_this_week=0, until=at("2026-03-09T17:00:00+00:00"))
    assert [(p.day.isoformat(), p.capacity) for p in plan] == [("2026-03-06", 60), ("2026-03-09", 100)]


def test_a_lead_in_its_own_zone_takes_the_opening_of_the_same_turn_even_past_a_full_day():
    w = window(tz="Europe/Berlin", days=["mon", "tue", "wed", "thu", "fri"])
    now = at("2026-03-02T12:00:00+00:00")  # Monday 13:00 in Berlin, 07:00 in New York
    booked = {date(2026, 3, 2): 100}  # Monday is full: the plan starts on Tuesday
    plan = plan_days(now, w, Limits(daily_cap=100), total=150, first_day=None, sent_today=0, sent_this_week=0,
                     booked=booked)
    assert [p.day.isoformat() for p in plan] == ["2026-03-03", "2026-03-04"]
    assert zone_openings(plan, now, w, None) == [(p.opens, p.closes) for p in plan]
    # New York's Tuesday and Wednesday, not its Monday (the turn Berlin's full Monday took)
    assert zone_openings(plan, now, w, "America/New_York") == [
        (at("2026-03-03T14:00:00+00:00"), at("2026-03-03T22:00:00+00:00")),
        (at("2026-03-04T14:00:00+00:00"), at("2026-03-04T22:00:00+00:00"))]


def test_a_night_window_is_cut_at_midnight_and_each_part_charged_to_its_own_day():
    w = window("22:00", "06:00")
    now = at("2026-03-05T03:00:00+00:00")  # Thursday 03:00, in Wednesday's night
    plan = plan_days(now, w, Limits(daily_cap=10), total=25, first_day=None, sent_today=4, sent_this_week=4)
    # Thursday's 4 sent leave 6, taken before 06:00: Thursday night's hours before midnight
    # have nothing left; after midnight Friday's cap applies.
    assert [(p.day.isoformat(), p.opens, p.closes, p.capacity, p.turn) for p in plan] == [
        ("2026-03-05", now, at("2026-03-05T06:00:00+00:00"), 6, 0),
        ("2026-03-06", at("2026-03-06T00:00:00+00:00"), at("2026-03-06T06:00:00+00:00"), 10, 1),
        ("2026-03-07", at("2026-03-07T00:00:00+00:00"), at("2026-03-07T06:00:00+00:00"), 10, 2)]
    # New York's nights of the same turns (03:00-11:00 UTC), each wholly inside the UTC day
    # the worker charges its sends to: Thursday's 6, then Friday's 10 from 03:00, not 05:00
    assert zone_openings(plan, now, w, "America/New_York")[:2] == [
        (at("2026-03-05T03:00:00+00:00"), at("2026-03-05T11:00:00+00:00")),
        (at("2026-03-06T03:00:00+00:00"), at("2026-03-06T11:00:00+00:00"))]
    # Berlin's night (21:00-05:00 UTC) crosses UTC midnight: each part goes to its own day
    berlin = plan_days(at("2026-03-05T20:00:00+00:00"), w, Limits(daily_cap=10), total=25, first_day=None,
                       sent_today=0, sent_this_week=0)
    assert zone_openings(berlin, at("2026-03-05T20:00:00+00:00"), w, "Europe/Berlin")[:2] == [
        (at("2026-03-05T21:00:00+00:00"), at("2026-03-06T00:00:00+00:00")),
        (at("2026-03-06T00:00:00+00:00"), at("2026-03-06T05:00:00+00:00"))]


def test_a_lead_in_its_own_zone_is_placed_where_the_worker_charges_the_day_the_plan_gave_it():
    w = window("22:00", "06:00")
    now = at("2026-12-06T23:00:00+00:00")  # Sunday 23:00 UTC: 18:00 in New York
    plan = plan_days(now, w, Limits(daily_cap=2), total=6, first_day=None, sent_today=0, sent_this_week=0)
    assert [p.day.isoformat() for p in plan] == ["2026-12-06", "2026-12-07", "2026-12-08"]
    stretches = zone_openings(plan, now, w, "America/New_York")
    # New York's night begins on Monday in UTC: Sunday's share is not New York's to use
    assert stretches[0] is None
    for p, (lo, hi) in zip(plan[1:], stretches[1:], strict=True):
        assert local_day(lo, w.timezone) == p.day and local_day(hi - timedelta(microseconds=1), w.timezone) == p.day


# --- properties ----------------------------------------------------------------------------

times = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))
clock = st.integers(0, 23 * 60 + 59).map(lambda m: f"{m // 60:02d}:{m % 60:02d}")
windows = st.builds(
    lambda tz, days, start, end, rnd: window(start, end if end != start else "24:00", days, tz, rnd),
    st.sampled_from(ZONES), st.sets(st.sampled_from(DAY_NAMES), min_size=1).map(sorted),
    clock, st.one_of(clock, st.just("24:00")), st.booleans())


@settings(max_examples=300, deadline=None)
@given(times, windows, st.sampled_from([None, *ZONES]))
def test_a_slot_is_never_in_the_past_and_always_inside_the_window(after, w, lead_tz):
    slot = next_slot(after, w, lead_tz)
    assert slot >= after
    assert is_open(slot, w, lead_tz)
    assert slot - after <= timedelta(days=9)
    # nothing earlier was open: the slot is the earliest
    if slot > after:
        assert not is_open(slot - timedelta(microseconds=1), w, lead_tz) or slot - after < timedelta(microseconds=2)


@settings(max_examples=200, deadline=None)
@given(times, windows, st.integers(0, 2**32))
def test_a_random_slot_is_inside_the_window_and_not_in_the_past(after, w, seed):
    slot = random_slot(after, w, random.Random(seed))
    assert slot >= after and is_open(slot, w)


@settings(max_examples=200, deadline=None)
@given(times, windows, st.integers(1, 5000), st.integers(0, 300), st.one_of(st.none(), st.integers(1, 400)),
       st.one_of(st.none(), st.integers(1, 1500)),
       st.one_of(st.none(), st.builds(Ramp, st.integers(1, 50), st.integers(0, 50), st.integers(1, 7))))
def test_a_plan_never_puts_more_on_a_day_or_week_than_its_caps_allow(now, w, total, sent, daily, weekly, ramp):
    limits = Limits(daily_cap=daily, weekly_cap=weekly, ramp=ramp)
    plan = plan_days(now, w, limits, total=total, first_day=None, sent_today=sent, sent_this_week=sent,
                     max_days=2000)
    placed, per_day, per_week = 0, {}, {}
    today = local_day(now, w.timezone)
    for p in plan:
        assert p.opens >= now and p.closes > p.opens
        # a stretch lies in the one local calendar day it is charged to, as the worker charges
        assert local_day(p.opens, w.timezone) == p.day == local_day(p.closes - timedelta(microseconds=1), w.timezone)
        take = total - placed if p.capacity is None else min(p.capacity, total - placed)
        assert take > 0
        per_day[p.day] = per_day.get(p.day, sent if p.day == today else 0) + take
        cap = limits.day_cap((p.day - today).days)
        if cap is not None:
            assert per_day[p.day] <= cap
        placed += take
        week = p.day - timedelta(days=p.day.weekday())
        per_week[week] = per_week.get(week, (sent if week == today - timedelta(days=today.weekday()) else 0)) + take
    if weekly is not None:
        assert all(n <= weekly for n in per_week.values())
    assert placed == total or len(plan) == 2000


@settings(max_examples=200, deadline=None)
@given(times, windows, st.dictionaries(st.sampled_from(["", *ZONES]), st.integers(1, 300), min_size=1),
       st.integers(0, 50), st.one_of(st.none(), st.integers(1, 100)), st.one_of(st.none(), st.integers(1, 300)),
       st.one_of(st.none(), st.builds(Ramp, st.integers(1, 50), st.integers(0, 50), st.integers(1, 7))))
def test_leads_of_every_zone_together_never_put_more_on_a_campaign_zone_day_than_its_caps_allow(
        now, w, waiting, sent, daily, weekly, ramp):
    """The re-clamp's plan: each campaign-zone day shared among the leads' zones ('' is the
    campaign's), each zone's sends in its own window on the day the worker charges them."""
    limits = Limits(daily_cap=daily, weekly_cap=weekly, ramp=ramp)
    days = charged_days(now, w, limits, until=placement_horizon(now, w), first_day=None, sent_today=sent,
                        sent_this_week=sent)
    stretches = {z: zone_openings(days, now, w, z or None) for z in waiting}
    shares = share_days(days, waiting, stretches)
    today = local_day(now, w.timezone)
    per_day: dict[date, int] = {today: sent}
    per_week: dict[date, int] = {today - timedelta(days=today.weekday()): sent}
    for z, counts in shares.items():
        assert sum(counts) <= waiting[z]
        for d, n, stretch in zip(days, counts, stretches[z], strict=True):
            if stretch is None:
                assert n == 0
                continue
            lo, hi = stretch
            assert now <= lo < hi and is_open(lo, w, z or None)
            assert local_day(lo, w.timezone) == d.day == local_day(hi - timedelta(microseconds=1), w.timezone)
            per_day[d.day] = per_day.get(d.day, 0) + n
            week = d.day - timedelta(days=d.day.weekday())
            per_week[week] = per_week.get(week, 0) + n
    for day, n in per_day.items():
        cap = limits.day_cap((day - today).days)
        assert cap is None or n <= max(cap, sent if day == today else 0)
    assert weekly is None or all(n <= max(weekly, sent) for n in per_week.values())
    # days fill in order: a zone left with leads found every day it could use full
    for i, d in enumerate(days):
        used = sum(counts[i] for counts in shares.values())
        short = [z for z in waiting if stretches[z][i] is not None and sum(shares[z]) < waiting[z]]
        assert not short or (d.capacity is not None and used == d.capacity)


def test_a_day_is_shared_among_the_zones_that_can_use_it_in_proportion_to_their_leads():
    w = window("22:00", "06:00")
    now = at("2026-12-06T23:00:00+00:00")  # Sunday 23:00 UTC: only the campaign's zone has Sunday
    days = charged_days(now, w, Limits(daily_cap=4), until=placement_horizon(now, w), first_day=None,
                        sent_today=0, sent_this_week=0)
    assert [(d.day.isoformat(), d.capacity) for d in days] == [("2026-12-06", 4), ("2026-12-07", 4),
                                                                ("2026-12-08", 4)]
    waiting = {"": 5, "America/New_York": 6}
    stretches = {z: zone_openings(days, now, w, z or None) for z in waiting}
    assert stretches["America/New_York"][0] is None
    assert stretches[""][0] == (now, at("2026-12-07T00:00:00+00:00"))
    # Sunday: 4 of the campaign zone's 5; Monday: 4 shared 1 : 6 (4/7 and 24/7, the largest
    # remainder goes to the campaign's zone); Tuesday: New York's 3 left
    assert share_days(days, waiting, stretches) == {"": [4, 1, 0], "America/New_York": [0, 3, 3]}


def test_the_earliest_send_judges_each_lead_in_its_own_zone():
    berlin = window(tz="Europe/Berlin")
    evening = at("2026-03-02T18:30:00+01:00")  # Berlin closed; 12:30 in New York
    waiting = [(at("2026-03-02T10:00:00+00:00"), None), (at("2026-03-02T11:00:00+00:00"), "America/New_York")]
    assert earliest_send(waiting, evening, berlin) == (evening, None)  # the New York lead goes now
    assert earliest_send(waiting[:1], evening, berlin) == (at("2026-03-03T09:00:00+01:00"), "window")
    later = [(at("2026-03-03T10:00:00+01:00"), None)]
    assert earliest_send(later, at("2026-03-03T09:30:00+01:00"), berlin) == (later[0][0], "step_delay")
    assert earliest_send([], evening, berlin) is None



def test_an_uncapped_spread_is_placed_a_quarter_hour_at_a_time_at_the_density_of_the_rest():
    opening = DaySlots(date(2026, 3, 2), at("2026-03-02T09:00:00+00:00"), at("2026-03-02T17:00:00+00:00"), None)
    now = at("2026-03-02T10:00:00+00:00")  # 7 hours left: 28 quarters of 1,000 for 28,000 leads
    nothing = lambda lo, hi: 0  # noqa: E731
    assert [(d.opens, d.closes, d.capacity) for d in spread_slices(opening, now, waiting=28_000, planned=nothing)] \
        == [(now, now + SLICE, 1000), (now + SLICE, now + 2 * SLICE, 1000)]
    # 600 already planned in the first quarter: they count in the density and in their quarter
    first_quarter = lambda lo, hi: 600 if lo < now + SLICE else 0  # noqa: E731
    assert [d.capacity for d in spread_slices(opening, now, waiting=28_000, planned=first_quarter)] == [422, 1022]
    # a sweep at 10:05 fills what is left of the 10:00 quarter and the next one, aligned
    later = spread_slices(opening, at("2026-03-02T10:05:00+00:00"), waiting=28_000, planned=nothing)
    assert [(d.opens, d.closes) for d in later] == [(at("2026-03-02T10:05:00+00:00"), now + SLICE),
                                                     (now + SLICE, now + 2 * SLICE)]
    assert spread_slices(opening, now, waiting=SPREAD_AT_ONCE - 1, planned=nothing) is None  # a few: all at once
    # few left behind the quarters: the rest of the opening takes them now
    few = spread_slices(opening, now, waiting=SPREAD_AT_ONCE, planned=first_quarter)
    assert [(d.opens, d.closes) for d in few][2] == (now + 2 * SLICE, opening.closes)
    assert sum(d.capacity for d in few) == SPREAD_AT_ONCE
    # the last quarters of the opening take everything still waiting
    end = spread_slices(opening, at("2026-03-02T16:31:00+00:00"), waiting=28_000, planned=nothing)
    assert [d.closes for d in end] == [at("2026-03-02T16:45:00+00:00"), opening.closes]
    assert sum(d.capacity for d in end) == 28_000


@given(waiting=st.integers(SPREAD_AT_ONCE, 200_000), sweep_minutes=st.integers(1, 10),
       start_minute=st.integers(0, 59))
@settings(max_examples=40, deadline=None)
def test_sweeps_placing_quarter_hours_spread_every_lead_evenly_before_the_close(waiting, sweep_minutes, start_minute):
    """A sweep every few minutes from `start_minute` past 10:00; a placed lead is sent when
    its slot comes (slots evenly inside each quarter). Every lead is placed before the
    close, and each whole hour gets its even share within 10%."""
    opens, closes = at("2026-03-02T09:00:00+00:00"), at("2026-03-02T17:00:00+00:00")
    opening = DaySlots(date(2026, 3, 2), opens, closes, None)
    start = at("2026-03-02T10:00:00+00:00") + timedelta(minutes=start_minute)
    chunks: list[tuple[datetime, datetime, int]] = []  # (lo, hi, n): n sends evenly in [lo, hi)
    now, left = start, waiting

    def within(lo: datetime, hi: datetime, since: datetime) -> float:
        return sum(n * max(0.0, (min(hi, c_hi) - max(lo, c_lo, since)) / (c_hi - c_lo)) for c_lo, c_hi, n in chunks)

    while left and now < closes:
        cuts = spread_slices(opening, now, waiting=left, planned=lambda lo, hi, since=now: round(within(lo, hi, since)))
        for d in cuts or [DaySlots(opening.day, now, closes, left)]:  # None: the rest, evenly
            take = min(d.capacity, left)
            left -= take
            chunks.append((d.opens, d.closes, take))
        now += timedelta(minutes=sweep_minutes)
    assert left == 0
    assert all(opens <= lo < hi <= closes for lo, hi, _ in chunks)
    even = waiting / ((closes - start) / timedelta(hours=1))
    for hour in range(start.hour + 1, 16):  # the whole hours between the first and the last
        got = within(start.replace(hour=hour, minute=0), start.replace(hour=hour + 1, minute=0), start)
        assert abs(got - even) <= 0.1 * even + 8, (hour, got, even)
