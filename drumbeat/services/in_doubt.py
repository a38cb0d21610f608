"""In-doubt attempts settled by the provider's own records, and the in_doubt_policy
(DESIGN.md §3 and §9, API.md v1.1; the rules in domain.in_doubt).

- `settle_by_status`: a status that names an attempt (its key echoed by the provider)
  settles it while it is still `sending` or already `in_doubt`: accepted, the lead goes on
  exactly as if the answer had come (no second send, the next step planned); failed, by
  its error class. An attempt of another integration (or workspace) is not found, so its
  status is ignored. Whichever of the status and the worker's answer is written second
  changes nothing (both write only an unsettled attempt; the lead moves only while it
  still waits on this attempt).
- `sweep`: the sweeper's part: Twilio in-doubt attempts are looked up
  (domain.in_doubt.match_lookup), and those nothing settled are judged once their silence
  has passed: retried once (`retry_after_silence`, on an integration whose statuses
  arrive) or left for a person. The timeline and `lead.in_doubt` events say which.
"""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import structlog

from drumbeat.channels import twilio
from drumbeat.channels.base import Credential
from drumbeat.channels.errors import TABLES
from drumbeat.channels.inbound import TWILIO_STATUS, StatusEvent
from drumbeat.channels.transport import provider_client
from drumbeat.domain.errors import ErrorClass
from drumbeat.domain.in_doubt import (
    ProviderMessage,
    Resolution,
    in_doubt_since,
    lead_after_answer,
    match_lookup,
    sweep_verdict,
    workable_state,
)
from drumbeat.domain.leads import WORKABLE_LEAD_STATES, AttemptStatus, LeadState
from drumbeat.domain.messages import compose, needs_unsubscribe_url
from drumbeat.services.context import Context
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import in_doubt as store

log = structlog.get_logger()

ACCEPTED = ("sent", "delivered", "read")
PROVIDER_STATUS_ACTOR = "provider_status"
LOOKUP_ACTOR = "lookup"
POLICY_ACTOR = "in_doubt_policy"
EVENTS_KEPT = timedelta(days=7)


def failed_class(error_code: str | None) -> ErrorClass:
    """A failed status's class: its code's, where the provider's table knows it; else the
    recipient could not be reached (lead-level), as a failed receipt always was."""
    if error_code:
        table = TABLES.get(error_code.split(":", 1)[0], {})
        if error_code in table:
            return table[error_code]
    return ErrorClass.LEAD


def settle_by_status(conn, integration_id: str, event: StatusEvent, now: datetime, *,
                     actor: str = PROVIDER_STATUS_ACTOR) -> int | None:
    """Settle the unsettled attempt the status names (1), or None when it names none of
    this integration's still unsettled: the ordinary receipt path then applies."""
    if not event.attempt_key:
        return None
    attempt = store.attempt_by_key(conn, integration_id, event.attempt_key)
    if attempt is None or attempt["status"] not in store.UNSETTLED:
        return None
    return _settle(conn, attempt, event.status, event.message_id, event.error_code, event.error_message, now,
                   actor)


def _settle(conn, attempt: dict, status: str, message_id: str | None, error_code: str | None,
            error_message: str | None, now: datetime, actor: str) -> int:
    lead = store.lead_for_settling(conn, attempt["lead_id"])
    campaign = campaign_store.get_campaign_by_id(conn, attempt["campaign_id"])
    steps = campaign_store.get_steps(conn, attempt["campaign_id"])
    accepted = status in ACCEPTED
    error_class = None if accepted else failed_class(error_code)
    was_in_doubt = attempt["status"] == AttemptStatus.IN_DOUBT
    # The lead still waits on this attempt: leased for it (sending), in doubt on its step,
    # or retried by a person or the policy but the retry not claimed yet (it is dropped:
    # the first send was answered).
    waiting = lead is not None and lead["current_step"] == attempt["step"] and (
        (lead["state"] == LeadState.IN_DOUBT and was_in_doubt)
        or (lead["state"] in WORKABLE_LEAD_STATES and not store.later_attempt(conn, lead["id"], attempt["id"])))
    if waiting:
        fields, attempt_status, counted = lead_after_answer(lead, steps, campaign["schedule"],
                                                            error_class=error_class, error_code=error_code,
                                                            now=now, rng=random.Random())
    else:
        attempt_status, counted = (AttemptStatus.SENT, False) if accepted else (AttemptStatus.FAILED, True)
    if accepted:
        attempt_status = AttemptStatus(status)
    resolution = Resolution.LOOKUP if actor == LOOKUP_ACTOR else Resolution.PROVIDER_STATUS
    if not store.settle_attempt(conn, attempt["id"], status=attempt_status, now=now,
                                resolution=resolution if was_in_doubt else None, provider_message_id=message_id,
                                error_code=None if accepted else error_code,
                                error_class=None if accepted else error_class,
                                error_message=None if accepted else error_message, counted_failure=counted):
        return 0
    if waiting:
        store.move_lead(conn, lead["id"], fields, now)
    lease_over = lead is not None and lead.get("lease_expires_at") is not None and lead["lease_expires_at"] < now
    if was_in_doubt or lease_over:
        campaign_store.add_timeline(conn, attempt["campaign_id"], now=now, action="in_doubt_settled",
                                    actor_type="system", actor_id=actor, details={
                                        "outcome": "settled", "by": actor, "status": status,
                                        "leads": 1, "lead_ids": [str(attempt["lead_id"])],
                                        "attempt_id": str(attempt["id"]), "lead_moved": waiting})
    return 1


