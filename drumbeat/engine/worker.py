"""The worker loop: claim -> send -> record, with at most `concurrency` calls in flight.

Every claimed lead has its `sending` attempt committed before the provider is called,
and each outcome is committed as soon as it is known (in batches, within one tick), so
a pause or a detector stops at most the calls already in flight.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from drumbeat.channels.base import ChannelAdapter, Credential
from drumbeat.domain import variants
from drumbeat.domain.contact_cap import ContactCap
from drumbeat.domain.errors import ErrorClass, SendResult
from drumbeat.domain.leads import (
    UNFINISHED_LEAD_STATES,
    WORKABLE_LEAD_STATES,
    LeadProgress,
    LeadState,
    acceptance_wait,
    apply_outcome,
)
from drumbeat.domain.lifecycle import Status
from drumbeat.domain.messages import compose, needs_unsubscribe_url
from drumbeat.domain.reasons import pause_reason_for
from drumbeat.domain.schedule import Limits, Window, budget, clamp, is_open, lead_zone, local_day, rate_allowance
from drumbeat.engine import detectors
from drumbeat.engine.keys import UNLIMITED, Chooser, KeyPools
from drumbeat.engine.metrics import WorkerMetrics, outcome
from drumbeat.services import campaigns as campaign_service
from drumbeat.services.context import Actor, Context
from drumbeat.services.holds import (
    channels_at,
    due_channels,
    hold_after_health_change,
    key_pools,
    pause_if_nothing_can_run,
    pool_member,
)
from drumbeat.services.suppressions import suppress_refused_address
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import claims, counts, recovery
from drumbeat.store import integrations as integration_store
from drumbeat.store.tables import campaigns, workspaces

log = structlog.get_logger()

# A round claims again once 1/BATCH_SHARE of the slots are free, or RECORD_WITHIN seconds
# after the first call ended, whichever comes first.
BATCH_SHARE = 4
RECORD_WITHIN = 0.05


@dataclass
class Job:
    campaign: dict
    steps: list[dict]
    claimed: claims.ClaimedAttempt
    credential: Credential
    result: SendResult | None = None
    charged: tuple = ()  # counter rows this send was charged to (caps)

    @property
    def channel(self) -> str:
        return self.steps[self.claimed.step]["channel"]


@dataclass
class CampaignPlan:
    campaign: dict
    steps: list[dict]
    usable: dict[str, list[str]] = field(default_factory=dict)  # channel -> usable key ids
    rows: dict[str, dict] = field(default_factory=dict)  # usable key id -> integration row
    failures_in_run: set[str] = field(default_factory=set)  # channels with a key failed in this run


def _claim_groups(steps: list[dict], choosers: dict[str, Chooser],
                  channel_caps: dict[str, int] | None = None) -> list[tuple[list[int], int]]:
    """Which steps to claim together and how many: channels whose keys are trusted in one
    claim; a channel still probing its keys alone, up to one lead per probe; a channel
    whose every key has a daily cap alone, up to what is left of those caps.
    (Holds are checked in the claim itself.)"""
    caps = channel_caps or {}

    def capacity(channel: str) -> int:
        return min(choosers[channel].capacity, caps.get(channel, UNLIMITED))

    trusted = [i for i, s in enumerate(steps) if s["channel"] in choosers and capacity(s["channel"]) == UNLIMITED]
    groups = [(trusted, UNLIMITED)] if trusted else []
    for channel in choosers:
        if capacity(channel) != UNLIMITED:
            groups.append(([i for i, s in enumerate(steps) if s["channel"] == channel], capacity(channel)))
    return groups


@dataclass
class Reservation:
    """The budget a claim may spend, read under the counters' row locks (DESIGN.md §6)."""

    left: int  # sends the campaign may start now (caps, ramp, rate)
    key_left: dict[str, int]  # capped integration id -> sends left today
    campaign_keys: tuple  # counter rows every send of the campaign is charged to
    rate: tuple | None = None  # (counter key, booked until, per second)


