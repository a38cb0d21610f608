"""The probes behind a resume that checks the keys (issue 21; DESIGN.md §5).

Before a start, a due start_at, a resume or the sweeper's resume, every key the
campaign's last run marked failed (and that is still enabled and active) gets its
connection test — the integration's probe, one cheap authenticated read — all of them at
once, each bounded by `Context.probe_timeout_seconds`. This is the I/O half; the results
go to the one gate check (domain.gates.evaluate_gates, domain.key_checks.judge_mark),
which decides. Probes run outside any transaction: nothing is locked while a provider
takes its time.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import structlog

from drumbeat.channels import registry
from drumbeat.channels.base import Credential
from drumbeat.channels.errors import probe_outcome
from drumbeat.channels.transport import provider_client
from drumbeat.domain.key_checks import ProbeOutcome, ProbeResult
from drumbeat.domain.lifecycle import Status
from drumbeat.domain.reasons import AUTO_LIFTABLE, PauseReason
from drumbeat.services.context import Context
from drumbeat.services.integrations import credential_of
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import integrations as integration_store

log = structlog.get_logger()


def probe_marked_keys(ctx: Context, campaign_id: str) -> dict[str, ProbeResult]:
    """integration id -> its probe's result, for each key marked failed in the campaign's
    current run that is enabled and active. No mark: no I/O at all."""
    with ctx.db.connect() as conn:
        campaign = campaign_store.get_campaign_by_id(conn, campaign_id)
        if campaign is None:
            return {}
        rows = integration_store.marked_rows(conn, campaign_id, campaign["run"])
    if not rows:
        return {}
    credentials = [credential_of(ctx, r) for r in rows]
    results = run_probes(credentials, ctx.probe_timeout_seconds)
    log.info("key probes", campaign_id=campaign_id,
             results={r.integration_id: r.code or r.outcome.value for r in results.values()})
    return results


def probe_for_sweep(ctx: Context, campaign_id: str) -> dict[str, ProbeResult] | None:
    """The probes the sweeper runs before it weighs a campaign: only for one paused for a
    cause it may clear (it would resume it: a new run). A sending campaign's marks stay
    for its run (no probe: None)."""
    with ctx.db.connect() as conn:
        campaign = campaign_store.get_campaign_by_id(conn, campaign_id)
    if (campaign is None or campaign["status"] != Status.PAUSED
            or PauseReason(campaign["paused_reason"]) not in AUTO_LIFTABLE):
        return None
    return probe_marked_keys(ctx, campaign_id)


def run_probes(credentials: list[Credential], timeout: float) -> dict[str, ProbeResult]:
    """Each credential's probe, concurrently, each within `timeout` seconds. Runs its own
    event loop in a thread of its own, so it may be called from sync code and from inside
    a running loop alike (the worker's scheduler, the sweeper)."""
    if not credentials:
        return {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="key-probes") as pool:
        return pool.submit(asyncio.run, _probe_all(credentials, timeout)).result()


async def _probe_all(credentials: list[Credential], timeout: float) -> dict[str, ProbeResult]:
    async with provider_client(len(credentials), httpx.Timeout(timeout)) as http:
        adapters = registry.adapters(http)
        results = await asyncio.gather(*(_probe_one(adapters, c, timeout) for c in credentials))
    return {r.integration_id: r for r in results}


async def _probe_one(adapters: dict, credential: Credential, timeout: float) -> ProbeResult:
    provider = registry.code_prefix(credential.provider)
    try:
        result = await asyncio.wait_for(adapters[credential.provider].probe(credential), timeout)
    except TimeoutError:
        return ProbeResult(credential.integration_id, ProbeOutcome.TIMEOUT, f"{provider}:timeout",
                           f"no answer within {timeout:g} s")
    except Exception as exc:  # an adapter bug is an answer too: the key keeps its mark
        return ProbeResult(credential.integration_id, ProbeOutcome.REFUSED, f"{provider}:exception",
                           type(exc).__name__)
    return ProbeResult(credential.integration_id, probe_outcome(result), result.error_code, result.error_message)
