"""Dashboard: server time of the campaign detail page for a campaign with 1,000,000 leads.

Builds one campaign on a fresh PostgreSQL database with N leads in a realistic mix of
states (half finished, some in progress, failed, opted out, in doubt) and about one
attempt per contacted lead (sent, delivered, read, counted failures with error codes),
ANALYZEs, then times in-process requests (no network) of the detail page, its live JSON
endpoint and the list page, and prints p50/p99 over the runs.

    python bench/dashboard.py [--leads 1000000] [--runs 20] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.engine import fresh_database  # noqa: E402
from drumbeat.app import create_app  # noqa: E402
from drumbeat.services import campaigns as svc  # noqa: E402
from drumbeat.services.context import Context, Principal  # noqa: E402
from drumbeat.services.workspaces import init_workspace  # noqa: E402
from drumbeat.store.db import make_engine, migrate  # noqa: E402
from drumbeat.store.secrets import SecretBox  # noqa: E402
from tests.factory import new_campaign, sandbox_key  # noqa: E402

# i % 100 -> state: 45 not_contacted, 10 in_progress, 35 completed, 5 failed, 2 opted_out,
# 1 in_doubt, 2 replied.
LEADS_SQL = """
INSERT INTO leads (campaign_id, phone, email, first_name, attributes, state, current_step, next_action_at,
                   retries, attempt_no, created_at, updated_at)
SELECT :cid, '+1555' || lpad(i::text, 7, '0'), 'lead' || i || '@example.com', 'Lead' || i, '{}'::jsonb,
       CASE WHEN i % 100 < 45 THEN 'not_contacted' WHEN i % 100 < 55 THEN 'in_progress'
            WHEN i % 100 < 90 THEN 'completed' WHEN i % 100 < 95 THEN 'failed'
            WHEN i % 100 < 97 THEN 'opted_out' WHEN i % 100 < 98 THEN 'in_doubt' ELSE 'replied' END,
       CASE WHEN i % 100 BETWEEN 45 AND 54 THEN 1 ELSE 0 END, now(), 0, 0, now(), now()
FROM generate_series(1, :n) AS i
"""

ATTEMPTS_SQL = """
INSERT INTO attempts (lead_id, campaign_id, step, channel, integration_id, run, idempotency_key, status,
                      provider_message_id, error_code, error_class, error_message, counted_failure,
                      created_at, updated_at)
SELECT l.id, l.campaign_id, 0, 'whatsapp', :key, 1, l.id || ':0:1',
       CASE l.state WHEN 'failed' THEN 'failed' WHEN 'in_doubt' THEN 'in_doubt'
            ELSE (ARRAY['sent', 'delivered', 'read'])[1 + l.id % 3] END,
       CASE WHEN l.state IN ('failed', 'in_doubt') THEN NULL ELSE 'sbx-' || l.id END,
       CASE WHEN l.state = 'failed' THEN (ARRAY['whatsapp:131026', 'whatsapp:131047', 'sandbox:lead'])[1 + l.id % 3]
            END,
       CASE WHEN l.state = 'failed' THEN 'lead' END,
       CASE WHEN l.state = 'failed' THEN 'the recipient cannot be reached' END,
       l.state = 'failed', now() - (l.id % 5000) * interval '1 minute', now()
FROM leads l WHERE l.campaign_id = :cid AND l.state NOT IN ('not_contacted', 'opted_out')
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(client: TestClient, path: str, runs: int) -> list[float]:
    for _ in range(2):
        assert client.get(path).status_code == 200, path
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path)
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return out


def big_campaign(url: str, leads: int, campaigns: int):
    """A migrated database with one workspace of `campaigns` campaigns, one of them started
    with `leads` leads in a realistic mix and their attempts, ANALYZEd: (ctx, the owner's
    bootstrap answer, the owner, the big campaign's id)."""
    engine = make_engine(url)
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(Fernet.generate_key()))
    boot = init_workspace(ctx, "Bench", "owner@bench.test")
    owner = Principal(boot["user_id"], boot["workspace_id"], "owner")
    key = sandbox_key(ctx, owner)
    cid = new_campaign(ctx, owner, name="A million leads")
    for i in range(campaigns - 1):  # the list page pages through them, 50 at a time
        new_campaign(ctx, owner, name=f"Campaign {i:04d}")
    with engine.begin() as conn:
        conn.execute(text(LEADS_SQL), {"cid": cid, "n": leads})
        conn.execute(text(ATTEMPTS_SQL), {"cid": cid, "key": key})
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    svc.start(ctx, owner, cid)
    return ctx, boot, owner, cid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--campaigns", type=int, default=1000, help="campaigns in the workspace (one is the big one)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    with fresh_database("postgresql", args.pg) as url:
        t0 = time.perf_counter()
        ctx, boot, owner, cid = big_campaign(url, args.leads, args.campaigns)
        engine = ctx.db
        print(f"built {args.leads:,} leads and their attempts in {time.perf_counter() - t0:.1f} s")

        with TestClient(create_app(ctx)) as client:
            login = client.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', login).group(1)
            assert client.post("/login", data={"csrf": csrf, "token": boot["token"]},
                               follow_redirects=False).status_code == 303
            results = {
                "detail page  GET /campaigns/{id}": timed(client, f"/campaigns/{cid}", args.runs),
                "live JSON    GET /campaigns/{id}/live.json": timed(client, f"/campaigns/{cid}/live.json", args.runs),
                "list page    GET /campaigns": timed(client, "/campaigns", args.runs),
                "list sorted by progress": timed(client, "/campaigns?sort=percent", args.runs),
            }
        service = []
        for _ in range(args.runs):
            start = time.perf_counter()
            svc.get_campaign(ctx, owner, cid)
            service.append((time.perf_counter() - start) * 1000)
        results["services.campaigns.get_campaign alone"] = service
        print(f"PostgreSQL, {args.campaigns:,} campaigns, one of {args.leads:,} leads, {args.runs} requests each"
              " (after 2 warm-ups):")
        for name, values in results.items():
            print(f"  {name:45s} p50 {statistics.median(values):8.1f} ms   p99 {pct(values, 0.99):8.1f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
