"""Holds on a campaign's channels, and the pause they lead to (DESIGN.md §4).

Shared by the engine's detectors and by start/resume, so the rule lives in one place.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from drumbeat.domain.gates import PoolMember
from drumbeat.domain.lifecycle import Action, Status, transition
from drumbeat.domain.reasons import PauseReason, pause_reason_for
from drumbeat.services.context import Actor
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import integrations as integration_store
from drumbeat.store.leads import current_steps


def due_channels(conn: Connection, campaign_id: str, steps: list[dict]) -> set[str]:
    return {steps[i]["channel"] for i in current_steps(conn, campaign_id) if i < len(steps)}


def key_pools(conn: Connection, campaign, channels: set[str], *, run: int | None = None) -> dict[str, list[PoolMember]]:
    """Each channel's key pool; with `run`, keys failed in that run are marked."""
    pools: dict[str, list[PoolMember]] = {channel: [] for channel in channels}
    for r in integration_store.pool_rows(conn, campaign, channels, run):
        pools[r["channel"]].append(pool_member(r))
    return pools


def pool_member(row) -> PoolMember:
    return PoolMember(row["id"], row["health"], row["enabled"], bool(row["failed_in_run"]))


def place_hold(conn: Connection, campaign_id: str, channel: str, reason: PauseReason, details: dict,
               now: datetime, actor: Actor) -> bool:
    placed = campaign_store.place_hold(conn, campaign_id, channel, reason, details, now)
    if placed:
        campaign_store.add_timeline(conn, campaign_id, now=now, action="hold_placed", reason=reason,
                                    actor_type=actor.type, actor_id=actor.id,
                                    details={"channel": channel, **details})
    return placed


def lift_hold(conn: Connection, campaign_id: str, hold: dict, now: datetime, actor: Actor) -> None:
    campaign_store.lift_hold(conn, campaign_id, hold["channel"])
    campaign_store.add_timeline(conn, campaign_id, now=now, action="hold_lifted", reason=hold["reason"],
                                actor_type=actor.type, actor_id=actor.id, details={"channel": hold["channel"]})


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
                                           actor_id=actor.id, details=details)
