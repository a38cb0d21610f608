"""Lead-steps per second through one real `drumbeat worker` sending over real HTTP.

The worker (a separate process, PostgreSQL) sends every lead of a one-step WhatsApp
campaign through the WhatsApp Cloud API adapter to a local fake Graph API that answers at
once: a bare asyncio HTTP/1.1 server with keep-alive in its own process, so the provider
is not the bottleneck. Prints a table: leads, calls in flight, seconds, sends/s, requests
the fake answered, worker CPU seconds and peak RSS, and from the worker's own metrics
(`--metrics-port`) its claim transactions and their mean duration.

    python bench/sends_over_http.py                                  # 100,000 leads, 256 in flight
    python bench/sends_over_http.py --leads 20000 --concurrency 64 256 --lanes 1 2
    python bench/sends_over_http.py --leads 20000 --profile /tmp/worker.svg   # py-spy record the worker
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# --- the fake provider: no framework, so that it is never the slow side ----------------

class _GraphProtocol(asyncio.Protocol):
    """Answers every request `200 {"messages": [{"id": "wamid.N"}]}` (pipelining-safe)."""

    answered = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = self.buffer[:head_end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
            if len(self.buffer) < head_end + 4 + length:
                break
            self.buffer = self.buffer[head_end + 4 + length:]
            _GraphProtocol.answered += 1
            body = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.%d"}]}' % _GraphProtocol.answered
            out.append(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                       % (len(body), body))
        if out:
            self.transport.write(b"".join(out))


def serve_fake(port: int) -> None:
    """The fake's process: serve until SIGTERM, then print how many requests it answered."""
    async def main():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(_GraphProtocol, "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        await stop.wait()
        server.close()
        print(_GraphProtocol.answered, flush=True)

    asyncio.run(main())


# --- the run -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MB) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = next(int(line.split()[1]) / 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    return cpu, rss


def claim_figures(port: int) -> dict:
    """Claim transactions and their mean duration, from the worker's own /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}
    n = values.get("drumbeat_claim_seconds_count", 0)
    return {"claims": int(n), "claim_ms": 1000 * values.get("drumbeat_claim_seconds_sum", 0) / max(n, 1)}


def run(url: str, leads: int, concurrency: int, profile: str | None, lanes: int = 1) -> dict:
    from cryptography.fernet import Fernet
    from sqlalchemy import select

    from drumbeat.services import campaigns as svc
    from drumbeat.services.context import Context
    from drumbeat.store import integrations as integration_store
    from drumbeat.store.db import make_engine, migrate
    from drumbeat.store.secrets import SecretBox
    from drumbeat.store.tables import campaigns
    from tests.factory import add_leads, new_campaign, workspace

    port = free_port()
    fake = subprocess.Popen([sys.executable, __file__, "--serve-fake", str(port)], stdout=subprocess.PIPE, text=True)
    assert fake.stdout.readline().strip() == "ready"
    key = Fernet.generate_key().decode()
    engine = make_engine(url)
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(key))
    p = workspace(ctx, f"Bench{uuid.uuid4().hex[:6]}")
    with ctx.db.begin() as conn:
        integration_store.insert_integration(
            conn, p.workspace_id, {"channel": "whatsapp", "provider": "whatsapp_cloud", "label": "bench",
                                   "config": {"phone_number_id": "106540352242922",
                                              "base_url": f"http://127.0.0.1:{port}/v23.0"}},
            ctx.box.seal({"access_token": "EAAG-bench-token"}), ctx.clock())
    cid = new_campaign(ctx, p, name="bench")
    add_leads(ctx, cid, leads)
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": url, "DRUMBEAT_SECRET_KEY": key, "DRUMBEAT_TICK_SECONDS": "0.05",
           "DRUMBEAT_SWEEP_SECONDS": "600"}
    svc.start(ctx, p, cid)
    started = time.perf_counter()
    metrics_port = free_port()
    worker = subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "worker", "--concurrency", str(concurrency),
                               "--lanes", str(lanes), "--metrics-port", str(metrics_port)], env=env,
                              stderr=subprocess.DEVNULL)
    spy = None
    if profile:
        fmt = {"json": ["--format", "speedscope"], "txt": ["--format", "raw"]}.get(profile.rsplit(".", 1)[-1], [])
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(worker.pid), "--rate", "200", "--output", profile,
                                *fmt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def status() -> str:
        with engine.connect() as conn:
            return conn.execute(select(campaigns.c.status).where(campaigns.c.id == cid)).scalar_one()

    try:
        while status() == "sending":
            cpu, rss = proc_stats(worker.pid)
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu, rss = proc_stats(worker.pid)
        claims = claim_figures(metrics_port)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        worker.terminate()
        worker.wait(timeout=60)
        fake.terminate()
        answered = int(fake.stdout.readline().strip() or 0)
        fake.wait(timeout=10)
    view = svc.get_campaign(ctx, p, cid)
    engine.dispose()
    sent = view["breakdown"]["sent"]
    return {"status": view["status"], "sent": sent, "seconds": elapsed, "rate": sent / elapsed,
            "answered": answered, "cpu": cpu, "rss": rss, **claims}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[256], help="provider calls in flight")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1], help="claim loops of the worker (--lanes)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="admin URL; a fresh database is created per run")
    parser.add_argument("--profile",
                        help="py-spy record the worker into this file (.svg; .json speedscope; .txt collapsed stacks)")
    parser.add_argument("--serve-fake", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake)
        return
    from bench.engine import fresh_database

    print(f"{'leads':>9}{'lanes':>6}{'in flight':>10}{'seconds':>9}{'sends/s':>10}{'answered':>10}{'worker CPU s':>14}"
          f"{'peak RSS MB':>13}{'claims':>8}{'ms/claim':>10}  status")
    for n, lanes, conc in itertools.product(args.leads, args.lanes, args.concurrency):
        with fresh_database("postgresql", args.pg) as url:
            r = run(url, n, conc, args.profile, lanes)
        print(f"{n:>9,}{lanes:>6}{conc:>10}{r['seconds']:>9.1f}{r['rate']:>10,.0f}{r['answered']:>10,}{r['cpu']:>14.1f}"
              f"{r['rss']:>13.0f}{r['claims']:>8}{r['claim_ms']:>10.1f}  {r['status']}", flush=True)


if __name__ == "__main__":
    main()