# --- the sweeper's part -------------------------------------------------------------------

@dataclass
class InDoubtReport:
    looked_up: int = 0  # Twilio attempts whose messages were read
    settled: list[int] = field(default_factory=list)  # lead ids settled by a look-up
    retried: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)


def sweep(ctx: Context, *, lookup_timeout: float | None = None) -> InDoubtReport:
    """Look up the Twilio in-doubt attempts, then judge every in-doubt attempt nothing
    settled whose silence has passed."""
    report = InDoubtReport()
    with ctx.db.connect() as conn:
        rows = store.unjudged(conn)
        store_leads = store.lead_fields(conn, sorted({r["lead_id"] for r in rows}))
        steps = campaign_store.steps_of(conn, sorted({r["campaign_id"] for r in rows})) if rows else {}
    if not rows:
        _prune(ctx)
        return report
    lookups = [r for r in rows if r["provider"] == "twilio" and r["step"] < len(steps[r["campaign_id"]])
               and steps[r["campaign_id"]][r["step"]]["channel"] == "sms" and r["lead_id"] in store_leads]
    found = _look_up(ctx, lookups, store_leads, lookup_timeout or ctx.probe_timeout_seconds)
    report.looked_up = len(lookups)
    now = ctx.clock()
    settled: set[int] = set()
    for row in lookups:
        message = found.get(row["id"])
        if message is None:
            continue
        with ctx.db.begin() as conn:
            attempt = store.attempt_by_key(conn, row["integration_id"], row["idempotency_key"])
            if attempt is None or attempt["status"] != AttemptStatus.IN_DOUBT:
                continue
            status = TWILIO_STATUS.get(message.status or "", "sent")
            code = None
            if _settle(conn, attempt, status, message.sid, code, None, ctx.clock(), LOOKUP_ACTOR):
                settled.add(row["id"])
                report.settled.append(row["lead_id"])
    judged: dict[tuple[str, Resolution], list[dict]] = {}
    with ctx.db.connect() as conn:
        for row in rows:
            if row["id"] in settled:
                continue
            verdict = sweep_verdict(policy=row["in_doubt_policy"], silence_seconds=row["in_doubt_silence_seconds"],
                                    doubted_since=in_doubt_since(row["lease_expires_at"], row["updated_at"]),
                                    now=now, statuses_since=row["last_status_at"],
                                    retried_before=store.retried_before(conn, row["lead_id"], row["step"]))
            if verdict is not None:
                judged.setdefault((row["campaign_id"], verdict), []).append(row)
    for (campaign_id, verdict), chosen in sorted(judged.items()):
        with ctx.db.begin() as conn:
            moved = _apply_verdict(conn, verdict, chosen, ctx.clock())
            if not moved:
                continue
            (report.retried if verdict is Resolution.RETRIED else report.left).extend(moved)
            no_statuses = sum(1 for r in chosen if r["lead_id"] in moved and r["last_status_at"] is None)
            campaign_store.add_timeline(conn, campaign_id, now=ctx.clock(), action=f"in_doubt_{verdict}",
                                        actor_type="system", actor_id=POLICY_ACTOR, details={
                                            "outcome": "retried" if verdict is Resolution.RETRIED
                                            else "left_for_a_person",
                                            "policy": chosen[0]["in_doubt_policy"], "leads": len(moved),
                                            "lead_ids": [str(i) for i in moved[:50]],
                                            **({"without_provider_statuses": no_statuses} if no_statuses else {})})
    if report.settled or report.retried or report.left:
        log.info("in-doubt attempts judged", settled_by_lookup=len(report.settled), retried=len(report.retried),
                 left_for_a_person=len(report.left))
    _prune(ctx)
    return report


