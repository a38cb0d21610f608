"""Re-clamp on resume (DESIGN.md §5): seconds to move every waiting lead into its slot.

For each size, a fresh PostgreSQL database gets a campaign (Mon-Fri 09:00-17:00
Europe/Berlin, daily cap 10,000, randomized; one lead in twenty in America/New_York)
whose leads are inserted by one INSERT ... SELECT. The campaign starts (which plans every
lead: a re-clamp of all of them), is paused, the clock jumps two days and it resumes (the
leads whose slots passed move), then pauses again for 400 days and resumes (every lead
moves). Printed: each re-clamp statement alone and how many leads it moved, the whole
last resume call, and checks: no local day got more than the cap, no lead left due.

    python bench/reclamp.py                                   # 100,000 and 1,000,000 leads
    python bench/reclamp.py --leads 200000 --pg postgresql://postgres@127.0.0.1:5432/test
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

CAP = 10_000
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


def run(url: str, n: int, seconds: list[float]) -> dict:
    engine = make_engine(url)
    migrate(engine)
    clock = Clock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))  # a Monday, inside the window
    ctx = Context(db=engine, box=SecretBox(Fernet.generate_key().decode()), clock=clock)
    p = workspace(ctx, f"Bench{uuid.uuid4().hex[:6]}")
    sandbox_key(ctx, p)
    cid = new_campaign(ctx, p, name="reclamp", schedule=SCHEDULE,
                       limits={"daily_cap": CAP, "weekly_cap": None, "rate_per_second": None, "ramp": None})
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO leads (campaign_id, phone, attributes, state, current_step, next_action_at, retries,
                               attempt_no, timezone, created_at, updated_at)
            SELECT :cid, '+1555' || lpad(i::text, 7, '0'), '{}'::jsonb, 'not_contacted', 0, :now, 0, 0,
                   CASE WHEN i % 20 = 0 THEN 'America/New_York' END, :now, :now
              FROM generate_series(1, :n) AS i"""), {"cid": cid, "now": clock.now, "n": n})
        conn.execute(text("ANALYZE leads"))
    svc.start(ctx, p, cid)  # every lead is due: the start plans them all
    start_s = seconds[-1]
    svc.pause(ctx, p, cid)
    clock.now += timedelta(days=2, hours=1)  # Wednesday 11:00: Tuesday's and part of Wednesday's slots passed
    svc.resume(ctx, p, cid)
    short_s, short_n = seconds[-1], moved(engine, cid)
    svc.pause(ctx, p, cid)
    clock.now += timedelta(days=400)  # a long pause: every lead's slot has passed
    began = time.perf_counter()
    svc.resume(ctx, p, cid)
    resume_s = time.perf_counter() - began
    long_s, long_n = seconds[-1], moved(engine, cid)
    with engine.connect() as conn:
        worst = conn.execute(text("""
            SELECT max(n) FROM (SELECT count(*) AS n FROM leads WHERE campaign_id = :cid AND timezone IS NULL
                                 GROUP BY (next_action_at AT TIME ZONE 'Europe/Berlin')::date) AS d"""),
                             {"cid": cid}).scalar()
        early = conn.execute(text("SELECT count(*) FROM leads WHERE campaign_id = :cid AND next_action_at < :now"),
                             {"cid": cid, "now": clock.now}).scalar()
    engine.dispose()
    return {"start": start_s, "short": short_s, "short_n": short_n, "long": long_s, "long_n": long_n,
            "resume": resume_s, "worst_day": worst, "in_past": early}


def moved(engine, cid: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT details FROM timeline WHERE campaign_id = :cid AND action = 'reclamp'"
                                 " ORDER BY id DESC LIMIT 1"), {"cid": cid}).scalar()["leads"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="admin URL; a fresh database is created per run")
    args = parser.parse_args()
    seconds = timed_reclamp()
    print(f"{'leads':>10}  {'start: plan all':>16}  {'resume after 2 days':>22}  {'resume after 400 days':>24}"
          f"  {'whole resume':>12}  busiest day (cap {CAP:,})  left in the past")
    for n in args.leads:
        name = f"drumbeat_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = "postgresql+psycopg://" + args.pg.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
            r = run(url, n, seconds)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"{n:>10,}  {r['start']:>14.2f} s  {r['short']:>6.2f} s ({r['short_n']:>9,} leads)"
              f"  {r['long']:>6.2f} s ({r['long_n']:>11,} leads)  {r['resume']:>10.2f} s"
              f"  {r['worst_day']:>22,}  {r['in_past']:>16,}", flush=True)


if __name__ == "__main__":
    main()
