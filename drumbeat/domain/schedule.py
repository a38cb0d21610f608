"""Sending windows, caps and the warm-up ramp (DESIGN.md §6): pure arithmetic on times.

A window is a set of week days plus a local start and end ("HH:MM"; the end may be
"24:00" and may lie before the start, which means the window crosses midnight). The
window of local date D opens at D start and closes at D end (D+1 end when it crosses
midnight). Local times are turned into instants per calendar date, never by adding 24
hours, so a DST change neither skips nor doubles a day:
- a bound in the spring-forward gap (02:30 in Europe/Berlin on the last Sunday of
  March) takes the offset from before the change, i.e. it lands just after the gap;
- a bound in the fall-back repeat takes its first occurrence (fold=0).

Days and weeks (for caps and the ramp) are calendar days of the campaign's time zone;
weeks start on Monday. The ramp's day k counts calendar days from the first sending day.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import islice, takewhile
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
ALL_DAYS = frozenset(range(7))
# The longest wait for an open window: a week, plus a day whose window a DST gap emptied.
_SEARCH_DAYS = 16


@lru_cache(maxsize=1024)
def zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class Window:
    timezone: str = "UTC"
    days: frozenset[int] = ALL_DAYS  # 0 = Monday
    start: int = 0  # minutes after local midnight
    end: int = MINUTES_PER_DAY  # <= start: the window crosses midnight
    randomize: bool = False

    @classmethod
    def from_schedule(cls, schedule: dict | None) -> Window:
        s = schedule or {}
        days = s.get("days")
        return cls(
            timezone=s.get("timezone") or "UTC",
            days=frozenset(DAY_NAMES.index(d) for d in days) if days else ALL_DAYS,
            start=_minutes(s.get("window_start") or "00:00"),
            end=_minutes(s.get("window_end") or "24:00"),
            randomize=bool(s.get("randomize_within_window")),
        )

    @property
    def always_open(self) -> bool:
        return self.days == ALL_DAYS and self.start == 0 and self.end == MINUTES_PER_DAY

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


def _instant(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    day = day + timedelta(days=minutes // MINUTES_PER_DAY)
    m = minutes % MINUTES_PER_DAY
    return datetime.combine(day, time(m // 60, m % 60), tzinfo=tz).astimezone(UTC)


def interval_on(day: date, window: Window, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The window opening on local date `day` as UTC [open, close), or None (not a
    sending day, or a DST gap swallowed the whole window)."""
    if day.weekday() not in window.days:
        return None
    opens = _instant(day, window.start, tz)
    closes = _instant(day, window.end + (MINUTES_PER_DAY if window.crosses_midnight else 0), tz)
    return (opens, closes) if closes > opens else None


def intervals(after: datetime, window: Window, tz: str | None = None) -> Iterator[tuple[date, datetime, datetime]]:
    """The window's openings, in order, from the one containing `after` (or the next):
    (local date it opens on, open, close), UTC."""
    z = zone(tz or window.timezone)
    day = after.astimezone(z).date() - timedelta(days=1)  # yesterday's may cross midnight
    empty = 0
    while empty < _SEARCH_DAYS:
        found = interval_on(day, window, z)
        day += timedelta(days=1)
        if found is None or found[1] <= after:
            empty += 1
            continue
        empty = 0
        yield day - timedelta(days=1), found[0], found[1]


def window_at(after: datetime, window: Window, tz: str | None = None) -> tuple[datetime, datetime]:
    """The opening containing `after`, else the next one: UTC [open, close)."""
    for _, opens, closes in intervals(after, window, tz):
        return opens, closes
    raise ValueError("the window never opens")  # days is never empty (validated)


def next_slot(after: datetime, window: Window, tz: str | None = None) -> datetime:
    """The earliest instant >= `after` inside the window (in `tz`, the lead's own zone,
    when given, else the campaign's)."""
    opens, _ = window_at(after, window, tz)
    return max(after, opens)


def is_open(at: datetime, window: Window, tz: str | None = None) -> bool:
    return window.always_open or next_slot(at, window, tz) == at


def random_slot(after: datetime, window: Window, rng: random.Random, tz: str | None = None) -> datetime:
    """A uniformly random instant in what is left of the opening containing (or next
    after) `after`."""
    opens, closes = window_at(after, window, tz)
    lo = max(after, opens)
    return lo + (closes - lo) * rng.random()


def clamp(candidate: datetime, window: Window, tz: str | None = None, rng: random.Random | None = None) -> datetime:
    """Where a send planned for `candidate` goes: unchanged inside the window; else to the
    next opening, at a random point of it when the window is randomized."""
    if window.always_open:
        return candidate
    slot = next_slot(candidate, window, tz)
    if slot != candidate and window.randomize:
        return random_slot(slot, window, rng or random.Random(), tz)
    return slot