def _apply_verdict(conn, verdict: Resolution, rows: list[dict], now: datetime) -> list[int]:
    """Retry (the lead workable again, due now, the attempt kept as the record) or leave
    (noted, so it is judged once); only leads still in doubt on that step. Their ids."""
    moved = []
    for row in rows:
        lead = store.lead_for_settling(conn, row["lead_id"])
        if lead is None or lead["state"] != LeadState.IN_DOUBT or lead["current_step"] != row["step"]:
            continue
        attempt = store.attempt_by_key(conn, row["integration_id"], row["idempotency_key"]) \
            if row["integration_id"] else None
        if attempt is not None and (attempt["status"] != AttemptStatus.IN_DOUBT):
            continue
        if verdict is Resolution.RETRIED:
            store.move_lead(conn, lead["id"], {"state": workable_state(row["step"]), "next_action_at": now,
                                               "retries": 0, "awaiting": None}, now)
        store.mark_resolution(conn, [row["id"]], verdict, now)
        moved.append(lead["id"])
    return moved


def _look_up(ctx: Context, rows: list[dict], leads: dict[int, dict], timeout: float) -> dict[int, ProviderMessage]:
    """attempt id -> the one message of the provider that is the attempt's, for those that
    have exactly one (reads grouped by integration, recipient and day, concurrently)."""
    if not rows:
        return {}
    links = ctx.unsubscribe_links()
    with ctx.db.connect() as conn:
        steps = campaign_store.steps_of(conn, sorted({r["campaign_id"] for r in rows}))
    wanted: dict[tuple, list[tuple[dict, str]]] = {}
    credentials: dict[str, Credential] = {}
    for row in rows:
        lead = leads[row["lead_id"]]
        step = steps[row["campaign_id"]][row["step"]]
        url = links.url(row["workspace_id"], lead["id"], row["created_at"].astimezone(UTC).date()) \
            if links is not None and needs_unsubscribe_url(step) else None
        composition = compose(step, lead, idempotency_key=row["idempotency_key"], unsubscribe_url=url)
        if composition.message is None or not lead.get("phone"):
            continue
        if row["integration_id"] not in credentials:
            credentials[row["integration_id"]] = Credential(row["integration_id"], "twilio", "sms",
                                                            ctx.box.open(row["credentials_encrypted"]),
                                                            row["config"] or {})
        day = row["created_at"].astimezone(UTC).date()
        wanted.setdefault((row["integration_id"], composition.message.to, day), []).append(
            (row, composition.message.body))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="in-doubt-lookups") as pool:
        lists = pool.submit(asyncio.run, _read_all(credentials, list(wanted), timeout)).result()
    out: dict[int, ProviderMessage] = {}
    for key, attempts in wanted.items():
        messages = lists.get(key)
        if messages is None:
            continue
        for row, body in attempts:
            sender = str((row["config"] or {}).get("from") or "")
            lease_until = row["lease_expires_at"] or row["updated_at"]
            match = match_lookup(messages, body=body, sender=sender, started_at=row["created_at"],
                                 lease_until=lease_until)
            if match is not None:
                out[row["id"]] = match
    return out


async def _read_all(credentials: dict[str, Credential], keys: list[tuple], timeout: float) -> dict:
    async with provider_client(min(8, len(keys)), httpx.Timeout(timeout)) as http:
        gate = asyncio.Semaphore(8)

        async def read(key):
            integration_id, to, day = key
            async with gate:
                try:
                    result = await asyncio.wait_for(
                        twilio.find_messages(http, credentials[integration_id], to=to, day=day), timeout)
                except TimeoutError:
                    return key, None
            return key, result if isinstance(result, list) else None

        results = await asyncio.gather(*(read(k) for k in keys))
    return dict(results)


def _prune(ctx: Context) -> None:
    with ctx.db.begin() as conn:
        store.prune_events(conn, ctx.clock() - EVENTS_KEPT)
