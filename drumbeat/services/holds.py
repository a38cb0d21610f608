"""Holds on a campaign's channels, and the pause they lead to (DESIGN.md §4).

Shared by the engine's detectors and by start/resume, so the rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Connection, select

from drumbeat.channels.errors import key_mark_kind
from drumbeat.domain.gates import (
    TEMPLATE_CHANNEL,
    GateReport,
    PoolMember,
    TemplateFact,
    empty_pool_reason,
    evaluate_gates,
    sweep_holds,
    template_facts,
)
from drumbeat.domain.key_checks import KeyMark, ProbeResult
from drumbeat.domain.lifecycle import Action, Status, transition
from drumbeat.domain.messages import is_whatsapp_template
from drumbeat.domain.reasons import (
    AUTO_LIFT_WINDOW_HOURS,
    AUTO_LIFTABLE,
    MAX_AUTO_LIFTS,
    PauseReason,
    pause_reason_for,
)
from drumbeat.services.context import Actor
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import integrations as integration_store
from drumbeat.store import templates as template_store
from drumbeat.store.leads import current_steps
from drumbeat.store.tables import integrations as integrations_table
from drumbeat.store.workspaces import get_workspace

log = structlog.get_logger()


def due_channels(conn: Connection, campaign_id: str, steps: list[dict]) -> set[str]:
    return channels_at(steps, current_steps(conn, campaign_id))


def channels_at(steps: list[dict], positions) -> set[str]:
    """The channels of these step positions (a position past the last step has none)."""
    return {steps[i]["channel"] for i in positions if i < len(steps)}


def key_pools(conn: Connection, campaign, channels: set[str], *, run: int | None = None,
              marks: bool = False) -> dict[str, list[PoolMember]]:
    """Each channel's key pool; with `run`, keys failed in that run are flagged; with
    `marks`, keys failed in the campaign's current run carry their mark (KeyMark: code,
    message, whether a probe may clear it, whether a person answered it), as a start or
    resume weighs them (domain.key_checks)."""
    pools: dict[str, list[PoolMember]] = {channel: [] for channel in channels}
    failures = integration_store.failed_keys(conn, campaign["id"], campaign["run"]) if marks else {}
    for r in integration_store.pool_rows(conn, campaign, channels, campaign["run"] if marks else run):
        pools[r["channel"]].append(pool_member(r, failures.get(r["id"])))
    return pools


def pool_member(row, failure: dict | None = None) -> PoolMember:
    mark = None
    if failure is not None:
        updated = row.get("credentials_updated_at")
        mark = KeyMark(row["id"], row["label"], failure["error_code"], failure["error_message"],
                       key_mark_kind(failure["error_code"]), answered=updated is not None and updated > failure["at"])
    return PoolMember(row["id"], row["health"], row["enabled"], bool(row["failed_in_run"]), mark)


def place_hold(conn: Connection, campaign_id: str, channel: str, reason: PauseReason, details: dict,
               now: datetime, actor: Actor) -> bool:
    placed = campaign_store.place_hold(conn, campaign_id, channel, reason, details, now)
    if placed:
        campaign_store.add_timeline(conn, campaign_id, now=now, action="hold_placed", reason=reason,
                                    actor_type=actor.type, actor_id=actor.id, token_id=actor.token_id,
                                    details={"channel": channel, **details})
    return placed


def lift_hold(conn: Connection, campaign_id: str, hold: dict, now: datetime, actor: Actor) -> None:
    campaign_store.lift_hold(conn, campaign_id, hold["channel"])
    campaign_store.add_timeline(conn, campaign_id, now=now, action="hold_lifted", reason=hold["reason"],
                                actor_type=actor.type, actor_id=actor.id, token_id=actor.token_id,
                                details={"channel": hold["channel"]})


def pause_if_nothing_can_run(conn: Connection, campaign_id: str, steps: list[dict], now: datetime,
                             actor: Actor) -> bool:
    """Move a sending campaign to paused when every channel its leads wait on is held."""
    campaign = campaign_store.get_campaign_by_id(conn, campaign_id)
    if campaign is None or campaign["status"] != Status.SENDING:
        return False
    held = {h["channel"]: h["reason"] for h in campaign_store.get_holds(conn, campaign_id)}
    if not held:
        return False
    reason = pause_reason_for(held, due_channels(conn, campaign_id, steps))
    if reason is None:
        return False
    details = {"holds": [{"channel": c, "reason": r} for c, r in sorted(held.items())]}
    for hold in campaign_store.get_holds(conn, campaign_id):
        if hold["reason"] == reason:
            details.update(hold["details"])
            details["channel"] = hold["channel"]
            break
    t = transition(campaign["status"], Action.AUTO_PAUSE, reason=reason)
    return campaign_store.apply_transition(conn, campaign_id, t, now=now, actor_type=actor.type,
                                           actor_id=actor.id, details=details, token_id=actor.token_id)


def failing_keys(conn: Connection, campaign_id: str, run: int, members: list[PoolMember]) -> list[dict]:
    """`pause_details.keys` (API.md v1.1): each key of the pool with its label and the
    key-level error it answered in the run (code, the provider's message as the adapter
    masked it, when), null for a key that did not answer one (disabled, say)."""
    failed = integration_store.failed_keys(conn, campaign_id, run)
    labels = integration_store.labels_of(conn, [m.integration_id for m in members if m.integration_id not in failed])
    out = []
    for m in members:
        f = failed.get(m.integration_id)
        out.append({"integration_id": m.integration_id,
                    "label": f["label"] if f else labels.get(m.integration_id),
                    "code": f["error_code"] if f else None, "message": f["error_message"] if f else None,
                    "at": f["at"].astimezone(UTC).isoformat() if f else None,
                    # auth: a resume's connection test may clear it; account: a person must (issue 21)
                    "kind": key_mark_kind(f["error_code"]).value if f else None})
    return out


def hold_if_all_keys_failed(conn, campaign: dict, steps: list[dict], channel: str, now) -> None:
    """All keys failed: every key in the channel's pool answered a key-level error in this run."""
    fresh = campaign_store.get_campaign_by_id(conn, campaign["id"])
    if fresh["run"] != campaign["run"]:
        return  # a resume started a new run meanwhile; its keys start fresh
    members = key_pools(conn, fresh, {channel}, run=fresh["run"])[channel]
    if any(m.usable for m in members):
        return
    details = {"channel": channel, "keys": failing_keys(conn, campaign["id"], campaign["run"], members)}
    reason = empty_pool_reason(members)
    actor = Actor.system(reason.value)
    if place_hold(conn, campaign["id"], channel, reason, details, now, actor):
        log.warning("channel held", campaign_id=campaign["id"], channel=channel, reason=reason.value)
    pause_if_nothing_can_run(conn, campaign["id"], steps, now, actor)


