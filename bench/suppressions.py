"""Suppression list: streamed CSV import and export, entries per second and peak memory.

Serves the real app with uvicorn on a local port (in this process), streams a generated
CSV of N entries (half phones, half emails, every reason; about 0.1% invalid rows and 0.1%
repeated addresses) to POST /api/v1/suppressions/import, then reads GET
/api/v1/suppressions/export back as a stream and checks every entry came back with its
reason. The peak RSS covers client + server: bounded import and export keep it flat
however many entries pass.

    python bench/suppressions.py                      # 1,000,000 entries on SQLite (a temp file)
    python bench/suppressions.py --entries 20000      # a quick check that it works
    python bench/suppressions.py --entries 200000 --pg postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import csv
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

from bench.import_csv import free_port, peak_rss_mb  # noqa: E402
from drumbeat.app import create_app  # noqa: E402
from drumbeat.domain.consent import SuppressionReason  # noqa: E402
from drumbeat.services.context import Context  # noqa: E402
from drumbeat.services.workspaces import init_workspace  # noqa: E402
from drumbeat.store.db import make_engine, migrate  # noqa: E402
from drumbeat.store.secrets import SecretBox  # noqa: E402

REASONS = [r.value for r in SuppressionReason]


def address(i: int) -> tuple[str, str]:
    return (f"+49151{i:08d}", "") if i % 2 else ("", f"person{i}@example.com")


def csv_body(entries: int, chunk_rows: int = 5000):
    """Yields the CSV in chunks as the HTTP client asks for them."""
    yield b"phone,email,reason\n"
    for lo in range(0, entries, chunk_rows):
        lines = []
        for i in range(lo, min(lo + chunk_rows, entries)):
            phone, email = address(i)
            lines.append(f"{phone},{email},{REASONS[i % len(REASONS)]}\n")
            if i % 1000 == 500:
                lines.append("12345,,\n")  # rejected
                lines.append(f"{phone},{email},manual\n")  # a repeat: a duplicate
        yield "".join(lines).encode()


def run(url: str, entries: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(Fernet.generate_key().decode()))
    boot = init_workspace(ctx, "Bench", "owner@bench.test")
    headers = {"Authorization": f"Bearer {boot['token']}"}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/api/v1/suppressions"
    before = peak_rss_mb()

    started = time.perf_counter()
    response = httpx.post(f"{base}/import", content=csv_body(entries), timeout=None,
                          headers={**headers, "Content-Type": "text/csv"})
    import_seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"import failed: {response.status_code} {response.text[:500]}")
    body = response.json()
    after_import = peak_rss_mb()

    started = time.perf_counter()
    exported = wrong = 0
    with httpx.stream("GET", f"{base}/export", headers=headers, timeout=None) as stream:
        rows = csv.reader(stream.iter_lines())
        next(rows)
        for i, (phone, email, reason, _created) in enumerate(rows):
            want_phone, want_email = address(i)
            if (phone.removeprefix("'"), email, reason) != (want_phone, want_email, REASONS[i % len(REASONS)]):
                wrong += 1
            exported += 1
    export_seconds = time.perf_counter() - started
    server.should_exit = True
    thread.join()
    engine.dispose()

    print(f"database       {url.split(':', 1)[0].split('+')[0]}")
    print(f"entries        {entries:,}")
    print(f"import         {import_seconds:,.1f} s   {entries / import_seconds:,.0f} entries/s   "
          f"accepted {body['accepted']:,}   duplicates {body['duplicates']:,}   rejected {body['rejected_total']:,}")
    print(f"export         {export_seconds:,.1f} s   {exported / export_seconds:,.0f} entries/s   "
          f"rows {exported:,}   not as imported {wrong:,}")
    print(f"peak RSS       {peak_rss_mb():,.0f} MiB (before: {before:,.0f} MiB, after the import: "
          f"{after_import:,.0f} MiB)")
    if body["accepted"] != entries or exported != entries or wrong:
        raise SystemExit("the round trip lost or changed entries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL database (postgresql://...) instead of SQLite")
    args = parser.parse_args()
    if args.pg:
        run("postgresql+psycopg://" + args.pg.split("://", 1)[1], args.entries)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{tmp}/bench.db", args.entries)


if __name__ == "__main__":
    main()
