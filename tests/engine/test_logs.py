"""The worker's log lines are JSON, name the campaign, lead and attempt they concern, and
never carry a secret (DESIGN.md §7: secrets are never logged)."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
import structlog

from drumbeat import logs
from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine import detectors
from drumbeat.engine import worker as worker_module
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import holds
from drumbeat.store import integrations as integration_store
from tests.factory import add_leads, new_campaign, workspace

SECRET = "sk_live_do_not_log_7f3a9c"


class ExplodingSandbox(SandboxAdapter):
    """A sandbox whose `explode: true` keys raise, with the key in the message (an adapter bug)."""

    async def _send(self, credential, message):
        if (credential.config or {}).get("explode"):
            raise RuntimeError(f"boom: {credential.credentials['api_key']}")
        return await super()._send(credential, message)


@pytest.fixture
def log_stream(monkeypatch):
    """JSON logs configured into a buffer for this test only (fresh logger proxies: a
    logger cached by an earlier test would still write to that test's stream)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure(stream=stream)
    for module in (worker_module, detectors, holds):
        monkeypatch.setattr(module, "log", structlog.get_logger())
    yield stream
    structlog.reset_defaults()
    root.handlers, root.level = saved[0], saved[1]


def keyed(ctx, principal, label: str, **config) -> str:
    with ctx.db.begin() as conn:
        return integration_store.insert_integration(
            conn, principal.workspace_id, {"channel": "whatsapp", "provider": "sandbox", "label": label,
                                           "config": config},
            ctx.box.seal({"api_key": SECRET}), ctx.clock())


def campaign_on(ctx, principal, key: str, leads: int, name: str) -> str:
    cid = new_campaign(ctx, principal, name=name, integration_ids=[key])
    add_leads(ctx, cid, leads)
    svc.start(ctx, principal, cid)
    return cid


def test_worker_lines_are_json_with_campaign_lead_and_attempt_ids_and_no_secret(ctx, log_stream):
    p = workspace(ctx)
    exploding = campaign_on(ctx, p, keyed(ctx, p, "buggy", explode=True), 2, "Buggy")
    dead_key = keyed(ctx, p, "dead", fail="key")
    dead = campaign_on(ctx, p, dead_key, 3, "Dead key")
    worker = Worker(ctx, {"sandbox": ExplodingSandbox()}, concurrency=1, tick_seconds=0.01)
    asyncio.run(worker.drain(max_rounds=50))

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]  # every line parses
    assert lines and all({"event", "level", "timestamp"} <= set(line) for line in lines)
    raised = [line for line in lines if line["event"] == "adapter raised"]
    assert raised, lines
    for line in raised:
        assert line["campaign_id"] == exploding and line["error_type"] == "RuntimeError"
        assert isinstance(line["lead_id"], int) and isinstance(line["attempt_id"], int)
    key_failed = [line for line in lines if line["event"] == "key failed"]
    assert len(key_failed) == 1
    assert key_failed[0]["campaign_id"] == dead and key_failed[0]["integration_id"] == dead_key
    assert key_failed[0]["error_code"] == "sandbox:key" and isinstance(key_failed[0]["attempt_id"], int)
    held = [line for line in lines if line["event"] == "channel held"]
    assert [(h["campaign_id"], h["reason"]) for h in held] == [(dead, "all_keys_failed")]
    assert SECRET not in log_stream.getvalue()


def test_leads_found_in_doubt_are_logged_with_their_campaign_leads_and_attempts(clocked_ctx, clock, log_stream):
    ctx = clocked_ctx
    p = workspace(ctx)
    cid = campaign_on(ctx, p, keyed(ctx, p, "key"), 5, "Crash")
    dead = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=3, lease_seconds=60)
    claimed = dead.claim()  # attempts committed, then the process "dies" before any answer
    clock.advance(seconds=61)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=3).drain())
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    doubt = [line for line in lines if line["event"] == "leads in doubt"]
    assert len(doubt) == 1 and doubt[0]["campaign_id"] == cid and doubt[0]["leads"] == 3
    assert sorted(doubt[0]["lead_ids"]) == sorted(job.claimed.lead["id"] for job in claimed)
    assert sorted(doubt[0]["attempt_ids"]) == sorted(job.claimed.attempt_id for job in claimed)
    recovered = [line for line in lines if line["event"] == "expired leases recovered"]
    assert recovered[0]["campaign_ids"] == [cid] and recovered[0]["in_doubt"] == 3
