"""The sweeper (DESIGN.md §5, auto-resume): every DRUMBEAT_SWEEP_SECONDS, in exactly one
process at a time, lift the holds whose cause is known to be cleared and recoverable —
`account_disconnected` once an integration of the channel is active again,
`subscription_canceled` once the subscription is active — with actor `system`, and
resume the campaigns those causes paused, through the same gate check as the Resume
button (a new run). It never lifts `manual`, `all_keys_failed`, `high_failure_rate`,
`template_rejected` or `account_restricted`; a cause that keeps coming back (three
automatic lifts in 24 hours) is left to a person (services.holds.sweep_campaign).
It also places the leads a re-clamp parked, an opening at a time
(services.campaigns.place_parked_leads), and deletes lead imports' rejected rows once
they are 7 days old (services.leads.prune_imports).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from drumbeat.clock import utcnow
from drumbeat.domain.exceptions import InvalidTransition, ResumeBlocked
from drumbeat.domain.lifecycle import Action
from drumbeat.domain.reasons import AUTO_LIFTABLE, PauseReason
from drumbeat.services.campaigns import place_parked_leads, run_through_gates
from drumbeat.services.context import Context
from drumbeat.services.holds import SWEEPER, sweep_campaign
from drumbeat.services.key_checks import probe_for_sweep
from drumbeat.services.leads import prune_imports
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import counts, stats
from drumbeat.store.locks import exclusive

log = structlog.get_logger()

KEPT = frozenset(r.value for r in PauseReason if r not in AUTO_LIFTABLE)


@dataclass
class SweepReport:
    looked_at: int = 0
    resumed: list[str] = field(default_factory=list)
    folded: int = 0  # campaigns whose count deltas were folded
    placed: int = 0  # parked leads the re-clamp placed
    pruned_imports: int = 0  # lead imports past their 7 days, deleted with their rejected rows


class Sweeper:
    def __init__(self, ctx: Context, *, period_seconds: float = 60.0, owner: str | None = None) -> None:
        self.ctx = ctx
        self.period = period_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.sweeps = 0  # sweeps done by this process, for observers

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.sweep_once()
            except Exception as exc:  # the database went away: try again next period
                log.warning("sweep failed", error=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.period)
            except TimeoutError:
                pass

    def sweep_once(self) -> SweepReport | None:
        """One sweep; None when another process holds the sweeper lock."""
        ttl = timedelta(seconds=max(30.0, 3 * self.period))
        with exclusive(self.ctx.db, "sweeper", self.owner, utcnow(), ttl) as mine:
            if not mine:
                return None
            report = SweepReport()
            with self.ctx.db.connect() as conn:
                ids = campaign_store.campaigns_with_holds(conn, sorted(AUTO_LIFTABLE))
            for campaign_id in ids:
                report.looked_at += 1
                # A paused campaign it may resume: its keys marked failed are probed first
                # (outside the transaction), for the same gate check as the Resume button.
                probes = probe_for_sweep(self.ctx, campaign_id)
                with self.ctx.db.begin() as conn:
                    verdict = sweep_campaign(conn, campaign_id, self.ctx.clock(), probes)
                    workspace_id = campaign_store.get_campaign_by_id(conn, campaign_id)["workspace_id"]
                if verdict == "resume":
                    try:
                        run_through_gates(self.ctx, campaign_id, Action.RESUME, SWEEPER, workspace_id, keep=KEPT,
                                          probes=probes or {})
                        report.resumed.append(campaign_id)
                    except (ResumeBlocked, InvalidTransition):
                        pass  # changed since we looked: the next sweep sees it again
            report.placed = place_parked_leads(self.ctx)
            report.pruned_imports = prune_imports(self.ctx)
            with self.ctx.db.begin() as conn:  # keep the maintained counts a few rows per metric
                report.folded = counts.fold(conn)
                stats.fold(conn)
            self.sweeps += 1
        if report.resumed:
            log.info("sweeper resumed campaigns", campaigns=len(report.resumed), campaign_ids=report.resumed)
        return report
