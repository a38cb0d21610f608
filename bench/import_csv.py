"""Streamed CSV lead import: rows per second and peak memory.

Serves the real app with uvicorn on a local port (in this process) and streams a CSV that
a generator writes on the fly (chunked HTTP body, never held whole) to
POST /api/v1/campaigns/{id}/leads/import. About 0.1% of the rows are invalid and 0.1%
are duplicates, so those paths are measured too. The peak RSS covers client + server;
a bounded import keeps it flat however many rows are sent.

    python bench/import_csv.py                     # 1,000,000 rows on SQLite (a temp file)
    python bench/import_csv.py --rows 200000 --pg postgresql://postgres@127.0.0.1:5432/bench
    python bench/import_csv.py --rows 200000 --reject-every 1   # every row rejected (and stored)
"""

from __future__ import annotations

import argparse
import resource
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from drumbeat.app import create_app  # noqa: E402
from drumbeat.services import campaigns as campaign_service  # noqa: E402
from drumbeat.services.context import Context, Principal  # noqa: E402
from drumbeat.services.workspaces import init_workspace  # noqa: E402
from drumbeat.store.db import make_engine, migrate  # noqa: E402
from drumbeat.store.secrets import SecretBox  # noqa: E402

ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def csv_body(rows: int, reject_every: int = 1000, chunk_rows: int = 2000):
    """Yields the CSV in chunks as the HTTP client asks for them."""
    yield b"phone,email,first_name,last_name,timezone,company\n"
    for lo in range(0, rows, chunk_rows):
        lines = []
        for i in range(lo, min(lo + chunk_rows, rows)):
            if i % reject_every == reject_every - 1:
                lines.append(f"12345,bad{i}@example.com,Bad,Row,Nowhere/Zone,Acme\n")  # rejected
            elif i % 1000 == 998:
                lines.append(f"+49151{i - 1:08d},dup{i}@example.com,Dup,Row,UTC,Acme\n")  # duplicate phone
            else:
                lines.append(f"+49151{i:08d},lead{i}@example.com,First{i},Last{i},Europe/Berlin,\"Acme, Inc.\"\n")
        yield "".join(lines).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(url: str, rows: int, reject_every: int = 1000) -> None:
    engine = make_engine(url)
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(Fernet.generate_key().decode()))
    boot = init_workspace(ctx, "Bench", "owner@bench.test")
    principal = Principal(boot["user_id"], boot["workspace_id"], "owner")
    campaign_id = campaign_service.create_campaign(ctx, principal, {
        "name": "bench", "integration_ids": None,
        "steps": [{"channel": "whatsapp", "template": {"name": "t", "language": "en", "body": "Hi"},
                   "delay_seconds": 0},
                  {"channel": "email", "template": {"subject": "Hi", "body": "Hi"}, "delay_seconds": 0}],
        "schedule": {"timezone": "UTC", "days": ALL_DAYS, "window_start": "00:00", "window_end": "24:00",
                     "randomize_within_window": False, "start_at": None},
        "limits": {"daily_cap": None, "weekly_cap": None, "rate_per_second": None, "ramp": None},
        "failure_policy": {"window": 50, "threshold": 0.5, "min_samples": 20}})["id"]

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    before = peak_rss_mb()
    started = time.perf_counter()
    response = httpx.post(f"http://127.0.0.1:{port}/api/v1/campaigns/{campaign_id}/leads/import",
                          content=csv_body(rows, reject_every), timeout=None,
                          headers={"Authorization": f"Bearer {boot['token']}", "Content-Type": "text/csv"})
    seconds = time.perf_counter() - started
    server.should_exit = True
    thread.join()
    engine.dispose()
    body = response.json()
    if response.status_code != 200:
        raise SystemExit(f"import failed: {response.status_code} {body}")
    print(f"database       {url.split(':', 1)[0].split('+')[0]}")
    print(f"rows           {rows:,}")
    print(f"accepted       {body['accepted']:,}   duplicates {body['duplicates']:,}   "
          f"rejected {body['rejected_total']:,} ({len(body['rejected'])} listed, all kept for rejected.csv)")
    print(f"seconds        {seconds:,.1f}")
    print(f"rows/s         {rows / seconds:,.0f}")
    print(f"peak RSS       {peak_rss_mb():,.0f} MiB (before the import: {before:,.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL database (postgresql://...) instead of SQLite")
    parser.add_argument("--reject-every", type=int, default=1000, metavar="N",
                        help="every Nth row is invalid (1: all of them)")
    args = parser.parse_args()
    if args.pg:
        run("postgresql+psycopg://" + args.pg.split("://", 1)[1], args.rows, args.reject_every)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{tmp}/bench.db", args.rows, args.reject_every)


if __name__ == "__main__":
    main()