# --- health events, the subscription and the sweeper (DESIGN.md §4, §5) ------------------

def remaining_channels(conn: Connection, campaign_id: str, steps: list[dict]) -> set[str]:
    """The channels of every step an unfinished lead still has ahead (or is on)."""
    first = campaign_store.earliest_unfinished_step(conn, campaign_id)
    return set() if first is None else {s["channel"] for s in steps[first:]}


def gate_report(conn: Connection, campaign, steps: list[dict], probes: Mapping[str, ProbeResult] | None = None,
                probe_timeout: float = 0.0) -> GateReport:
    """The one gate check (domain.gates.evaluate_gates) on the campaign as it is now, over
    every channel a step ahead of an unfinished lead uses (a hold on a channel not due yet
    is lifted only once that channel passes too). A key marked failed in the campaign's
    run counts only if `probes` (services.key_checks) cleared its mark."""
    workspace = get_workspace(conn, campaign["workspace_id"])
    return evaluate_gates(subscription_active=workspace["subscription_status"] == "active",
                          status=campaign["status"],
                          pools=key_pools(conn, campaign, remaining_channels(conn, campaign["id"], steps), marks=True),
                          templates=template_gate_facts(conn, campaign, steps), probes=probes,
                          probe_timeout=probe_timeout)


def template_gate_facts(conn: Connection, campaign, steps: list[dict]) -> list[TemplateFact]:
    """The facts of gate `template`: every WhatsApp template step still ahead of an
    unfinished lead (every step while there is no lead), against the catalogue of each
    enabled integration of the campaign's WhatsApp key pool that has one."""
    if not any(is_whatsapp_template(s["channel"], s.get("template") or {}) for s in steps):
        return []
    first = campaign_store.earliest_unfinished_step(conn, campaign["id"])
    if first is None:
        if any(campaign_store.lead_counts(conn, campaign["id"]).values()):
            return []  # every lead is done: nothing is left to send
        first = 0
    pool = [r["id"] for r in integration_store.pool_rows(conn, campaign, {TEMPLATE_CHANNEL}, None) if r["enabled"]]
    return template_facts(steps, template_store.catalogues_of(conn, pool), first=first)


