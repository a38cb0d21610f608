"""Failover: how many attempts go to dead keys before the channel is held, and how fast.

For pools of 1, 3 and 10 sandbox keys that all answer key-level errors (5 ms latency) and
worker concurrency 1, 8 and 32, prints the attempts wasted on dead keys before the hold
(target: at most one per key plus the calls in flight) and the time from the engine
learning of the last key's failure to the hold being committed.

    python bench/failover.py [--pg postgresql://postgres@127.0.0.1:5432/test | --sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.engine import fresh_database  # noqa: E402
from drumbeat import logs  # noqa: E402
from drumbeat.channels.sandbox import SandboxAdapter  # noqa: E402
from drumbeat.engine.worker import Worker  # noqa: E402
from drumbeat.services import campaigns as svc  # noqa: E402
from drumbeat.services.context import Context  # noqa: E402
from drumbeat.store.db import make_engine, migrate  # noqa: E402
from drumbeat.store.secrets import SecretBox  # noqa: E402
from drumbeat.store.tables import attempts, holds  # noqa: E402
from tests.factory import add_leads, new_campaign, sandbox_key, workspace  # noqa: E402


class Timed(SandboxAdapter):
    """The sandbox, noting when each key's first key-level answer came back."""

    def __init__(self) -> None:
        super().__init__()
        self.first_failure: dict[str, float] = {}

    async def send(self, credential, message):
        result = await super().send(credential, message)
        if result.error_class is not None:
            self.first_failure.setdefault(credential.integration_id, time.time())
        return result


def run(url: str, keys: int, concurrency: int) -> tuple[int, float, str]:
    engine = make_engine(url)
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(Fernet.generate_key()))
    p = workspace(ctx, f"F{uuid.uuid4().hex[:6]}")
    for i in range(keys):
        sandbox_key(ctx, p, label=f"k{i}", fail="key", latency_ms=5)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 2000)
    svc.start(ctx, p, cid)
    adapter = Timed()
    asyncio.run(Worker(ctx, {"sandbox": adapter}, concurrency=concurrency, tick_seconds=0.01).drain())
    with engine.connect() as conn:
        wasted = conn.execute(select(func.count()).select_from(attempts).where(attempts.c.status == "key_error")
                              ).scalar_one()
        held_at = conn.execute(select(holds.c.since).where(holds.c.campaign_id == cid)).scalar_one()
    status = svc.get_campaign(ctx, p, cid)["status"]
    engine.dispose()
    learned = max(adapter.first_failure.values())
    return wasted, (held_at.timestamp() - learned) * 1000, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--sqlite", action="store_true", help="run on SQLite instead of PostgreSQL")
    args = parser.parse_args()
    logs.configure("ERROR")
    kind = "sqlite" if args.sqlite else "postgresql"
    print(f"database: {kind}; 2,000 leads; every key answers a key-level error after 5 ms")
    print(f"{'keys':>5}{'in flight':>10}{'wasted':>8}{'bound':>7}{'ms to hold':>12}  status")
    for keys in (1, 3, 10):
        for concurrency in (1, 8, 32):
            with fresh_database(kind, args.pg) as url:
                wasted, ms, status = run(url, keys, concurrency)
            bound = keys + concurrency
            print(f"{keys:>5}{concurrency:>10}{wasted:>8}{bound:>7}{ms:>12.1f}  {status}"
                  f"{'' if wasted <= bound else '  OVER BOUND'}", flush=True)


if __name__ == "__main__":
    main()
