"""Statistics: server time of GET /api/v1/campaigns/{id}/stats for a campaign with
1,000,000 leads (PostgreSQL).

Builds one A/B campaign on a fresh PostgreSQL database: two steps, each with two variants
(weights 1:1), N leads in a realistic mix of states, an attempt of step 0 for every
contacted lead and of step 1 for the finished ones, started over the last 30 days (every
minute of them: thousands of quarter-hour counter rows), statuses sent/delivered/read and
counted failures; then 2 % of the leads turn `replied` (an UPDATE, which the statistics
trigger credits to their last attempt). The counters are folded once, as the sweeper does,
ANALYZEd, and in-process requests (no network) are timed: hour buckets over 7 days, hour
buckets over 30 days, day buckets over 30 days. Prints p50/p99 and the load average.

    python bench/stats.py [--leads 1000000] [--runs 30] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from bench.dashboard import pct  # noqa: E402
from bench.engine import fresh_database  # noqa: E402
from drumbeat.app import create_app  # noqa: E402
from drumbeat.services import campaigns as svc  # noqa: E402
from drumbeat.services.context import Context, Principal  # noqa: E402
from drumbeat.services.workspaces import init_workspace  # noqa: E402
from drumbeat.store import stats as stats_store  # noqa: E402
from drumbeat.store.db import make_engine, migrate  # noqa: E402
from drumbeat.store.secrets import SecretBox  # noqa: E402
from drumbeat.store.tables import step_stats  # noqa: E402
from tests.factory import campaign_data, sandbox_key  # noqa: E402

# i % 100 -> state: 45 not_contacted, 10 in_progress, 37 completed, 5 failed, 2 opted_out, 1 in_doubt
# (2 of the completed turn replied afterwards).
LEADS_SQL = """
INSERT INTO leads (campaign_id, phone, email, first_name, attributes, state, current_step, next_action_at,
                   retries, attempt_no, created_at, updated_at)
SELECT :cid, '+1555' || lpad(i::text, 7, '0'), 'lead' || i || '@example.com', 'Lead' || i, '{}'::jsonb,
       CASE WHEN i % 100 < 45 THEN 'not_contacted' WHEN i % 100 < 55 THEN 'in_progress'
            WHEN i % 100 < 92 THEN 'completed' WHEN i % 100 < 97 THEN 'failed'
            WHEN i % 100 < 99 THEN 'opted_out' ELSE 'in_doubt' END,
       CASE WHEN i % 100 BETWEEN 45 AND 54 THEN 1 ELSE 0 END, now(), 0, 0, now(), now()
FROM generate_series(1, :n) AS i
"""

ATTEMPTS_SQL = """
INSERT INTO attempts (lead_id, campaign_id, step, variant, channel, integration_id, run, idempotency_key, status,
                      provider_message_id, error_code, error_class, counted_failure, created_at, updated_at)
SELECT l.id, l.campaign_id, s.step, (l.id / 7) % 2, 'sms', :key, 1, l.id || ':' || s.step || ':' || '1',
       CASE WHEN l.state = 'failed' AND s.step = 0 THEN 'failed' WHEN l.state = 'in_doubt' THEN 'in_doubt'
            ELSE (ARRAY['sent', 'delivered', 'read'])[1 + l.id % 3] END,
       'sbx-' || l.id || '-' || s.step,
       CASE WHEN l.state = 'failed' AND s.step = 0 THEN 'sandbox:lead' END,
       CASE WHEN l.state = 'failed' AND s.step = 0 THEN 'lead' END,
       l.state = 'failed' AND s.step = 0,
       :now - (l.id % 43200) * interval '1 minute' + s.step * interval '1 day', :now
FROM leads l CROSS JOIN (VALUES (0), (1)) AS s(step)
WHERE l.campaign_id = :cid AND l.state NOT IN ('not_contacted', 'opted_out')
  AND (s.step = 0 OR l.state = 'completed')
"""

REPLIES_SQL = """
UPDATE leads SET state = 'replied', updated_at = :now - (id % 40000) * interval '1 minute'
 WHERE campaign_id = :cid AND state = 'completed' AND id % 100 IN (90, 91)
"""


def timed(client: TestClient, path: str, runs: int) -> list[float]:
    for _ in range(2):
        assert client.get(path).status_code == 200, path
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path)
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    with fresh_database("postgresql", args.pg) as url:
        t0 = time.perf_counter()
        engine = make_engine(url)
        migrate(engine)
        ctx = Context(db=engine, box=SecretBox(Fernet.generate_key()))
        boot = init_workspace(ctx, "Bench", "owner@bench.test")
        owner = Principal(boot["user_id"], boot["workspace_id"], "owner")
        key = sandbox_key(ctx, owner, channel="sms")
        ab = [{"template": {"body": "A {{first_name}}"}, "weight": 1}, {"template": {"body": "B"}, "weight": 1}]
        steps = [{"channel": "sms", "template": ab[0]["template"], "variants": ab, "delay_seconds": 0},
                 {"channel": "sms", "template": ab[0]["template"], "variants": ab, "delay_seconds": 86400}]
        cid = svc.create_campaign(ctx, owner, campaign_data(name="A million leads", steps=steps))["id"]
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(text(LEADS_SQL), {"cid": cid, "n": args.leads})
            conn.execute(text(ATTEMPTS_SQL), {"cid": cid, "key": key, "now": now})
        with engine.begin() as conn:
            conn.execute(text(REPLIES_SQL), {"cid": cid, "now": now})
        svc.start(ctx, owner, cid)
        with engine.begin() as conn:
            stats_store.fold(conn)
            rows = conn.execute(select(func.count()).select_from(step_stats)
                                .where(step_stats.c.campaign_id == cid)).scalar_one()
            attempts_n = conn.execute(text("SELECT count(*) FROM attempts")).scalar_one()
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        print(f"built {args.leads:,} leads, {attempts_n:,} attempts ({rows:,} counter rows after folding)"
              f" in {time.perf_counter() - t0:.1f} s")

        def since(days: int) -> str:
            return (now - timedelta(days=days)).isoformat().replace("+00:00", "Z")

        base = f"/api/v1/campaigns/{cid}/stats"
        with TestClient(create_app(ctx), headers={"Authorization": f"Bearer {boot['token']}"}) as client:
            results = {
                "hour, last 7 days (168 buckets)": timed(client, f"{base}?interval=hour&from={since(7)}", args.runs),
                "hour, last 30 days (720 buckets)": timed(client, f"{base}?interval=hour&from={since(30)}",
                                                          args.runs),
                "day, last 30 days": timed(client, f"{base}?interval=day&from={since(30)}", args.runs),
                "day, whole campaign (default)": timed(client, base, args.runs),
            }
        load = os.getloadavg()
        print(f"PostgreSQL, one campaign of {args.leads:,} leads, {args.runs} requests each (after 2 warm-ups), "
              f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}:")
        for name, values in results.items():
            print(f"  {name:36s} p50 {statistics.median(values):7.1f} ms   p99 {pct(values, 0.99):7.1f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