class Worker:
    def __init__(self, ctx: Context, adapters: dict[str, ChannelAdapter], *, concurrency: int = 32,
                 tick_seconds: float = 1.0, lease_seconds: float = 120.0, owner: str | None = None,
                 metrics: WorkerMetrics | None = None) -> None:
        self.ctx = ctx
        self.metrics = metrics or WorkerMetrics()
        self.adapters = adapters
        self.concurrency = concurrency
        self.tick = tick_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.keys = KeyPools()
        self.inflight: set[asyncio.Task] = set()
        self.unrecorded: list[Job] = []  # finished sends whose outcome is not committed yet
        self._credentials: dict[str, tuple[str, Credential]] = {}
        self._steps: dict[tuple[str, int], list[dict]] = {}
        self.rounds = 0  # completed loop rounds, for observers
        self._campaigns: list[dict] = []
        self._campaigns_read_at: float | None = None
        self._recovered_at: float | None = None
        self._leases_checked_at: float | None = None
        self.cooling: dict[str, datetime] = {}  # integration id -> rate-limited until (this process)
        self.rng = random.Random()  # random slots inside windows
        self._first_days: dict = {}  # campaign id -> first sending day (the ramp's day 0)
        self._charges: dict[int, tuple] = {}  # attempt id -> counter rows charged, until its Job exists
        # Claims whose COMMIT raised: perhaps committed all the same (_take_up_unsure_claims).
        self._unsure: list[tuple[dict, CampaignPlan, list[claims.ClaimedAttempt]]] = []
        self._claimed: list[Job] = []  # committed claims of this round, not yet handed out (claim)
        self._scheduled_at: float | None = None
        self._links = ctx.unsubscribe_links()

    # --- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker started", owner=self.owner, concurrency=self.concurrency)
        failures = 0
        while not stop.is_set():
            try:
                worked = await self.step()
                if failures:  # the operator sees the outage end, not only begin
                    log.info("database reachable again", after_failures=failures)
                failures = 0
            except DBAPIError as exc:
                # The database went away, or a deadlock victim: the outcomes still to record
                # and the claims committed but not started are kept (a claim whose COMMIT
                # raised is looked up again); back off and try again.
                failures += 1
                worked = False
                log.warning("database error, retrying", error=type(exc.orig).__name__ if exc.orig else "DBAPIError",
                            attempt=failures)
            if not worked:
                pause = self.tick if not failures else min(30.0, 0.2 * 2**failures)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=pause)
                except TimeoutError:
                    pass
        await self._stop_gracefully()
        log.info("worker stopped", owner=self.owner)

    async def _stop_gracefully(self) -> None:
        """Claim nothing new, let in-flight calls finish and record every outcome."""
        for attempt in range(10):
            try:
                self._take_up_unsure_claims()
                for job in self._claimed:  # committed claims a database error kept from starting
                    self.inflight.add(asyncio.create_task(self._send(job)))
                self._claimed = []
                while self.inflight:
                    await asyncio.wait(self.inflight, return_when=asyncio.FIRST_COMPLETED)
                    self._finished()
                    self.record_unrecorded()
                self.record_unrecorded()
                return
            except DBAPIError:
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))

    async def step(self) -> bool:
        """One round: record what finished and claim into the free slots (one transaction
        when there is something to claim), start those sends, wait for the first to end.
        Returns whether anything happened (an idle worker sleeps one tick)."""
        self._take_up_unsure_claims()  # before any new claim: an attempt id may not be reused meanwhile
        self._recover_if_due()
        self._start_scheduled_if_due()
        finished = self._finished()
        claimed = self.claim()
        for job in claimed:
            self.inflight.add(asyncio.create_task(self._send(job)))
        if self.inflight:
            await self._wait_for_room()
        elif not claimed and not finished:
            self.settle_campaigns()
        self.rounds += 1
        return bool(claimed or finished)

    async def _wait_for_room(self) -> None:
        """Wait (up to a tick) for a call to end, then a little longer for a share of the
        slots to come free, so the next claim takes a batch rather than the one lead a
        single finished call makes room for — but never more than RECORD_WITHIN, so every
        outcome is still committed promptly."""
        pending = {t for t in self.inflight if not t.done()}
        if not pending:
            return
        done, pending = await asyncio.wait(pending, timeout=self.tick, return_when=asyncio.FIRST_COMPLETED)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(RECORD_WITHIN, self.tick)
        while done and pending and self.concurrency - len(pending) < max(1, self.concurrency // BATCH_SHARE):
            timeout = deadline - loop.time()
            if timeout <= 0:
                return
            done, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)

    async def drain(self, max_rounds: int = 1_000_000) -> None:
        """Run until there is nothing due and nothing in flight (tests, benchmarks, demo)."""
        for _ in range(max_rounds):
            if not await self.step() and not self.inflight:
                return

    def _finished(self) -> int:
        """Move finished sends to the outcomes waiting to be recorded."""
        done = [t for t in self.inflight if t.done()]
        self.inflight.difference_update(done)
        jobs = [t.result() for t in done]
        self.unrecorded.extend(jobs)
        for job in jobs:
            self.keys.inflight[job.claimed.integration_id] -= 1
            pool = (job.campaign["id"], job.campaign["run"], job.channel)
            if job.result.error_class is ErrorClass.KEY:
                self.keys.key_failed(pool)
            elif job.result.accepted:
                self.keys.key_succeeded(pool, job.claimed.integration_id)
        self.metrics.answered_batch(Counter((job.channel, outcome(job.result)) for job in jobs))
        return len(jobs)

    async def _send(self, job: Job) -> Job:
        lead, step = job.claimed.lead, job.steps[job.claimed.step]
        message = job.claimed.message  # composed by the claim; a recovered attempt's is composed now
        if message is None:  # the same variant: a pure function of the lead and the step
            message = self._compose(job.campaign, step, lead, job.claimed.idempotency_key, self.ctx.clock(),
                                    variants.variant_of(step, job.claimed.step, lead["id"])).message
        adapter = self.adapters[job.credential.provider]
        try:
            with self.metrics.in_flight_of(step["channel"]).track_inprogress():
                job.result = await adapter.send(job.credential, message)
        except Exception as exc:  # an adapter bug must not lose the outcome: treat as transient
            log.error("adapter raised", provider=job.credential.provider, error_type=type(exc).__name__,
                      campaign_id=job.campaign["id"], lead_id=lead["id"], attempt_id=job.claimed.attempt_id,
                      integration_id=job.claimed.integration_id)
            job.result = SendResult(error_class=ErrorClass.TRANSIENT, error_code=f"{job.credential.provider}:exception",
                                    error_message=type(exc).__name__)
        return job

    def _compose(self, campaign: dict, step: dict, lead: dict, idempotency_key: str, now: datetime,
                 variant: int | None):
        """The lead's message, with its unsubscribe link where the step needs one (none
        without DRUMBEAT_PUBLIC_URL: the gates refuse such a campaign, and a template that
        uses `{{unsubscribe_url}}` then fails the lead for a missing variable)."""
        url = None
        if self._links is not None and needs_unsubscribe_url(step):
            url = self._links.url(campaign["workspace_id"], lead["id"], now.astimezone(UTC).date())
        return compose(step, lead, idempotency_key=idempotency_key, unsubscribe_url=url, variant=variant)

    # --- claim ----------------------------------------------------------------------

    def _sending_campaigns(self, *, fresh: bool = False) -> list[dict]:
        # Re-read at most once per tick while busy: a campaign that stopped meanwhile is
        # caught by the share lock in the claim, and an idle round always re-reads.
        now = time.monotonic()
        if fresh or self._campaigns_read_at is None or now - self._campaigns_read_at >= self.tick:
            with self.ctx.db.connect() as conn:  # with the workspace's contact cap, which claims honour
                rows = conn.execute(select(campaigns, workspaces.c.contact_cap)
                                    .join(workspaces, workspaces.c.id == campaigns.c.workspace_id)
                                    .where(campaigns.c.status == Status.SENDING)
                                    .order_by(campaigns.c.started_at)).mappings().all()
            self._campaigns = [dict(r) for r in rows]
            self._campaigns_read_at = now
        return self._campaigns

    def _steps_of(self, conn, campaign: dict) -> list[dict]:
        # Steps change only while a campaign is paused, and resume starts a new run.
        key = (campaign["id"], campaign["run"])
        if key not in self._steps:
            self._steps[key] = campaign_store.get_steps(conn, campaign["id"])
        return self._steps[key]

    def _plan(self, conn, campaign: dict) -> CampaignPlan:
        steps = self._steps_of(conn, campaign)
        plan = CampaignPlan(campaign, steps)
        plan.usable = {s["channel"]: [] for s in steps}
        now = self.ctx.clock()
        for row in integration_store.pool_rows(conn, campaign, set(plan.usable), campaign["run"]):
            if row["failed_in_run"]:
                plan.failures_in_run.add(row["channel"])
            # A key that answered "slow down" rests until its Retry-After has passed.
            if pool_member(row).usable and self.cooling.get(row["id"], now) <= now:
                plan.usable[row["channel"]].append(row["id"])
                plan.rows[row["id"]] = row
        return plan

    def claim(self) -> list[Job]:
        """Claim due leads into the free slots; outcomes waiting to be recorded are written
        in the same transaction as the first claim (or alone when nothing can be claimed).

        Committed claims wait in `self._claimed` until returned: a database error later in
        the round (the next campaign's claim, a refund, recording) must not drop leads
        already leased to this worker with `sending` attempts; the next round returns them."""
        self._claim_from(self._sending_campaigns())
        if not self._claimed:  # perhaps a stale list: look once more at what is sending now
            self._claim_from(self._sending_campaigns(fresh=True))
        self.record_unrecorded()
        jobs, self._claimed = self._claimed, []
        return jobs

    def _claim_from(self, sending: list[dict]) -> None:
        if len(sending) > 1:  # only those with something to take: a claim is a transaction each
            with self.ctx.db.begin() as conn:
                ready = claims.campaigns_with_claimable_leads(conn, [c["id"] for c in sending], self.ctx.clock())
            sending = [c for c in sending if c["id"] in ready]
        for campaign in sending:
            free = self.concurrency - len(self.inflight) - len(self._claimed)
            if free <= 0:
                break
            self._claim_campaign(campaign, free)

    def _claim_campaign(self, campaign: dict, limit: int) -> None:
        now = self.ctx.clock()
        recording, self.unrecorded = self.unrecorded, []
        started = time.perf_counter()
        claimed_all = None
        try:
            with self.ctx.db.begin() as conn:
                self._record_in(conn, recording, now)
                claimed_all, plan = self._claim_in(conn, campaign, limit, now)
            self.metrics.claim_seconds.observe(time.perf_counter() - started)
        except BaseException:
            # Record them again later (writing an outcome twice changes nothing).
            self.unrecorded = recording + self.unrecorded
            if claimed_all:  # only the COMMIT was left, and it may have happened all the same
                self._unsure.append((campaign, plan, claimed_all))
            raise
        jobs = [Job(campaign, plan.steps, c, self._credential(plan.rows[c.integration_id]),
                    charged=self._charges.pop(c.attempt_id, ())) for c in claimed_all]
        for job in jobs:
            self.keys.inflight[job.claimed.integration_id] += 1
        self._claimed.extend(jobs)
        self._give_back(recording)

    def _claim_in(self, conn, campaign: dict, limit: int, now) -> tuple[list[claims.ClaimedAttempt], CampaignPlan]:
        """Lease due leads and start their attempts, each channel with the keys it may use.

        A campaign with caps, a ramp or a rate (or keys with a daily cap) first locks its
        counter rows and claims at most what they leave; the counters are charged in this
        same transaction, so racing workers can never overshoot a cap."""
        claimed_all: list[claims.ClaimedAttempt] = []
        plan = self._plan(conn, campaign)
        steps = plan.steps
        limits = Limits.from_limits(campaign["limits"])
        caps_of_keys = {key_id: integration_store.daily_cap_of(row) for key_id, row in plan.rows.items()}
        capped_keys = {key_id: cap for key_id, cap in caps_of_keys.items() if cap is not None}
        reservation = None
        if limits.capped or limits.rate_per_second or capped_keys:
            if claims.lock_sending_campaign(conn, campaign["id"], campaign["run"]) is None:
                self._campaigns_read_at = None
                return [], plan
            reservation = self._reserve(conn, campaign, limits, capped_keys, now)
            limit = min(limit, reservation.left)
            if limit <= 0:
                return [], plan
            for channel, keys in plan.usable.items():  # keys whose own daily cap is spent rest
                plan.usable[channel] = [k for k in keys if reservation.key_left.get(k, 1) > 0]
        choosers = {channel: self.keys.chooser((campaign["id"], campaign["run"], channel), keys,
                                               failures_in_run=channel in plan.failures_in_run)
                    for channel, keys in plan.usable.items() if keys}
        key_left = dict(reservation.key_left) if reservation else {}
        channel_caps = {channel: sum(key_left[k] for k in keys) for channel, keys in plan.usable.items()
                        if keys and all(k in key_left for k in keys)}

        def pick(step: int) -> str:
            chooser = choosers[steps[step]["channel"]]
            while True:  # a capped key with nothing left is skipped (the group's capacity bounds this)
                key = chooser.pick()
                if key not in key_left:
                    return key
                if key_left[key] > 0:
                    key_left[key] -= 1
                    return key

        defer = self._deferral(campaign, now)
        contact_cap = ContactCap.from_setting(campaign.get("contact_cap"))
        unsendable: list[tuple[int, str]] = []  # (lead id, code): failed in the claim, never sent

        def variant_of(lead: dict) -> int | None:
            position = lead["current_step"]
            return variants.variant_of(steps[position], position, lead["id"])

        def content(lead: dict, idempotency_key: str):
            composition = self._compose(campaign, steps[lead["current_step"]], lead, idempotency_key, now,
                                        variant_of(lead))
            if composition.problem is not None:
                unsendable.append((lead["id"], composition.problem[0]))
            return composition

        for steps_open, capacity in _claim_groups(steps, choosers, channel_caps):
            room = min(limit - len(claimed_all), capacity)
            if room <= 0:
                continue
            claimed = claims.claim_due_leads(
                conn, campaign_id=campaign["id"], run=campaign["run"], steps_open=steps_open, now=now,
                limit=room, owner=self.owner, lease=self.lease, pick_integration=pick,
                channel_of_step=lambda i: steps[i]["channel"], defer=defer, compose=content,
                contact_cap=contact_cap, variant_of=variant_of)
            if claimed is None:  # paused, resumed or finished meanwhile
                self._campaigns_read_at = None
                break
            claimed_all.extend(claimed)
        if reservation is not None and claimed_all:
            self._charge(conn, reservation, claimed_all, now)
        if unsendable:
            codes = Counter(code for _, code in unsendable)
            log.warning("leads failed before sending", campaign_id=campaign["id"], codes=dict(codes),
                        lead_ids=[lead_id for lead_id, _ in unsendable[:50]])
        return claimed_all, plan

    def _take_up_unsure_claims(self) -> None:
        """A claim whose COMMIT got no answer (the server crashed or the connection broke
        in between) may have committed: its leads are then leased to this worker with
        `sending` attempts nobody sends, and would end in doubt once the lease ran out
        though nobody was contacted. Those that did commit are sent now, like any claim
        (their leases renewed); the others never happened."""
        if not self._unsure:
            return
        wanted = [(campaign, plan, c) for campaign, plan, claimed in self._unsure for c in claimed]
        with self.ctx.db.begin() as conn:
            held = claims.retake_leases(conn, {c.attempt_id: c.lead["id"] for _, _, c in wanted}, self.owner,
                                        self.ctx.clock() + self.lease)
        self._unsure = []
        for campaign, plan, c in wanted:
            charged = self._charges.pop(c.attempt_id, ())
            if c.attempt_id in held:
                self.keys.inflight[c.integration_id] += 1
                job = Job(campaign, plan.steps, c, self._credential(plan.rows[c.integration_id]), charged=charged)
                self.inflight.add(asyncio.create_task(self._send(job)))
        log.warning("claim with an unanswered commit settled", committed=len(held),
                    not_committed=len(wanted) - len(held), campaign_ids=sorted({cmp["id"] for cmp, _, _ in wanted}))

    def _deferral(self, campaign: dict, now):
        """Leads are sent only inside their window (their own time zone when they have
        one): a lead claimed while its window is closed is moved to its next slot."""
        window = Window.from_schedule(campaign["schedule"])
        if window.always_open:
            return None
        verdicts: dict[str | None, datetime | None] = {}

        def defer(lead: dict) -> datetime | None:
            tz = lead_zone(lead.get("timezone"))
            if tz not in verdicts or window.randomize:
                verdicts[tz] = None if is_open(now, window, tz) else clamp(now, window, tz, self.rng)
            return verdicts[tz]

        return defer

    def _reserve(self, conn, campaign: dict, limits: Limits, capped_keys: dict[str, int], now) -> Reservation:
        """Lock the counter rows of the campaign's day and week (its time zone), of its
        rate, and of each capped key's UTC day; return what they leave."""
        cid = campaign["id"]
        tz = Window.from_schedule(campaign["schedule"]).timezone
        today = local_day(now, tz)
        day_key, week_key = claims.campaign_cap_keys(cid, today)
        rate_key = claims.campaign_rate_key(cid)
        utc_day = claims.day_period(now.astimezone(UTC).date())
        key_rows = {key_id: ("integration", key_id, utc_day) for key_id in capped_keys}
        wanted = [day_key, week_key, *key_rows.values()] + ([rate_key] if limits.rate_per_second else [])
        rows = claims.lock_counters(conn, wanted)
        left: int = UNLIMITED
        if limits.capped:
            first = self._first_days.get(cid)
            if first is None and limits.ramp is not None:
                first = claims.first_sending_day(conn, cid)
                if first is not None:
                    self._first_days[cid] = first
            b = budget(limits, today=today, first_day=first or today, sent_today=rows[day_key]["count"],
                       sent_this_week=rows[week_key]["count"])
            left = UNLIMITED if b.remaining is None else b.remaining
        rate = None
        if limits.rate_per_second:
            # A virtual schedule shared by every worker: each send books 1/rate seconds.
            per_second = float(limits.rate_per_second)
            booked = max(rows[rate_key]["until"] or now, now)
            left = min(left, rate_allowance(booked, now, per_second))
            rate = (rate_key, booked, per_second)
        key_left = {key_id: max(0, cap - rows[key_rows[key_id]]["count"]) for key_id, cap in capped_keys.items()}
        return Reservation(left, key_left, (day_key, week_key), rate)

    def _charge(self, conn, reservation: Reservation, claimed: list[claims.ClaimedAttempt], now) -> None:
        increments: dict[tuple, int] = {key: len(claimed) for key in reservation.campaign_keys}
        for c in claimed:
            if c.integration_id in reservation.key_left:
                key = ("integration", c.integration_id, claims.day_period(now.astimezone(UTC).date()))
                increments[key] = increments.get(key, 0) + 1
        claims.add_to_counters(conn, increments)
        if reservation.rate is not None:
            key, booked, per_second = reservation.rate
            claims.set_counter_until(conn, key, booked + timedelta(seconds=len(claimed) / per_second))
        for c in claimed:
            self._charges[c.attempt_id] = reservation.campaign_keys + tuple(
                k for k in increments if k[0] == "integration" and k[1] == c.integration_id)

    def _start_scheduled_if_due(self) -> None:
        # A start_at is honoured within one tick; looking more often is pointless.
        now = time.monotonic()
        if self._scheduled_at is None or now - self._scheduled_at >= self.tick:
            self._scheduled_at = now
            if campaign_service.start_due_campaigns(self.ctx):
                self._campaigns_read_at = None

    def _give_back(self, jobs: list[Job]) -> None:
        """Key-level, rate-limited and campaign-level answers sent nothing to anybody: their
        budget goes back (their own transaction, after the claim's, so counter rows are
        always locked in one order; a crash before it only leaves the cap stricter)."""
        refunds: dict[tuple, int] = {}
        for job in jobs:
            if job.result.error_class not in (ErrorClass.KEY, ErrorClass.RATE, ErrorClass.CAMPAIGN):
                continue
            for key in job.charged:
                refunds[key] = refunds.get(key, 0) - 1
        if refunds:
            with self.ctx.db.begin() as conn:
                claims.add_to_counters(conn, refunds)

    def _credential(self, row) -> Credential:
        """Decrypt once per credential version (a rotated key has a new ciphertext)."""
        cached = self._credentials.get(row["id"])
        if cached is None or cached[0] != row["credentials_encrypted"] or cached[1].config != row["config"]:
            secrets = self.ctx.box.open(row["credentials_encrypted"])
            cred = Credential(row["id"], row["provider"], row["channel"], secrets, row["config"] or {})
            self._credentials[row["id"]] = cached = (row["credentials_encrypted"], cred)
        return cached[1]

    # --- record ---------------------------------------------------------------------

    def record_unrecorded(self) -> None:
        if not self.unrecorded:
            return
        recording, self.unrecorded = self.unrecorded, []
        try:
            with self.ctx.db.begin() as conn:
                self._record_in(conn, recording, self.ctx.clock())
        except BaseException:
            self.unrecorded = recording + self.unrecorded
            raise
        self._give_back(recording)

    def _record_in(self, conn, jobs: list[Job], now) -> None:
        if not jobs:
            return
        attempt_rows, lead_rows = [], []
        key_failures: list[Job] = []
        campaign_errors: list[Job] = []
        counted_failures: list[Job] = []
        for job in jobs:
            res, lead = job.result, job.claimed.lead
            steps = job.steps
            nxt = job.claimed.step + 1
            change = apply_outcome(
                LeadProgress(LeadState(lead["state"]), lead["current_step"], lead["next_action_at"], lead["retries"]),
                step_count=len(steps), error_class=res.error_class, error_code=res.error_code, now=now,
                next_step_delay=timedelta(seconds=steps[nxt]["delay_seconds"]) if nxt < len(steps) else None,
                retry_after=timedelta(seconds=res.retry_after_seconds) if res.retry_after_seconds else None,
                opt_out=res.opt_out,
            )
            attempt_rows.append({"id": job.claimed.attempt_id, "status": change.attempt_status,
                                 "provider_message_id": res.provider_message_id, "error_code": res.error_code,
                                 "error_class": res.error_class, "error_message": res.error_message,
                                 "counted_failure": change.counted_failure})
            advanced = change.lead.current_step != lead["current_step"]
            wait = acceptance_wait(steps[job.claimed.step], steps[nxt] if nxt < len(steps) else None) \
                if res.accepted else None
            next_at = change.lead.next_action_at
            if advanced and not wait and change.lead.state is LeadState.IN_PROGRESS:
                # the next step's delay counts from this send, then is clamped into the window
                next_at = clamp(next_at, Window.from_schedule(job.campaign["schedule"]),
                                lead_zone(lead.get("timezone")), self.rng)
            lead_rows.append({"id": lead["id"], "state": change.lead.state, "current_step": change.lead.current_step,
                              "next_action_at": now + wait if wait else next_at,
                              "awaiting": "acceptance" if wait else None, "retries": change.lead.retries,
                              "attempt_no": 0 if advanced else lead["attempt_no"],
                              "last_error": change.last_error or lead.get("last_error")})
            if change.counted_failure:
                counted_failures.append(job)
            if res.error_class is ErrorClass.KEY:
                key_failures.append(job)
            elif res.error_class is ErrorClass.CAMPAIGN:
                campaign_errors.append(job)
        claims.write_outcomes(conn, attempt_rows, lead_rows, owner=self.owner, now=now,
                              claimed={job.claimed.lead["id"]: (job.claimed.step, job.claimed.attempt_id)
                                       for job in jobs})
        for job in jobs:  # "unsubscribed" and hard bounces suppress the address workspace-wide
            if job.result.opt_out or job.result.hard_bounce:
                suppress_refused_address(conn, workspace_id=job.campaign["workspace_id"],
                                         campaign_id=job.campaign["id"], lead=job.claimed.lead, channel=job.channel,
                                         opt_out=job.result.opt_out, hard_bounce=job.result.hard_bounce, now=now)
        for job in key_failures:
            log.warning("key failed", campaign_id=job.campaign["id"], integration_id=job.claimed.integration_id,
                        lead_id=job.claimed.lead["id"], attempt_id=job.claimed.attempt_id,
                        error_code=job.result.error_code, health_event=job.result.health_event)
            if job.result.health_event:  # the account itself is gone: out of every key pool
                if integration_store.apply_health_event(conn, job.claimed.integration_id, job.result.health_event):
                    # ...and held at once in every campaign it leaves without a key (issue 5)
                    hold_after_health_change(conn, job.claimed.integration_id, now,
                                             Actor.system(f"health:{job.result.health_event}"))
            integration_store.mark_key_failed(conn, job.campaign["id"], job.campaign["run"],
                                              job.claimed.integration_id, job.result.error_code,
                                              job.result.error_message, now)
        for job in {(j.campaign["id"], j.channel): j for j in key_failures}.values():
            detectors.hold_if_all_keys_failed(conn, job.campaign, job.steps, job.channel, now)
        for job in {j.campaign["id"]: j for j in campaign_errors}.values():
            detectors.campaign_level_error(conn, job.campaign, job.steps, job.claimed.step, job.result, now)
        # Only a failure can push the window over its threshold.
        for job in {(j.campaign["id"], j.channel): j for j in counted_failures}.values():
            detectors.hold_if_failure_rate_high(conn, job.campaign, job.steps, job.channel, now)
        for job in jobs:
            if job.result.error_class is ErrorClass.RATE:
                wait = timedelta(seconds=job.result.retry_after_seconds or 1)
                self.cooling[job.claimed.integration_id] = max(self.cooling.get(job.claimed.integration_id, now),
                                                               now + wait)

    # --- housekeeping ---------------------------------------------------------------

    def settle_campaigns(self) -> None:
        """When idle: finish campaigns whose leads are all terminal, hold channels whose due
        leads have no usable key, and pause campaigns that nothing can move. Which campaigns
        need one of these is judged from reads of all of them at once (a few statements
        however many wait); each of those then settles in its own transaction, which looks
        again under its locks."""
        now = self.ctx.clock()
        sending = self._sending_campaigns(fresh=True)
        if not sending:
            return
        ids = [c["id"] for c in sending]
        with self.ctx.db.begin() as conn:
            metrics, holds = counts.metrics_of(conn, ids), campaign_store.holds_of(conn, ids)
            pools = integration_store.pools_of(conn, sending)
            steps = {c["id"]: self._steps_of(conn, c) for c in sending}
        for campaign in sending:
            cid = campaign["id"]
            held = {h["channel"]: h["reason"] for h in holds[cid]}
            leads = {state: metrics[cid].get(f"lead:{state}", 0) for state in LeadState}
            done = sum(leads.values()) > 0 and not any(leads[state] for state in UNFINISHED_LEAD_STATES)
            waiting = channels_at(steps[cid], counts.steps_in(metrics[cid], WORKABLE_LEAD_STATES))
            empty = any(not any(pool_member(r).usable for r in pools[cid] if r["channel"] == channel)
                        for channel in waiting - set(held))
            if done or empty or (held and pause_reason_for(held, waiting)):
                with self.ctx.db.begin() as conn:
                    self._settle(conn, campaign, steps[cid], now)

    def _settle(self, conn, campaign: dict, steps: list[dict], now) -> None:
        held = {h["channel"] for h in campaign_store.get_holds(conn, campaign["id"])}
        waiting = due_channels(conn, campaign["id"], steps) - held
        pools = key_pools(conn, campaign, waiting, run=campaign["run"])
        for channel, members in sorted(pools.items()):
            if not any(m.usable for m in members):
                detectors.hold_empty_pool(conn, campaign, channel, members, now)
        pause_if_nothing_can_run(conn, campaign["id"], steps, now, Actor.system("key_pool"))
        detectors.finish_if_done(conn, campaign["id"], now)

    def _recover_if_due(self) -> None:
        now = time.monotonic()
        if self._recovered_at is not None and now - self._recovered_at < self.tick:
            return
        # The lease scan reads unindexed lease columns (an index there would cost every claim
        # its HOT update), so it runs a few times per lease: a dead worker's leads are
        # recovered at most a quarter lease late.
        if self._leases_checked_at is None or now - self._leases_checked_at >= self.lease.total_seconds() / 4:
            self._leases_checked_at = now
            for job in self.recover_expired_leases():  # re-sends with the same idempotency key
                self.keys.inflight[job.claimed.integration_id] += 1
                self.inflight.add(asyncio.create_task(self._send(job)))
        self._recovered_at = now
        sending = self._sending_campaigns()  # read before the transaction: one connection at a time
        if sending:
            with self.ctx.db.begin() as conn:  # on the awaiting index, by campaign
                claims.expire_acceptance_waits(conn, [c["id"] for c in sending], self.ctx.clock())

    def recover_expired_leases(self) -> list[Job]:
        """A worker died mid-send: its leads' leases expire. A lead without an unfinished
        attempt is simply released. One whose attempt may have reached the provider is
        re-sent with the same idempotency key where the provider deduplicates by it (and
        the campaign is still sending on a usable key): the returned jobs, leased to this
        worker. Otherwise it becomes in doubt and waits for a person (contacting twice is
        worse than asking)."""
        now = self.ctx.clock()
        with self.ctx.db.begin() as conn:
            expired = claims.expired_leases(conn, now)
            if not expired:
                return []
            doubtful = [r for r in expired if r["attempt_id"] is not None]
            claims.release_leads(conn, [r["id"] for r in expired if r["attempt_id"] is None])
            resend = self._resend_deduplicated(conn, doubtful, now)
            taken = {job.claimed.lead["id"] for job in resend}
            doubtful = [r for r in doubtful if r["id"] not in taken]
            claims.mark_in_doubt(conn, [r["id"] for r in doubtful], [r["attempt_id"] for r in doubtful], now)
            per_campaign: dict[str, list[str]] = {}
            for r in doubtful:
                per_campaign.setdefault(r["campaign_id"], []).append(str(r["id"]))
            for campaign_id, ids in per_campaign.items():
                mine = [r for r in doubtful if r["campaign_id"] == campaign_id][:50]
                log.warning("leads in doubt", campaign_id=campaign_id, leads=len(ids),
                            lead_ids=[r["id"] for r in mine], attempt_ids=[r["attempt_id"] for r in mine])
                campaign_store.add_timeline(conn, campaign_id, now=now, action="leads_in_doubt", actor_type="system",
                                            actor_id="lease_recovery", details={"leads": len(ids),
                                                                                "lead_ids": ids[:50]})
        log.warning("expired leases recovered", released=len(expired) - len(doubtful) - len(resend),
                    in_doubt=len(doubtful), resent=len(resend),
                    campaign_ids=sorted({str(r["campaign_id"]) for r in expired}))
        for job in resend:
            log.info("attempt re-sent with its idempotency key", campaign_id=job.campaign["id"],
                     lead_id=job.claimed.lead["id"], attempt_id=job.claimed.attempt_id,
                     integration_id=job.claimed.integration_id)
        return resend

    def _dedupes(self, provider: str, config: dict) -> bool:
        adapter = self.adapters.get(provider)
        per_config = getattr(adapter, "dedupes", None)
        if callable(per_config) and per_config(config or {}):
            return True
        return bool(getattr(adapter, "dedupes_by_idempotency_key", False))

    def _resend_deduplicated(self, conn, doubtful: list[dict], now) -> list[Job]:
        rows = [r for r in recovery.unfinished_attempts(conn, [d["attempt_id"] for d in doubtful])
                if r["campaign_status"] == Status.SENDING and r["enabled"] and r["health"] == "active"
                and self._dedupes(r["provider"], r["config"])]
        leads = {lead["id"]: lead for lead in recovery.take_over(conn, [r["lead_id"] for r in rows], self.owner,
                                                                 now + self.lease, now)}
        jobs = []
        for r in rows:
            campaign = dict(campaign_store.get_campaign_by_id(conn, r["campaign_id"]))
            integration = integration_store.get_integration(conn, campaign["workspace_id"], r["integration_id"])
            claimed = claims.ClaimedAttempt(r["id"], leads[r["lead_id"]], r["step"], r["integration_id"],
                                            r["idempotency_key"])
            jobs.append(Job(campaign, self._steps_of(conn, campaign), claimed, self._credential(integration)))
        return jobs