def hold_after_health_change(conn: Connection, integration_id: str, now: datetime, actor: Actor) -> list[str]:
    """An integration left its key pools: hold its channel, with the reason its pool gives,
    in every sending campaign where an unfinished lead still has a step on that channel and
    no usable key is left — and only there; pause those that nothing else can move.
    Returns the campaigns held. Runs in the transaction that changed the health."""
    integration = conn.execute(select(integrations_table).where(integrations_table.c.id == integration_id)) \
        .mappings().first()
    if integration is None:
        return []
    channel = integration["channel"]
    held = []
    for campaign in campaign_store.sending_campaigns(conn, integration["workspace_id"]):
        ids = campaign["integration_ids"]
        if ids is not None and integration_id not in ids:
            continue
        steps = campaign_store.get_steps(conn, campaign["id"])
        if channel not in remaining_channels(conn, campaign["id"], steps):
            continue
        members = key_pools(conn, campaign, {channel}, run=campaign["run"])[channel]
        if any(m.usable for m in members):
            continue
        reason = empty_pool_reason(members)
        details = {"channel": channel, "integration_id": integration_id, "integration_label": integration["label"],
                   "health": integration["health"],
                   "keys": [{"integration_id": m.integration_id, "health": m.health, "enabled": m.enabled}
                            for m in members]}
        if place_hold(conn, campaign["id"], channel, reason, details, now, actor):
            held.append(campaign["id"])
        pause_if_nothing_can_run(conn, campaign["id"], steps, now, actor)
    return held


def hold_for_subscription(conn: Connection, workspace_id: str, now: datetime, actor: Actor) -> list[str]:
    """The subscription is canceled: every channel of every sending campaign is held (a
    campaign still waiting for leads has every step's channel held), so nothing is sent;
    the campaign's state is kept."""
    held = []
    for campaign in campaign_store.sending_campaigns(conn, workspace_id, for_update=True):
        steps = campaign_store.get_steps(conn, campaign["id"])
        channels = remaining_channels(conn, campaign["id"], steps)
        if not channels and not campaign_store.lead_counts(conn, campaign["id"]):
            channels = {s["channel"] for s in steps}
        for channel in sorted(channels):
            if place_hold(conn, campaign["id"], channel, PauseReason.SUBSCRIPTION_CANCELED,
                          {"channel": channel, "subscription_status": "canceled"}, now, actor):
                held.append(campaign["id"])
        pause_if_nothing_can_run(conn, campaign["id"], steps, now, actor)
    return sorted(set(held))


SWEEPER = Actor.system("sweeper")


