"""Re-clamp on resume (DESIGN.md §5): seconds to move every waiting lead into its slot.

For each size, a fresh PostgreSQL database gets a campaign (Mon-Fri 09:00-17:00
Europe/Berlin, daily cap 10,000, randomized; one lead in twenty in America/New_York)
whose leads are inserted by one INSERT ... SELECT. A minute later the campaign starts
(which places the sends of the window's next two openings and parks the rest), is
paused, the clock jumps two days and it resumes (the leads whose slots passed move), then
pauses again for 400 days and resumes (every lead is due again). Then the sweeper runs
once a day for five days, placing each new opening's sends from the parked leads.
Printed: each re-clamp statement alone and how many leads it placed, the whole last
resume call, the sweeper's daily placement, and checks: no local day (Berlin's, the day the
worker charges a send to, whichever zone it goes in) got more than the cap, every placed
lead is in the future, the rest are parked.

    python bench/reclamp.py                                   # 100,000 and 1,000,000 leads
    python bench/reclamp.py --leads 200000 --pg postgresql://postgres@127.0.0.1:5432/test
    python bench/reclamp.py --cap 0       # no cap: every lead goes into today's window
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import text  # noqa: E402

from drumbeat.services import campaigns as svc  # noqa: E402
from drumbeat.services.context import Context  # noqa: E402
from drumbeat.store import claims  # noqa: E402
from drumbeat.store.db import make_engine, migrate  # noqa: E402
from drumbeat.store.secrets import SecretBox  # noqa: E402
from tests.factory import new_campaign, sandbox_key, workspace  # noqa: E402

CAP = 10_000  # --cap
SCHEDULE = {"timezone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"], "window_start": "09:00",
            "window_end": "17:00", "randomize_within_window": True, "start_at": None}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def timed_reclamp():
    """Wrap the re-clamp statement to time it alone."""
    original = claims.reclamp_due_leads
    seconds: list[float] = []

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    claims.reclamp_due_leads = wrapper
    return seconds


def run(url: str, n: int, seconds: list[float], cap: int | None) -> dict:
    engine = make_engine(url)
    migrate(engine)
    clock = Clock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))  # a Monday, inside the window
    ctx = Context(db=engine, box=SecretBox(Fernet.generate_key().decode()), clock=clock)
    p = workspace(ctx, f"Bench{uuid.uuid4().hex[:6]}")
    sandbox_key(ctx, p)
    cid = new_campaign(ctx, p, name="reclamp", schedule=SCHEDULE,
                       limits={"daily_cap": cap, "weekly_cap": None, "rate_per_second": None, "ramp": None})
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO leads (campaign_id, phone, attributes, state, current_step, next_action_at, retries,
                               attempt_no, timezone, created_at, updated_at)
            SELECT :cid, '+1555' || lpad(i::text, 7, '0'), '{}'::jsonb, 'not_contacted', 0, :now, 0, 0,
                   CASE WHEN i % 20 = 0 THEN 'America/New_York' END, :now, :now
              FROM generate_series(1, :n) AS i"""), {"cid": cid, "now": clock.now, "n": n})
        conn.execute(text("ANALYZE leads"))
    clock.now += timedelta(minutes=1)  # imported, then started
    start_s = timed(lambda: svc.start(ctx, p, cid))  # every lead is due
    svc.pause(ctx, p, cid)
    clock.now += timedelta(days=2, hours=1)  # Wednesday 11:00: Tuesday's and part of Wednesday's slots passed
    svc.resume(ctx, p, cid)
    short_s, short_n = seconds[-1], moved(engine, cid)
    svc.pause(ctx, p, cid)
    clock.now += timedelta(days=400)  # a long pause: every lead's slot has passed
    resume_s = timed(lambda: svc.resume(ctx, p, cid))
    long_s, long_n = seconds[-1], moved(engine, cid)
    resumed_at = clock.now
    daily = []  # the sweeper, once a day for five days: each new opening's sends are placed
    for _ in range(5):
        clock.now += timedelta(days=1)
        began = time.perf_counter()
        placed = svc.place_parked_leads(ctx)
        daily.append((time.perf_counter() - began, placed))
    with engine.connect() as conn:
        parked_before = conn.execute(text("SELECT parked_before FROM campaigns WHERE id = :cid"),
                                     {"cid": cid}).scalar()
        parked = "COALESCE(CAST(:parked AS timestamptz), '-infinity')"
        worst = conn.execute(text(f"""
            SELECT max(n) FROM (SELECT count(*) AS n FROM leads WHERE campaign_id = :cid
                                   AND next_action_at >= {parked}
                                 GROUP BY (next_action_at AT TIME ZONE 'Europe/Berlin')::date) AS d"""),
                             {"cid": cid, "parked": parked_before}).scalar()
        early = conn.execute(text(f"""SELECT count(*) FROM leads WHERE campaign_id = :cid AND next_action_at < :now
                                         AND next_action_at >= {parked}"""),
                             {"cid": cid, "now": resumed_at, "parked": parked_before}).scalar()
        waiting = conn.execute(text(f"SELECT count(*) FROM leads WHERE campaign_id = :cid"
                                    f" AND next_action_at < {parked}"),
                               {"cid": cid, "parked": parked_before}).scalar()
    engine.dispose()
    return {"start": start_s, "short": short_s, "short_n": short_n, "long": long_s, "long_n": long_n,
            "resume": resume_s, "daily": daily, "worst_day": worst, "in_past": early, "parked": waiting}


def timed(call) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def moved(engine, cid: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT details FROM timeline WHERE campaign_id = :cid AND action = 'reclamp'"
                                 " ORDER BY id DESC LIMIT 1"), {"cid": cid}).scalar()["leads"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--cap", type=int, default=CAP, help="daily cap (0: none)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="admin URL; a fresh database is created per run")
    args = parser.parse_args()
    cap = args.cap or None
    seconds = timed_reclamp()
    print(f"daily cap {cap or 'none'}; seconds, and in brackets the leads placed")
    print(f"{'leads':>10}  {'start':>7}  {'resume after 2 days':>22}  {'resume after 400 days':>22}"
          f"  {'(statement)':>11}  {'sweeper, daily':>22}  busiest day  placed in the past  parked")
    for n in args.leads:
        name = f"drumbeat_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = "postgresql+psycopg://" + args.pg.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
            r = run(url, n, seconds, cap)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        daily_s = max(s for s, _ in r["daily"])
        daily_n = sum(k for _, k in r["daily"])
        print(f"{n:>10,}  {r['start']:>5.2f} s  {r['short']:>5.2f} s ({r['short_n']:>11,})"
              f"  {r['resume']:>5.2f} s ({r['long_n']:>11,})  {r['long']:>9.2f} s"
              f"  {daily_s:>5.2f} s max ({daily_n:>9,})  {r['worst_day']:>11,}  {r['in_past']:>18,}"
              f"  {r['parked']:>6,}", flush=True)


if __name__ == "__main__":
    main()
