"""Latency: how fast a pause stops sending, and how fast the API reads a big campaign.

1. Pause latency (PostgreSQL): one `drumbeat worker` process sends a campaign through the
   sandbox (20 ms per call, --concurrency in flight); the benchmark pauses it through the
   service the API calls, --cycles times (resuming in between). For each pause: the time
   from the request to its commit, the time from the request to the last attempt started
   before it, and how many attempts started after the commit (must be 0).
2. API latency at --leads leads (PostgreSQL): GET /api/v1/campaigns/{id} and
   GET /api/v1/campaigns, in-process (no network), p50 and p99 over --runs requests.

    python bench/latency.py [--leads 1000000] [--runs 50] [--cycles 10] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.dashboard import big_campaign, pct  # noqa: E402
from bench.engine import fresh_database  # noqa: E402
from drumbeat.app import create_app  # noqa: E402
from drumbeat.services import campaigns as svc  # noqa: E402
from drumbeat.services.context import Context  # noqa: E402
from drumbeat.store.db import make_engine, migrate  # noqa: E402
from drumbeat.store.secrets import SecretBox  # noqa: E402
from drumbeat.store.tables import attempts  # noqa: E402
from tests.factory import add_leads, new_campaign, sandbox_key, workspace  # noqa: E402


def pause_latency(url: str, cycles: int, concurrency: int) -> list[dict]:
    key = Fernet.generate_key().decode()
    engine = make_engine(url)
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(key))
    p = workspace(ctx, f"Bench{uuid.uuid4().hex[:6]}")
    sandbox_key(ctx, p, "whatsapp", latency_ms=20)
    cid = new_campaign(ctx, p, name="pause")
    add_leads(ctx, cid, 200_000)
    svc.start(ctx, p, cid)
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": url, "DRUMBEAT_SECRET_KEY": key, "DRUMBEAT_TICK_SECONDS": "0.05"}
    worker = subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "worker", "--concurrency", str(concurrency)],
                              env=env, stderr=subprocess.DEVNULL)
    out = []
    try:
        for _ in range(cycles):
            time.sleep(1.5)  # sending at full speed
            requested = datetime.now(UTC)
            t0 = time.perf_counter()
            svc.pause(ctx, p, cid)
            commit_ms = (time.perf_counter() - t0) * 1000
            committed = datetime.now(UTC)
            time.sleep(0.5)  # let the calls in flight end
            with engine.connect() as conn:
                last = conn.execute(select(func.max(attempts.c.created_at)).where(
                    attempts.c.campaign_id == cid, attempts.c.created_at <= committed)).scalar()
                after = conn.execute(select(func.count()).select_from(attempts).where(
                    attempts.c.campaign_id == cid, attempts.c.created_at > committed)).scalar()
            out.append({"commit_ms": commit_ms, "last_start_ms": (last - requested).total_seconds() * 1000,
                        "after": after})
            svc.resume(ctx, p, cid)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        engine.dispose()
    return out


def api_latency(url: str, leads: int, runs: int) -> dict[str, list[float]]:
    ctx, boot, _, cid = big_campaign(url, leads, campaigns=21)  # a list page with neighbours
    headers = {"Authorization": f"Bearer {boot['token']}"}
    results: dict[str, list[float]] = {}
    with TestClient(create_app(ctx)) as client:
        for name, path in (("GET /api/v1/campaigns/{id}", f"/api/v1/campaigns/{cid}"),
                           ("GET /api/v1/campaigns", "/api/v1/campaigns")):
            for _ in range(3):
                assert client.get(path, headers=headers).status_code == 200
            values = []
            for _ in range(runs):
                t0 = time.perf_counter()
                response = client.get(path, headers=headers)
                values.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
            results[name] = values
    ctx.db.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    with fresh_database("postgresql", args.pg) as url:
        pauses = pause_latency(url, args.cycles, args.concurrency)
    commit = [r["commit_ms"] for r in pauses]
    last = [r["last_start_ms"] for r in pauses]
    print(f"Pause latency (PostgreSQL, 1 worker, {args.concurrency} in flight, sandbox 20 ms, {args.cycles} pauses):")
    print(f"  request -> pause committed           p50 {statistics.median(commit):8.1f} ms   max {max(commit):8.1f} ms")
    # Negative: the last attempt started before the pause was even asked for (between two claims).
    print(f"  request -> last attempt started      p50 {statistics.median(last):8.1f} ms   max {max(last):8.1f} ms"
          "   (negative: before the request)")
    print(f"  attempts started after the commit    {sum(r['after'] for r in pauses)} (in all pauses)")

    with fresh_database("postgresql", args.pg) as url:
        api = api_latency(url, args.leads, args.runs)
    print(f"API latency (PostgreSQL, a campaign of {args.leads:,} leads, {args.runs} requests each, in-process):")
    for name, values in api.items():
        print(f"  {name:36s} p50 {statistics.median(values):8.1f} ms   p99 {pct(values, 0.99):8.1f} ms")


if __name__ == "__main__":
    main()