def sweep_campaign(conn: Connection, campaign_id: str, now: datetime,
                   probes: Mapping[str, ProbeResult] | None = None) -> str | None:
    """Lift the campaign's holds whose cause is cleared (same gate check as resume), with
    actor system. Returns "resume" when the campaign is paused for such a cause and may now
    run again (the caller resumes it through the gates: a new run), else None.

    Flapping: after MAX_AUTO_LIFTS automatic lifts of one reason within the window, the
    campaign is left to a person (a paused one takes the reason `manual`)."""
    campaign = campaign_store.get_campaign_by_id(conn, campaign_id, for_update=True)
    if campaign is None or campaign["status"] not in (Status.SENDING, Status.PAUSED):
        return None
    if campaign["status"] == Status.PAUSED and PauseReason(campaign["paused_reason"]) not in AUTO_LIFTABLE:
        return None  # a person paused it, or a cause only a person clears
    steps = campaign_store.get_steps(conn, campaign_id)
    holds = {h["channel"]: h for h in campaign_store.get_holds(conn, campaign_id)}
    report = gate_report(conn, campaign, steps, probes)
    decision = sweep_holds({c: h["reason"] for c, h in holds.items()}, report)
    for channel, reason in decision.replace.items():
        lift_hold(conn, campaign_id, holds[channel], now, SWEEPER)
        place_hold(conn, campaign_id, channel, reason, {"channel": channel, "replaces": holds[channel]["reason"]},
                   now, SWEEPER)
    reasons = sorted({holds[c]["reason"] for c in decision.lift})
    flapping = [r for r in reasons if _flapping(conn, campaign_id, r, now)]
    if flapping:
        _leave_to_a_person(conn, campaign, flapping, now)
    lift = [c for c in decision.lift if holds[c]["reason"] not in flapping]
    if not lift:
        return None
    if campaign["status"] == Status.SENDING:
        for channel in lift:
            lift_hold(conn, campaign_id, holds[channel], now, SWEEPER)
        return None
    # Paused: resume only if some channel with unfinished leads would be free to send.
    still_held = {c for c, h in holds.items() if c not in lift}
    if set(report.open_channels) - still_held or not report.blocked_channels and not still_held:
        return "resume"
    for channel in lift:
        lift_hold(conn, campaign_id, holds[channel], now, SWEEPER)
    return None


def _flapping(conn: Connection, campaign_id: str, reason: str, now: datetime) -> bool:
    since = now - timedelta(hours=AUTO_LIFT_WINDOW_HOURS)
    lifts = set(campaign_store.system_entries_since(conn, campaign_id, action="hold_lifted", reason=reason,
                                                    actor_id=SWEEPER.id, since=since))
    return len(lifts) >= MAX_AUTO_LIFTS  # lifts in one sweep share one instant: counted once


def _leave_to_a_person(conn: Connection, campaign, reasons: list[str], now: datetime) -> None:
    since = now - timedelta(hours=AUTO_LIFT_WINDOW_HOURS)
    for reason in reasons:
        if campaign_store.system_entries_since(conn, campaign["id"], action="auto_lift_stopped", reason=reason,
                                               actor_id=SWEEPER.id, since=since):
            continue  # already said
        campaign_store.add_timeline(conn, campaign["id"], now=now, action="auto_lift_stopped", reason=reason,
                                    actor_type=SWEEPER.type, actor_id=SWEEPER.id,
                                    details={"auto_lifts": MAX_AUTO_LIFTS, "within_hours": AUTO_LIFT_WINDOW_HOURS,
                                             "note": "the cause keeps coming back; a person must resume"})
    if campaign["status"] == Status.PAUSED and campaign["paused_reason"] in reasons:
        t = transition(campaign["status"], Action.PAUSE, paused_reason=campaign["paused_reason"])
        campaign_store.apply_transition(conn, campaign["id"], t, now=now, actor_type=SWEEPER.type,
                                        actor_id=SWEEPER.id,
                                        details={**(campaign["pause_details"] or {}),
                                                 "previous_reason": campaign["paused_reason"],
                                                 "note": "automatic resume stopped after repeated lifts (flapping)"})
