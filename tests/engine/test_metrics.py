"""Worker metrics in Prometheus text (engine/metrics.py): sends by channel and outcome,
claim latency, provider calls in flight, and the database gauges beside them; served by
`drumbeat worker --metrics-port` from the worker process itself."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.metrics import exposition
from drumbeat.engine.worker import Worker
from drumbeat.store.tables import campaigns
from tests.conftest import postgresql_only
from tests.factory import started_campaign


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of a Prometheus text page."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sends(page: dict, outcome: str, channel: str = "whatsapp") -> float:
    return page[("drumbeat_sends_total", (("channel", channel), ("outcome", outcome)))]


def scrape(ctx, worker: Worker) -> dict:
    return samples(exposition(ctx, worker.metrics.registry).decode())


def test_sends_are_counted_by_channel_and_outcome_and_the_queue_empties(ctx):
    _, cid = started_campaign(ctx, 25, fail="lead", fail_after=20)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=4)
    before = scrape(ctx, worker)
    assert before[("drumbeat_due_leads", (("campaign_id", cid),))] == 25
    assert sends(before, "accepted") == 0
    asyncio.run(worker.drain())
    page = scrape(ctx, worker)
    assert sends(page, "accepted") == 20
    assert sends(page, "lead") == 5
    assert all(sends(page, o) == 0 for o in ("key", "rate", "transient", "campaign"))
    assert sends(page, "accepted", channel="sms") == 0
    assert ("drumbeat_due_leads", (("campaign_id", cid),)) not in page  # nothing due: not a sending campaign
    assert page[("drumbeat_campaigns", (("paused_reason", ""), ("status", "completed")))] == 1
    assert page[("drumbeat_database_up", ())] == 1
    # 25 sends through 4 slots take at least 7 claim transactions, each one observed
    claims = page[("drumbeat_claim_seconds_count", ())]
    assert claims >= 7
    assert page[("drumbeat_claim_seconds_bucket", (("le", "+Inf"),))] == claims
    assert 0 < page[("drumbeat_claim_seconds_sum", ())] < claims * 10
    assert page[("drumbeat_provider_calls_in_flight", (("channel", "whatsapp"),))] == 0


def test_a_key_failure_is_counted_and_the_hold_and_pause_show_their_reason(ctx):
    _, cid = started_campaign(ctx, 10, fail="key")
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=1)
    asyncio.run(worker.drain())
    page = scrape(ctx, worker)
    assert sends(page, "key") == 1 and sends(page, "accepted") == 0
    assert page[("drumbeat_campaigns", (("paused_reason", "all_keys_failed"), ("status", "paused")))] == 1
    assert page[("drumbeat_holds", (("channel", "whatsapp"), ("reason", "all_keys_failed")))] == 1


class GatedAdapter(SandboxAdapter):
    """Answers only once the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def _send(self, credential, message):
        await self.gate.wait()
        return await super()._send(credential, message)


def test_the_in_flight_gauge_counts_calls_awaiting_an_answer(ctx):
    started_campaign(ctx, 12)
    adapter = GatedAdapter()
    worker = Worker(ctx, {"sandbox": adapter}, concurrency=5, tick_seconds=0.01)

    async def scenario():
        await worker.step()  # claims 5 and starts them; none can answer yet
        during = scrape(ctx, worker)
        adapter.gate.set()
        await worker.drain()
        return during, scrape(ctx, worker)

    during, after = asyncio.run(scenario())
    assert during[("drumbeat_provider_calls_in_flight", (("channel", "whatsapp"),))] == 5
    assert sends(during, "accepted") == 0
    assert after[("drumbeat_provider_calls_in_flight", (("channel", "whatsapp"),))] == 0
    assert sends(after, "accepted") == 12


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@postgresql_only  # a worker process beside the test: the PostgreSQL deployment
def test_drumbeat_worker_serves_its_metrics_over_http(ctx, db_url, secret_key, tmp_path):
    _, cid = started_campaign(ctx, 30, fail="lead", fail_after=24)
    log_path = tmp_path / "worker.log"
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": db_url, "DRUMBEAT_SECRET_KEY": secret_key,
           "DRUMBEAT_TICK_SECONDS": "0.05", "DRUMBEAT_SWEEP_SECONDS": "600"}
    proc = subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "worker", "--concurrency", "4",
                             "--metrics-port", "0"], env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    deadline = time.monotonic() + 60
    try:
        port = None
        while port is None:  # port 0: the worker logs the port it was given
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
            port = next((line["port"] for line in json_lines(log_path.read_text())
                         if line.get("event") == "metrics served"), None)
            time.sleep(0.02)
        while True:
            with ctx.db.connect() as conn:
                status = conn.execute(select(campaigns.c.status).where(campaigns.c.id == cid)).scalar_one()
            if status == "completed":
                break
            assert proc.poll() is None and time.monotonic() < deadline, (status, log_path.read_text()[-2000:])
            time.sleep(0.05)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
            page = samples(answer.read().decode())
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert sends(page, "accepted") == 24 and sends(page, "lead") == 6
    assert page[("drumbeat_campaigns", (("paused_reason", ""), ("status", "completed")))] == 1
    assert page[("drumbeat_claim_seconds_count", ())] >= 30 / 4
    assert ("process_resident_memory_bytes", ()) in page  # the process's own collectors are served too
    lines = json_lines(log_path.read_text())  # every line is JSON; the secret key is never in them
    assert {"worker started", "metrics served", "worker stopped"} <= {line["event"] for line in lines}
    assert secret_key not in log_path.read_text()
