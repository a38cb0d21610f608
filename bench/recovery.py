"""Quick recovery: from a crashed PostgreSQL accepting connections again to work again.

On a throwaway PostgreSQL cluster of its own, two worker processes' loops (each a thread
with its own connection pool: worker + notifier, as `drumbeat worker` runs them) send a
3,000-lead campaign through 20 ms sandbox keys; the server is stopped (`immediate`), a
sweeper starts in each while it is down, and after the outage the server is started and
polled every 5 ms until it accepts a connection. Prints, for each run, the seconds from
then to each worker's first send and each sweeper's first sweep, the slowest loop's, the
notifiers' log lines over the outage, and the load average (target: every loop under 2 s).

    python bench/recovery.py [--outage 7] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from tests.engine.recovery import measure_restart  # noqa: E402
from tests.pg_cluster import throwaway_cluster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage", type=float, default=7.0, help="seconds the server stays down")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"outage {args.outage:.1f} s; seconds from accepting connections to the first send / sweep")
    print("run | workers | sweepers | slowest | notifier lines | load average (1, 5, 15 min)")
    slowest = []
    for run in range(1, args.runs + 1):
        with throwaway_cluster() as cluster:
            r = measure_restart(cluster, Fernet.generate_key().decode(), outage_seconds=args.outage)
        slowest.append(r.slowest)
        print(f"{run} | {', '.join(f'{s:.3f}' for s in r.workers)} | {', '.join(f'{s:.3f}' for s in r.sweepers)}"
              f" | {r.slowest:.3f} | {len(r.notifier_logs)} | {', '.join(f'{x:.2f}' for x in r.load_average)}")
    print(f"slowest loop over {args.runs} runs: {max(slowest):.3f} s (target: under 2 s)")


if __name__ == "__main__":
    main()
