"""Detectors: when the engine stops a channel or a campaign by itself (DESIGN.md §4).

Each runs inside the transaction that recorded the outcomes which may trip it, so a hold
is committed together with its cause.
"""

from __future__ import annotations

import structlog

from drumbeat.domain import failure_window
from drumbeat.domain.errors import SendResult
from drumbeat.domain.failure_window import DEFAULT_POLICY
from drumbeat.domain.gates import PoolMember, empty_pool_reason
from drumbeat.domain.lifecycle import Action, Status, finished_status, transition
from drumbeat.domain.reasons import PauseReason
from drumbeat.services.context import Actor
from drumbeat.services.holds import (  # noqa: F401 - hold_if_all_keys_failed: the worker calls it from here
    failing_keys,
    hold_if_all_keys_failed,
    key_pools,
    pause_if_nothing_can_run,
    place_hold,
)
from drumbeat.store import campaigns as campaign_store

log = structlog.get_logger()


def hold_if_failure_rate_high(conn, campaign: dict, steps: list[dict], channel: str, now) -> None:
    """High failure rate over the run's last counted outcomes of the channel (DESIGN.md §4)."""
    policy = {**DEFAULT_POLICY, **(campaign["failure_policy"] or {})}
    recent = campaign_store.recent_counted_outcomes(conn, campaign["id"], channel, campaign["run"],
                                                     int(policy["window"]))
    verdict = failure_window.evaluate(recent, policy)
    if not verdict.tripped:
        return
    actor = Actor.system("high_failure_rate")
    if place_hold(conn, campaign["id"], channel, PauseReason.HIGH_FAILURE_RATE,
                  {"channel": channel, **verdict.as_details()}, now, actor):
        log.warning("channel held", campaign_id=campaign["id"], channel=channel, reason="high_failure_rate",
                    failed=verdict.failed, counted=verdict.counted)
    pause_if_nothing_can_run(conn, campaign["id"], steps, now, actor)

def campaign_level_error(conn, campaign: dict, steps: list[dict], step: int, result: SendResult, now) -> None:
    """A rejected template: fail the campaign if nobody was contacted yet, else hold the channel."""
    campaign_id, channel = campaign["id"], steps[step]["channel"]
    actor = Actor.system("template_rejected")
    details = {"channel": channel, "step": step, "error_code": result.error_code,
               "error_message": result.error_message}
    fresh = campaign_store.get_campaign_by_id(conn, campaign_id)
    if fresh["status"] != Status.SENDING:
        return
    if not campaign_store.contacted_any(conn, campaign_id):
        t = transition(fresh["status"], Action.FAIL)
        campaign_store.apply_transition(conn, campaign_id, t, now=now, actor_type=actor.type, actor_id=actor.id,
                                        details=details, extra={"finished_at": now})
        log.warning("campaign failed", campaign_id=campaign_id, channel=channel, reason="template_rejected",
                    error_code=result.error_code)
        return
    if place_hold(conn, campaign_id, channel, PauseReason.TEMPLATE_REJECTED, details, now, actor):
        log.warning("channel held", campaign_id=campaign_id, channel=channel, reason="template_rejected",
                    error_code=result.error_code)
    pause_if_nothing_can_run(conn, campaign_id, steps, now, actor)

def finish_if_done(conn, campaign_id: str, now) -> None:
    """A sending campaign whose leads are all terminal is completed (or failed if nobody was contacted)."""
    # FOR UPDATE, not FOR SHARE: two workers finishing the same campaign at once would
    # otherwise both hold a share lock and deadlock upgrading it.
    fresh = campaign_store.get_campaign_by_id(conn, campaign_id, for_update=True)
    if fresh is None or fresh["status"] != Status.SENDING or campaign_store.has_unfinished_leads(conn, campaign_id):
        return
    if not campaign_store.lead_counts(conn, campaign_id):
        return  # no leads yet: a sending campaign waits for its first import
    action = finished_status(campaign_store.contacted_any(conn, campaign_id))
    t = transition(fresh["status"], action)
    campaign_store.apply_transition(conn, campaign_id, t, now=now, actor_type="system", actor_id="engine",
                                    extra={"finished_at": now})


def hold_empty_pool(conn, campaign: dict, channel: str, members: list[PoolMember], now) -> None:
    """Due leads wait on a channel with no usable key: hold it with the pool's reason."""
    details = {"channel": channel, "keys": failing_keys(conn, campaign["id"], campaign["run"], members),
               "note": "no usable integration in the channel's key pool"}
    campaign_id = campaign["id"]
    reason = empty_pool_reason(members)
    if place_hold(conn, campaign_id, channel, reason, details, now, Actor.system("key_pool")):
        log.warning("channel held", campaign_id=campaign_id, channel=channel, reason=reason.value)
