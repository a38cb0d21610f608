"""Leads export: GET /api/v1/campaigns/{id}/leads.csv of a campaign with N leads, rows per
second, and memory that stays flat however many leads pass.

Fills a campaign with N leads (every state; one lead in ten with an attempt, one in a
hundred with a kept reply, opted-out leads with their suppression entry, and the leads of
a second campaign interleaved by id), serves the real app with uvicorn on a local port (in
this process) and reads the export back as a stream, checking every lead came back once,
in id order. The resident memory of the process (client + server) is sampled every 10%
of the rows: a streamed export keeps it flat. The load average is printed before and
after, since the machine may be shared.

    python bench/leads_export.py                     # 1,000,000 leads on SQLite (a temp file)
    python bench/leads_export.py --leads 20000       # a quick check that it works
    python bench/leads_export.py --pg postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from bench.import_csv import free_port, peak_rss_mb  # noqa: E402
from drumbeat.app import create_app  # noqa: E402
from drumbeat.services.context import Context, Principal  # noqa: E402
from drumbeat.services.lead_export import HEADER  # noqa: E402
from drumbeat.services.workspaces import init_workspace  # noqa: E402
from drumbeat.store.db import make_engine, migrate  # noqa: E402
from drumbeat.store.secrets import SecretBox  # noqa: E402
from drumbeat.store.tables import attempts, leads, replies, suppressions  # noqa: E402
from tests.factory import new_campaign  # noqa: E402

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STATES = ("not_contacted", "in_progress", "completed", "replied", "failed", "opted_out", "in_doubt", "canceled")
BATCH = 10_000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def fill(ctx: Context, workspace_id: str, campaign_id: str, other_id: str, n: int) -> None:
    """n leads in the campaign, and one lead of another campaign after every 1,000 (ids interleave)."""
    done = 0
    while done < n:
        size = min(BATCH, n - done)
        rows = []
        for i in range(done, done + size):
            rows.append({"campaign_id": campaign_id, "phone": f"+1555{i:07d}", "email": f"lead{i}@example.com",
                         "first_name": "=cmd" if i % 997 == 0 else f"Lead{i}", "last_name": "Export",
                         "attributes": {}, "state": STATES[i % len(STATES)], "current_step": i % 3,
                         "next_action_at": NOW, "created_at": NOW, "updated_at": NOW,
                         "last_error": "whatsapp:131026" if STATES[i % len(STATES)] == "failed" else None})
            if i % 1000 == 999:
                rows.append({**rows[-1], "campaign_id": other_id, "phone": f"+1666{i:07d}", "email": None,
                             "state": "not_contacted", "last_error": None})
        with ctx.db.begin() as conn:
            inserted = conn.execute(insert(leads).returning(leads.c.id, leads.c.state, leads.c.phone,
                                                            leads.c.campaign_id, sort_by_parameter_order=True), rows)
            ids = [(i, state, phone) for i, state, phone, campaign in inserted if campaign == campaign_id]
            tried = [(lead_id, state) for lead_id, state, _ in ids if lead_id % 10 == 0]
            if tried:
                conn.execute(insert(attempts), [{
                    "lead_id": lead_id, "campaign_id": campaign_id, "step": 0, "channel": "whatsapp",
                    "integration_id": "k1", "run": 1, "idempotency_key": f"{lead_id}:0:1",
                    "status": "failed" if state == "failed" else "read", "created_at": NOW, "updated_at": NOW}
                    for lead_id, state in tried])
            answered = [lead_id for lead_id, state, _ in ids if state == "replied" and lead_id % 100 < 8]
            if answered:
                conn.execute(insert(replies), [{
                    "workspace_id": workspace_id, "campaign_id": campaign_id, "lead_id": lead_id, "channel": "whatsapp",
                    "kind": "reply", "text": "yes please", "at": NOW + timedelta(minutes=5), "handled": False}
                    for lead_id in answered])
            stopped = [phone for _, state, phone in ids if state == "opted_out"]
            conn.execute(insert(suppressions), [{"workspace_id": workspace_id, "phone": phone, "created_at": NOW,
                                                 "reason": "stop_keyword"} for phone in stopped])
        done += size


def run(url: str, n: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(Fernet.generate_key().decode()))
    boot = init_workspace(ctx, "Bench", "owner@bench.test")
    owner = Principal(boot["user_id"], boot["workspace_id"], "owner")
    campaign_id, other_id = new_campaign(ctx, owner, name="Export"), new_campaign(ctx, owner, name="Other")
    started = time.perf_counter()
    fill(ctx, boot["workspace_id"], campaign_id, other_id, n)
    fill_seconds = time.perf_counter() - started

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    load_before = os.getloadavg()
    rss_before, peak_before = rss_mb(), peak_rss_mb()
    samples: list[tuple[int, float, float]] = []  # (rows, RSS MiB, rows/s of that stretch)
    exported = out_of_order = 0
    last_id, states = 0, {s: 0 for s in STATES}
    stretch = max(n // 10, 1)
    started = mark = time.perf_counter()
    with httpx.stream("GET", f"http://127.0.0.1:{port}/api/v1/campaigns/{campaign_id}/leads.csv",
                      headers={"Authorization": f"Bearer {boot['token']}"}, timeout=None) as stream:
        if stream.status_code != 200:
            raise SystemExit(f"export failed: {stream.status_code} {stream.read()[:500]!r}")
        rows = csv.reader(stream.iter_lines())
        if tuple(next(rows)) != HEADER:
            raise SystemExit("the header is not the contract's")
        for row in rows:
            lead_id = int(row[0])
            out_of_order += lead_id <= last_id
            last_id = lead_id
            states[row[6]] += 1
            exported += 1
            if exported % stretch == 0:
                now = time.perf_counter()
                samples.append((exported, rss_mb(), stretch / (now - mark)))
                mark = now
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    server.should_exit = True
    thread.join()
    engine.dispose()

    print(f"database       {url.split(':', 1)[0].split('+')[0]}")
    print(f"leads          {n:,} (filled in {fill_seconds:,.0f} s)")
    print(f"export         {seconds:,.1f} s   {exported / seconds:,.0f} rows/s   rows {exported:,}   "
          f"out of id order {out_of_order}")
    print("RSS while streaming (rows: MiB, rows/s of the last tenth):")
    print("  " + "  ".join(f"{r // 1000:,}k: {m:,.0f} MiB @ {rate:,.0f}/s" for r, m, rate in samples))
    print(f"RSS            {rss_before:,.0f} MiB before the export, {max(m for _, m, _ in samples):,.0f} MiB at most "
          f"while streaming; process peak {peak_before:,.0f} MiB before, {peak_rss_mb():,.0f} MiB after")
    print(f"load average   before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}   "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}   ({os.cpu_count()} CPUs)")
    if exported != n or out_of_order or any(v != n // len(STATES) + (i < n % len(STATES))
                                            for i, v in enumerate(states.values())):
        raise SystemExit("the export lost, repeated or reordered leads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL database (postgresql://...) instead of SQLite")
    args = parser.parse_args()
    if args.pg:
        run("postgresql+psycopg://" + args.pg.split("://", 1)[1], args.leads)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.leads)


if __name__ == "__main__":
    main()