# --- caps and the ramp --------------------------------------------------------------------

@dataclass(frozen=True)
class Ramp:
    start: int
    increase: int
    every_days: int

    def cap(self, day_index: int) -> int:
        """The ramp's cap on day k (k = 0 is the first sending day)."""
        return self.start + self.increase * (max(0, day_index) // self.every_days)


@dataclass(frozen=True)
class Limits:
    daily_cap: int | None = None
    weekly_cap: int | None = None
    rate_per_second: float | None = None
    ramp: Ramp | None = None

    @classmethod
    def from_limits(cls, limits: dict | None) -> Limits:
        lim = limits or {}
        ramp = lim.get("ramp")
        return cls(lim.get("daily_cap"), lim.get("weekly_cap"), lim.get("rate_per_second"),
                   Ramp(int(ramp["start"]), int(ramp["increase"]), int(ramp["every_days"])) if ramp else None)

    @property
    def capped(self) -> bool:
        return self.daily_cap is not None or self.weekly_cap is not None or self.ramp is not None

    def ramp_cap(self, day_index: int) -> int | None:
        return self.ramp.cap(day_index) if self.ramp else None

    def day_cap(self, day_index: int) -> int | None:
        """cap on day k = min(daily_cap, ramp(k)); None means no cap."""
        caps = [c for c in (self.daily_cap, self.ramp_cap(day_index)) if c is not None]
        return min(caps) if caps else None


# --- rate_per_second: a virtual schedule shared by every worker (engine.worker._reserve) --
# Each send books 1/rate seconds on the campaign's rate counter (`until`: when the sends
# booked so far are spread out); a claim may run up to one burst ahead of it.

def rate_burst(per_second: float) -> timedelta:
    return timedelta(seconds=max(1.0, 1.0 / per_second))


def rate_allowance(booked_until: datetime | None, now: datetime, per_second: float) -> int:
    """How many sends the rate lets a claim take now."""
    booked = max(booked_until or now, now)
    return max(0, int((now + rate_burst(per_second) - booked).total_seconds() * per_second))


def rate_ready_at(booked_until: datetime | None, now: datetime, per_second: float) -> datetime:
    """When the rate next lets one send go (now, or later while the booked sends run)."""
    if booked_until is None:
        return now
    return max(now, booked_until - rate_burst(per_second) + timedelta(seconds=1.0 / per_second))


def local_day(at: datetime, tz: str | None) -> date:
    return at.astimezone(zone(tz)).date()


def week_of(day: date) -> date:
    """The Monday that starts `day`'s week."""
    return day - timedelta(days=day.weekday())


def day_index(day: date, first_day: date | None) -> int:
    return 0 if first_day is None else max(0, (day - first_day).days)


@dataclass(frozen=True)
class Budget:
    """What may still be sent now, and if nothing, why not."""

    remaining: int | None  # None: no cap
    reason: str | None = None  # daily_cap | weekly_cap | ramp when remaining is 0


def budget(limits: Limits, *, today: date, first_day: date | None, sent_today: int, sent_this_week: int) -> Budget:
    """The campaign's budget for the rest of `today` (local date)."""
    k = day_index(today, first_day)
    candidates: list[tuple[int, str]] = []
    if limits.daily_cap is not None:
        candidates.append((limits.daily_cap - sent_today, "daily_cap"))
    ramp = limits.ramp_cap(k)
    if ramp is not None:
        candidates.append((ramp - sent_today, "ramp"))
    if limits.weekly_cap is not None:
        candidates.append((limits.weekly_cap - sent_this_week, "weekly_cap"))
    if not candidates:
        return Budget(None)
    left, reason = min(candidates, key=lambda c: c[0])
    return Budget(max(0, left), reason if left <= 0 else None)


@dataclass(frozen=True)
class DaySlots:
    """A stretch of one opening of the window inside one local calendar day (or a whole
    day, charged_days), and how many sends it may take (None: any number). An opening
    crossing midnight gives two: the sends after midnight count against the next day's
    cap, as the worker charges them."""

    day: date  # the local calendar day its sends are charged to
    opens: datetime
    closes: datetime
    capacity: int | None
    turn: int = 0  # which opening from `now` it belongs to (0: the one in progress or next)


def _midnight_cut(day: date, opens: datetime, closes: datetime, z: ZoneInfo) -> datetime | None:
    """Where the opening of local date `day` crosses local midnight, if it does."""
    midnight = _instant(day + timedelta(days=1), 0, z)
    return midnight if opens < midnight < closes else None


def day_stretches(now: datetime, window: Window) -> Iterator[tuple[int, date, datetime, datetime]]:
    """The window's openings from `now` on, cut at local midnight: (turn, local calendar
    day, open, close), UTC; the one in progress starts at `now`."""
    z = zone(window.timezone)
    for turn, (day, opens, closes) in enumerate(intervals(now, window)):
        cut = _midnight_cut(day, opens, closes, z)
        cuts = [(day, opens, closes)] if cut is None else [(day, opens, cut), (day + timedelta(days=1), cut, closes)]
        for charged, lo, hi in cuts:
            if hi > now:
                yield turn, charged, max(lo, now), hi


def plan_days(now: datetime, window: Window, limits: Limits, *, total: int, first_day: date | None,
              sent_today: int, sent_this_week: int, booked: dict[date, int] | None = None,
              until: datetime | None = None, max_days: int = 200_000) -> list[DaySlots]:
    """The stretches of the window from `now` on (of the openings opening before `until`,
    when given), each with the sends it may take under the caps and the ramp, until
    `total` sends fit (the re-clamp's schedule). Caps count by local calendar day in the
    campaign's zone, like the worker's counters; `booked` sends already planned on a
    local day take their share first."""
    out: list[DaySlots] = []
    placed = 0
    booked = (booked or {}) if limits.capped else {}
    today = local_day(now, window.timezone)
    week_booked: dict[date, int] = {}
    for day, n in booked.items():
        week_booked[week_of(day)] = week_booked.get(week_of(day), 0) + n
    # what each local day and week has taken so far: sent, booked, then planned here
    day_used: dict[date, int] = {}
    week_used: dict[date, int] = {}
    for turn, day, opens, closes in day_stretches(now, window):
        if placed >= total or len(out) >= max_days or (until is not None and opens >= until):
            break
        week = week_of(day)
        on_day = day_used.setdefault(day, (sent_today if day == today else 0) + booked.get(day, 0))
        on_week = week_used.setdefault(week, (sent_this_week if week == week_of(today) else 0)
                                       + week_booked.get(week, 0))
        b = budget(limits, today=day, first_day=first_day or today, sent_today=on_day, sent_this_week=on_week)
        if b.remaining == 0:
            continue
        take = total - placed if b.remaining is None else min(b.remaining, total - placed)
        out.append(DaySlots(day, opens, closes, b.remaining, turn))
        placed += take
        day_used[day] += take
        week_used[week] += take
    return out


# The re-clamp places the sends of the campaign zone's days until the window's next
# PLACED_OPENINGS openings close (the one in progress counts), in each lead's own zone's
# window, and parks the leads beyond them; the sweeper places each later opening
# as it comes within reach. A long list at a few thousand sends a day is then written a
# day at a time, not all of it at resume.
PLACED_OPENINGS = 2


# Without a cap, a randomized campaign spreads its due leads evenly over what is left of
# the opening; the re-clamp fills only the next PLACED_SLICES quarter hours (UTC-aligned)
# to that density and parks the rest, and the sweeper (every minute) fills each next
# quarter as it comes within reach — a million leads are written a few thousand at a
# time, not all at resume.
SLICE = timedelta(minutes=15)
PLACED_SLICES = 2
SPREAD_AT_ONCE = 10_000  # fewer waiting leads than this are placed at once (a second's write)


def spread_slices(first: DaySlots, now: datetime, *, waiting: int,
                  planned: Callable[[datetime, datetime], int]) -> list[DaySlots] | None:
    """The next PLACED_SLICES quarter hours of an uncapped opening `first`, each with the
    sends that make the rest of the opening even — the `waiting` leads and those
    `planned(lo, hi)` already there, spread over what is left — less those planned in it;
    once fewer than SPREAD_AT_ONCE would be left waiting, the rest of the opening after
    them takes all of those (the last quarter does, when it ends the opening). None when
    nothing is planned yet and few wait: then they all go in the rest of the opening."""
    start, closes = max(first.opens, now), first.closes
    ahead = planned(start, closes)
    if waiting < SPREAD_AT_ONCE and not ahead:
        return None
    per_second = (waiting + ahead) / (closes - start).total_seconds()
    step = SLICE.total_seconds()
    quarter = datetime.fromtimestamp(start.timestamp() // step * step, UTC)  # slices aligned in UTC
    out, left = [], waiting
    for i in range(PLACED_SLICES):
        lo, hi = max(start, quarter + i * SLICE), min(quarter + (i + 1) * SLICE, closes)
        if lo >= closes:
            break
        share = min(left, max(0, math.ceil(per_second * (hi - lo).total_seconds()) - planned(lo, hi)))
        out.append(replace(first, opens=lo, closes=hi, capacity=share))
        left -= share
    if out[-1].closes >= closes:
        out[-1] = replace(out[-1], capacity=out[-1].capacity + left)
    elif left < SPREAD_AT_ONCE:
        out.append(replace(first, opens=out[-1].closes, closes=closes, capacity=left))
    return out


def placement_horizon(now: datetime, window: Window) -> datetime:
    """Until when the re-clamp places sends: the close of the window's PLACED_OPENINGS-th
    opening from `now`, in the campaign's zone."""
    openings = list(islice(intervals(now, window), PLACED_OPENINGS))
    return openings[-1][2]


def charged_days(now: datetime, window: Window, limits: Limits, *, until: datetime, first_day: date | None,
                 sent_today: int, sent_this_week: int, booked: dict[date, int] | None = None) -> list[DaySlots]:
    """The calendar days of the campaign's zone from `now` on (those beginning before
    `until`), each with the sends the caps and the ramp let it take (None: any number);
    days with nothing left are left out. The worker charges a send to the campaign-zone
    day it goes on, whichever zone's window it goes in, so the re-clamp shares each of
    these days among the leads' zones (share_days)."""
    whole_days = Window(timezone=window.timezone)
    if limits.capped:
        return plan_days(now, whole_days, limits, total=sys.maxsize, first_day=first_day, sent_today=sent_today,
                         sent_this_week=sent_this_week, booked=booked, until=until)
    return [DaySlots(day, opens, closes, None, turn)
            for turn, day, opens, closes in takewhile(lambda s: s[2] < until, day_stretches(now, whole_days))]


def zone_openings(slots: list[DaySlots], now: datetime, window: Window,
                  tz: str | None) -> list[tuple[datetime, datetime] | None]:
    """Where each slot's sends go for a lead in zone `tz` (None: the campaign's): the
    earliest part of that zone's window inside the slot; for a lead in its own zone,
    inside the slot's calendar day in the campaign's zone, the day the worker charges
    its sends to (a slice of the campaign's opening paces only the campaign's zone).
    None where that zone's window has no instant there: the slot is not its to use."""
    if not slots:
        return []
    z = zone(window.timezone)
    ends = {s.day: _instant(s.day + timedelta(days=1), 0, z) for s in slots}
    last = max(ends.values())
    openings = [(opens, closes) for _, opens, closes in takewhile(lambda o: o[1] < last, intervals(now, window, tz))]
    out: list[tuple[datetime, datetime] | None] = []
    for s in slots:
        lo, hi = (s.opens, s.closes) if tz is None else (max(now, _instant(s.day, 0, z)), ends[s.day])
        out.append(next(((max(lo, opens), min(hi, closes)) for opens, closes in openings
                         if max(lo, opens) < min(hi, closes)), None))
    return out


def share_days(slots: list[DaySlots], waiting: dict[str, int],
               stretches: dict[str, list[tuple[datetime, datetime] | None]]) -> dict[str, list[int]]:
    """How many of each zone's `waiting` leads each slot takes: slots fill in order, each
    shared among the zones with a stretch in it (zone_openings) in proportion to the leads
    they still have waiting (largest remainder; ties go to the zone named first), never
    beyond its capacity (None: any number). Leads that fit in no slot are left over."""
    left = dict(waiting)
    out = {z: [0] * len(slots) for z in waiting}
    for i, slot in enumerate(slots):
        able = [z for z in waiting if left[z] and stretches[z][i] is not None]
        want = sum(left[z] for z in able)
        if not want:
            continue
        take = want if slot.capacity is None else min(slot.capacity, want)
        shares = {z: take * left[z] // want for z in able}
        by_remainder = sorted(able, key=lambda z: -(take * left[z] % want))  # stable: ties keep the order
        for z in by_remainder[:take - sum(shares.values())]:
            shares[z] += 1
        for z in able:
            out[z][i] = shares[z]
            left[z] -= shares[z]
    return out


def earliest_send(due: list[tuple[datetime, str | None]], now: datetime,
                  window: Window) -> tuple[datetime, str | None] | None:
    """When the first of these leads (next action time, own time zone or None) can be
    sent, and why not now: None (now), "step_delay" (its delay runs) or "window" (its
    window is closed). Each lead is judged in its own zone's window."""
    best: tuple[datetime, str | None] | None = None
    for due_at, tz in due:
        tz = lead_zone(tz)
        at, reason = (now, None) if due_at <= now else (due_at, "step_delay")
        slot = next_slot(at, window, tz)
        if slot > at:
            at, reason = slot, "window"
        if reason == "step_delay" and not window.always_open and (
                not is_open(now, window, tz) or window_at(at, window, tz)[0] == at):
            reason = "window"  # the send waits for the window to open
        if best is None or at < best[0]:
            best = (at, reason)
    return best


@lru_cache(maxsize=4096)
def lead_zone(name: str | None) -> str | None:
    """A lead's own time zone when it names a known one; None means the campaign's."""
    if not name:
        return None
    try:
        ZoneInfo(name)
    except Exception:  # noqa: BLE001 - unknown or malformed: the campaign's zone applies
        return None
    return name
