"""Lead-steps per second through the whole engine with the zero-latency sandbox.

Runs real `drumbeat worker` processes against a prepared campaign and prints a table:
database, leads, workers, lanes, seconds, lead-steps/s, peak RSS of each worker.

    python bench/engine.py                       # 100,000 leads, SQLite and PostgreSQL, 1 worker
    python bench/engine.py --leads 1000000 --workers 1 2 --pg postgresql://postgres@127.0.0.1:5432/test
    python bench/engine.py --only postgresql --lanes 1 2 --concurrency 256
    python bench/engine.py --only postgresql --leads 20000 --waiting 0 100 1000   # beside waiting campaigns
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from drumbeat.services import campaigns as svc  # noqa: E402
from drumbeat.services.context import Context  # noqa: E402
from drumbeat.store.db import make_engine, migrate  # noqa: E402
from drumbeat.store.secrets import SecretBox  # noqa: E402
from drumbeat.store.tables import attempts, campaigns  # noqa: E402
from tests.factory import add_leads, new_campaign, sandbox_key, workspace  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(url: str, leads: int, workers: int, concurrency: int, lanes: int = 1, waiting: int = 0) -> dict:
    key = Fernet.generate_key().decode()
    engine = make_engine(url)
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(key))
    p = workspace(ctx, f"Bench{uuid.uuid4().hex[:6]}")
    sandbox_key(ctx, p, "whatsapp")
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    for i in range(waiting):  # sending beside it, with nothing due before tomorrow
        other = new_campaign(ctx, p, name=f"waiting {i}")
        add_leads(ctx, other, 5, start=leads + 10 * i, now=tomorrow)
        svc.start(ctx, p, other)
    cid = new_campaign(ctx, p, name="bench")
    add_leads(ctx, cid, leads)
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": url, "DRUMBEAT_SECRET_KEY": key, "DRUMBEAT_TICK_SECONDS": "0.05"}
    svc.start(ctx, p, cid)
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "worker", "--concurrency", str(concurrency),
                               "--lanes", str(lanes)],
                              env=env, stderr=subprocess.DEVNULL) for _ in range(workers)]
    rss: dict[int, float] = {}
    def status() -> str:  # one primary-key read: the full campaign view would load the database itself
        with engine.connect() as conn:
            return conn.execute(select(campaigns.c.status).where(campaigns.c.id == cid)).scalar_one()

    try:
        while status() == "sending":
            for proc in procs:
                rss[proc.pid] = peak_rss_mb(proc.pid)
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        for proc in procs:
            rss[proc.pid] = peak_rss_mb(proc.pid)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
    view = svc.get_campaign(ctx, p, cid)
    with engine.connect() as conn:  # the engine's own span: from the first attempt to the last answer recorded
        first, last = conn.execute(select(func.min(attempts.c.created_at), func.max(attempts.c.updated_at))
                                   .where(attempts.c.campaign_id == cid)).one()
    engine.dispose()
    span = (last - first).total_seconds() if first else float("nan")
    return {"status": view["status"], "sent": view["breakdown"]["sent"], "seconds": elapsed,
            "rate": view["breakdown"]["sent"] / elapsed, "span": span, "rss": [round(v) for v in rss.values()]}


@contextmanager
def fresh_database(kind: str, admin_url: str):
    """A new empty SQLite file or PostgreSQL database for one run, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tempfile.mkdtemp()}/bench.db"
        return
    name = f"drumbeat_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield "postgresql+psycopg://" + admin_url.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 256],
                        help="provider calls in flight per worker (with a zero-latency sandbox: the batch size)")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1],
                        help="claim loops per worker process (drumbeat worker --lanes), sharing its in-flight calls")
    parser.add_argument("--waiting", type=int, nargs="+", default=[0],
                        help="sending campaigns beside the measured one with nothing due (their leads wait a day)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="admin URL; a fresh database is created per run")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    kinds = [args.only] if args.only else ["sqlite", "postgresql"]
    # seconds: from the start to the campaign's end, the workers' start-up included; engine:
    # from the first attempt to the last answer recorded (what the engine does once running).
    print(f"{'database':<11}{'leads':>10}{'workers':>9}{'lanes':>7}{'in flight':>10}{'seconds':>9}{'lead-steps/s':>14}"
          f"{'engine s':>10}{'engine /s':>11}{'waiting':>9}  peak RSS MB  status")
    for n, workers, lanes, conc, waiting, kind in itertools.product(args.leads, args.workers, args.lanes,
                                                                    args.concurrency, args.waiting, kinds):
        with fresh_database(kind, args.pg) as url:
            r = run(url, n, workers, conc, lanes, waiting)
        print(f"{kind:<11}{n:>10,}{workers:>9}{lanes:>7}{conc:>10}{r['seconds']:>9.1f}{r['rate']:>14,.0f}"
              f"{r['span']:>10.1f}{r['sent'] / r['span']:>11,.0f}{waiting:>9,}  {r['rss']!s:<12} {r['status']}",
              flush=True)


if __name__ == "__main__":
    main()
