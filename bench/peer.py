"""N no-op deliveries the way a team would otherwise build it, beside Drumbeat's engine.

The peer: one procrastinate job per lead on the same PostgreSQL, each job a no-op send
followed by writing the lead's outcome (`UPDATE peer_leads SET state = 'completed'`), run
by one `procrastinate` worker process with `--concurrency` jobs at a time (its
connection pool sized to match). Jobs are deferred before the clock starts, as Drumbeat's
leads are loaded and its campaign started before its clock starts. procrastinate lives in
its own virtualenv (`--peer-venv`, created with `pip install procrastinate` when missing).

Drumbeat: bench/engine.py's run — one `drumbeat worker` process, the zero-latency
sandbox, one one-step campaign of N leads, the same concurrency (split over `--lanes`
claim loops). Each side gets a fresh database. Prints both throughputs and their ratio.

    python bench/peer.py                        # 100,000 leads, concurrency 32
    python bench/peer.py --leads 5000 --concurrency 32 256
    python bench/peer.py --leads 20000 --concurrency 256 --lanes 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# --- the peer's side: runs under the peer virtualenv, imports only procrastinate --------

SETUP_SQL = """
CREATE TABLE peer_leads (id bigint PRIMARY KEY, phone text NOT NULL, state text NOT NULL DEFAULT 'not_contacted',
                         sent_at timestamptz);
INSERT INTO peer_leads (id, phone) SELECT i, '+1555' || lpad(i::text, 7, '0') FROM generate_series(1, %(n)s) AS i;
"""


def _peer_app(url: str, concurrency: int):
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=url, min_size=1, max_size=max(10, concurrency + 2)))

    @app.task(name="deliver")
    async def deliver(lead_id: int) -> None:
        await _no_op_send(lead_id)
        await app.connector.execute_query_async(
            "UPDATE peer_leads SET state = 'completed', sent_at = now() WHERE id = %(id)s", id=lead_id)

    return app, deliver


async def _no_op_send(lead_id: int) -> str:
    return f"sbx-{lead_id}"


def peer_setup(url: str, n: int) -> None:
    import asyncio
    import logging

    logging.basicConfig(level=logging.ERROR)  # procrastinate warns that the app lives in __main__

    async def main():
        app, deliver = _peer_app(url, 1)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            await app.connector.execute_query_async(SETUP_SQL.replace("%(n)s", str(int(n))))
            for lo in range(1, n + 1, 10_000):
                await deliver.batch_defer_async(*({"lead_id": i} for i in range(lo, min(lo + 10_000, n + 1))))

    asyncio.run(main())


def peer_work(url: str, concurrency: int) -> None:
    import asyncio
    import logging

    logging.basicConfig(level=logging.ERROR)

    async def main():
        app, _ = _peer_app(url, concurrency)
        async with app.open_async():
            started = time.perf_counter()
            await app.run_worker_async(concurrency=concurrency, wait=False)
            elapsed = time.perf_counter() - started
            done = await app.connector.execute_query_one_async(
                "SELECT count(*) AS n FROM peer_leads WHERE state = 'completed'")
        print(json.dumps({"seconds": elapsed, "completed": done["n"]}))

    asyncio.run(main())


# --- the comparison: runs in Drumbeat's environment --------------------------------------

def ensure_peer_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists() or subprocess.run([str(python), "-c", "import procrastinate"],
                                             capture_output=True).returncode:
        print(f"creating {venv} with procrastinate ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "procrastinate"], check=True)
    return python


def run_peer(python: Path, url: str, n: int, concurrency: int) -> dict:
    libpq = "postgresql://" + url.split("://", 1)[1]
    subprocess.run([str(python), __file__, "--peer-setup", libpq, str(n)], check=True)
    started = time.perf_counter()
    out = subprocess.run([str(python), __file__, "--peer-work", libpq, str(concurrency)], check=True,
                         capture_output=True, text=True).stdout
    wall = time.perf_counter() - started
    r = json.loads(out.strip().splitlines()[-1])
    return {"seconds": wall, "done": r["completed"], "rate": r["completed"] / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--lanes", type=int, default=1, help="claim loops of the Drumbeat worker (--lanes)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="admin URL; a fresh database is created per run")
    parser.add_argument("--peer-venv", type=Path, default=Path("/tmp/peer-venv"))
    parser.add_argument("--peer-setup", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--peer-work", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_setup:
        peer_setup(args.peer_setup[0], int(args.peer_setup[1]))
        return
    if args.peer_work:
        peer_work(args.peer_work[0], int(args.peer_work[1]))
        return

    sys.path.insert(0, str(ROOT))
    from bench.engine import fresh_database
    from bench.engine import run as run_drumbeat

    python = ensure_peer_venv(args.peer_venv)
    print(f"{'leads':>9}{'in flight':>10}{'procrastinate/s':>17}{'drumbeat/s':>12}{'ratio':>8}  "
          f"(seconds: peer, drumbeat; done: peer, drumbeat)")
    for conc in args.concurrency:
        with fresh_database("postgresql", args.pg) as url:
            peer = run_peer(python, url, args.leads, conc)
        with fresh_database("postgresql", args.pg) as url:
            ours = run_drumbeat(url, args.leads, 1, conc, args.lanes)
        print(f"{args.leads:>9,}{conc:>10}{peer['rate']:>17,.0f}{ours['rate']:>12,.0f}"
              f"{ours['rate'] / peer['rate']:>7.1f}x  ({peer['seconds']:.1f}, {ours['seconds']:.1f}; "
              f"{peer['done']:,}, {ours['sent']:,})", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
