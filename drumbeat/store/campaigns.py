"""Campaign rows: reads, the compare-and-set status change, holds and the timeline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Text, and_, delete, func, insert, literal, or_, select, union_all, update

from drumbeat.domain.audit import CAMPAIGN_ACTIONS
from drumbeat.domain.leads import ACCEPTED_ATTEMPT_STATUSES, UNFINISHED_LEAD_STATES
from drumbeat.domain.lifecycle import Transition
from drumbeat.domain.templates import LEAD_LEVEL_ERRORS
from drumbeat.store import audit, counts, notifications
from drumbeat.store.claims import not_parked
from drumbeat.store.counts import CONTENT_ERROR_PREFIX
from drumbeat.store.ids import new_id
from drumbeat.store.tables import (
    CONTENT_FAILED_LEADS,
    STOP_ERRORS,
    WORKABLE_LEADS,
    attempts,
    campaigns,
    holds,
    leads,
    steps,
    timeline,
)


def insert_campaign(conn: Connection, workspace_id: str, data: dict, now: datetime) -> str:
    campaign_id = new_id()
    conn.execute(insert(campaigns).values(
        id=campaign_id, workspace_id=workspace_id, name=data["name"], status="draft",
        pause_details={}, schedule=data["schedule"], limits=data["limits"],
        failure_policy=data["failure_policy"], integration_ids=data.get("integration_ids"),
        created_at=now,
    ))
    replace_steps(conn, campaign_id, data["steps"])
    return campaign_id


def replace_steps(conn: Connection, campaign_id: str, new_steps: list[dict]) -> None:
    conn.execute(delete(steps).where(steps.c.campaign_id == campaign_id))
    conn.execute(insert(steps), [
        {"campaign_id": campaign_id, "position": i, "channel": s["channel"],
         "template": s["template"], "delay_seconds": s.get("delay_seconds", 0), "variants": s.get("variants")}
        for i, s in enumerate(new_steps)
    ])


def update_step_templates(conn: Connection, campaign_id: str, templates: dict[int, dict],
                          variants: dict[int, list[dict] | None] | None = None) -> None:
    """New templates for existing steps (and, per step given in `variants`, its variants'
    templates: the caller keeps their number and weights)."""
    for position, template in templates.items():
        values: dict = {"template": template}
        if variants is not None and variants.get(position) is not None:
            values["variants"] = variants[position]
        conn.execute(update(steps).where(steps.c.campaign_id == campaign_id, steps.c.position == position)
                     .values(**values))


def get_campaign(conn: Connection, workspace_id: str, campaign_id: str, *, for_update: bool = False):
    query = select(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.workspace_id == workspace_id)
    if for_update:
        query = query.with_for_update()
    return conn.execute(query).mappings().first()


def get_steps(conn: Connection, campaign_id: str) -> list[dict]:
    return steps_of(conn, [campaign_id])[campaign_id]


def steps_of(conn: Connection, campaign_ids: list[str]) -> dict[str, list[dict]]:
    """campaign id -> its steps in order, for several campaigns in one query."""
    out: dict[str, list[dict]] = {cid: [] for cid in campaign_ids}
    rows = conn.execute(select(steps).where(steps.c.campaign_id.in_(campaign_ids))
                        .order_by(steps.c.campaign_id, steps.c.position))
    for r in rows:
        step = {"channel": r.channel, "template": r.template, "delay_seconds": r.delay_seconds}
        if r.variants:
            step["variants"] = r.variants
        out[r.campaign_id].append(step)
    return out


def update_campaign(conn: Connection, campaign_id: str, **values) -> None:
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(**values))


def apply_transition(conn: Connection, campaign_id: str, t: Transition, *, now: datetime,
                     actor_type: str, actor_id: str | None, details: dict | None = None,
                     extra: dict | None = None, token_id: str | None = None) -> bool:
    """Compare-and-set the status: only the first of two racing actions wins.

    Returns False (and changes nothing) if the status moved since it was read.
    """
    values: dict = {"status": t.to_status, **(extra or {})}
    if t.paused_reason is not None:
        values.update(paused_reason=t.paused_reason, paused_at=now, paused_by_type=actor_type,
                      paused_by_id=actor_id, pause_details=details or {})
    else:
        values.update(paused_reason=None, paused_at=None, paused_by_type=None, paused_by_id=None,
                      pause_details={})
    guard = [campaigns.c.id == campaign_id, campaigns.c.status == t.from_status]
    result = conn.execute(update(campaigns).where(*guard).values(**values))
    if result.rowcount != 1:
        return False
    add_timeline(conn, campaign_id, now=now, from_status=t.from_status, to_status=t.to_status,
                 action=t.action, reason=t.paused_reason, actor_type=actor_type, actor_id=actor_id,
                 details=details or {}, token_id=token_id)
    return True


def add_timeline(conn: Connection, campaign_id: str, *, now: datetime, action: str, actor_type: str,
                 actor_id: str | None, from_status: str | None = None, to_status: str | None = None,
                 reason: str | None = None, details: dict | None = None, token_id: str | None = None) -> int:
    """Returns the entry's id. A campaign action (domain.audit.CAMPAIGN_ACTIONS) is also the
    audit log's, written here once for every caller; `token_id`: the user acted through the
    API with that token."""
    entry_id = conn.execute(insert(timeline).values(
        campaign_id=campaign_id, at=now, from_status=from_status, to_status=to_status, action=action,
        reason=reason, actor_type=actor_type, actor_id=actor_id, details=details or {},
    )).inserted_primary_key[0]
    # The outbox is written in the same transaction as the change (DESIGN.md §8).
    notifications.enqueue_for_timeline(conn, campaign_id, action=action, to_status=to_status, reason=reason,
                                       actor_type=actor_type, actor_id=actor_id, details=details or {}, now=now)
    if action in CAMPAIGN_ACTIONS:
        person = actor_type != "system"
        audit.insert_campaign_event(
            conn, campaign_id, at=now, actor_type="token" if person and token_id else actor_type,
            actor_id=token_id if person and token_id else actor_id, user_id=actor_id if person else None,
            action=action, details={**(details or {}), **{k: v for k, v in (("from", from_status), ("to", to_status),
                                                                             ("reason", reason)) if v is not None}})
    return entry_id


def get_timeline(conn: Connection, campaign_id: str) -> list[dict]:
    rows = conn.execute(select(timeline).where(timeline.c.campaign_id == campaign_id).order_by(timeline.c.id))
    return [dict(r) for r in rows.mappings()]


def get_holds(conn: Connection, campaign_id: str) -> list[dict]:
    return holds_of(conn, [campaign_id])[campaign_id]


def holds_of(conn: Connection, campaign_ids: list[str]) -> dict[str, list[dict]]:
    """campaign id -> its holds by channel, for several campaigns in one query."""
    out: dict[str, list[dict]] = {cid: [] for cid in campaign_ids}
    rows = conn.execute(select(holds).where(holds.c.campaign_id.in_(campaign_ids))
                        .order_by(holds.c.campaign_id, holds.c.channel))
    for r in rows.mappings():
        out[r["campaign_id"]].append(dict(r))
    return out


def place_hold(conn: Connection, campaign_id: str, channel: str, reason: str, details: dict, now: datetime) -> bool:
    """Hold a channel; False if it was already held (the first reason stays)."""
    existing = conn.execute(select(holds.c.reason).where(holds.c.campaign_id == campaign_id,
                                                         holds.c.channel == channel)).first()
    if existing is not None:
        return False
    conn.execute(insert(holds).values(campaign_id=campaign_id, channel=channel, reason=reason,
                                      since=now, details=details))
    return True


def lift_hold(conn: Connection, campaign_id: str, channel: str) -> None:
    conn.execute(delete(holds).where(holds.c.campaign_id == campaign_id, holds.c.channel == channel))


def lead_counts(conn: Connection, campaign_id: str) -> dict[str, int]:
    """Leads by state (maintained counts)."""
    return counts.lead_states(conn, [campaign_id])[campaign_id]


def has_unfinished_leads(conn: Connection, campaign_id: str) -> bool:
    query = select(leads.c.id).where(leads.c.campaign_id == campaign_id,
                                     leads.c.state.in_(UNFINISHED_LEAD_STATES)).limit(1)
    return conn.execute(query).first() is not None


def contacted_any(conn: Connection, campaign_id: str) -> bool:
    """Some send of the campaign is accepted now (its maintained counts by attempt status)."""
    by_metric = counts.metrics(conn, campaign_id)
    return any(by_metric.get(f"attempt:{status}", 0) > 0 for status in ACCEPTED_ATTEMPT_STATUSES)


def earliest_unfinished_step(conn: Connection, campaign_id: str) -> int | None:
    return min(counts.steps_with(conn, campaign_id, UNFINISHED_LEAD_STATES), default=None)


def earliest_due_of(conn: Connection, campaigns: dict[str, datetime | None],
                    limit: int) -> dict[str, list[tuple[datetime, str | None]]]:
    """campaign id (-> its parked_before) -> (next action time, own time zone) of its first
    `limit` workable leads, on the due index: those placed, else (only parked ones wait)
    the parked ones, due as soon as the sweeper places them. One statement of a branch per
    campaign, then one more for the campaigns whose only workable leads are parked."""
    out: dict[str, list[tuple[datetime, str | None]]] = {cid: [] for cid in campaigns}

    def branch(cid: str, parked_before: datetime | None):
        return (select(literal(cid).label("campaign_id"), leads.c.next_action_at, leads.c.timezone)
                .where(leads.c.campaign_id == cid, WORKABLE_LEADS, *not_parked(parked_before))
                .order_by(leads.c.next_action_at).limit(limit).subquery())

    def read(branches: list) -> None:
        if branches:  # each branch a subquery: SQLite allows no LIMIT on a member of a UNION itself
            for cid, at, tz in conn.execute(union_all(*(select(*b.c) for b in branches))):
                out[cid].append((at, tz))

    read([branch(cid, parked) for cid, parked in campaigns.items()])
    read([branch(cid, None) for cid, parked in campaigns.items() if not out[cid] and parked is not None])
    for due in out.values():
        due.sort(key=lambda item: item[0])
    return out


def first_waiting_lead(conn: Connection, campaign_id: str, parked_before: datetime | None = None) -> int | None:
    """The workable lead of the campaign that is due first (as earliest_due orders them)."""
    query = (select(leads.c.id).where(leads.c.campaign_id == campaign_id, WORKABLE_LEADS)
             .order_by(leads.c.next_action_at).limit(1))
    return conn.execute(query.where(*not_parked(parked_before))).scalar() or conn.execute(query).scalar()


def error_groups(conn: Connection, metrics: dict[str, dict[str, int]], samples: int = 5) -> dict[str, list[dict]]:
    """campaign id -> its errors grouped by code, with a text and the first few leads of
    each: counted failures by provider-qualified code (`error:<code>` of its maintained
    counts, given for each campaign; the provider's text), and leads failed before any
    send for their message's content (`content_error:<code>`, no attempt; the code's
    meaning). One statement for all the groups of all the campaigns, each group's samples
    read on the counted-failure index or the content-failure one."""
    groups = {cid: sorted([("attempt", k[len("error:"):], n) for k, n in by_metric.items() if k.startswith("error:")]
                          + [("lead", k[len(CONTENT_ERROR_PREFIX):], n) for k, n in by_metric.items()
                             if k.startswith(CONTENT_ERROR_PREFIX)],
                          key=lambda item: (-item[2], item[1]))
              for cid, by_metric in metrics.items()}
    firsts = []
    for cid, by_code in groups.items():
        for kind, code, _ in by_code:
            if kind == "lead":
                firsts.append(select(literal(cid).label("campaign_id"), literal("lead").label("kind"),
                                     literal(code).label("code"), leads.c.id, leads.c.id.label("lead_id"),
                                     literal(None, Text).label("error_message"))
                              .where(leads.c.campaign_id == cid, CONTENT_FAILED_LEADS, leads.c.last_error == code)
                              .order_by(leads.c.id).limit(samples).subquery())
                continue
            same_code = attempts.c.error_code.is_(None) if code == "" else attempts.c.error_code == code
            firsts.append(select(literal(cid).label("campaign_id"), literal("attempt").label("kind"),
                                 literal(code).label("code"), attempts.c.id, attempts.c.lead_id,
                                 attempts.c.error_message)
                          .where(attempts.c.campaign_id == cid, attempts.c.counted_failure.is_(True), same_code)
                          .order_by(attempts.c.id).limit(samples).subquery())
    found: dict[tuple[str, str, str], list] = {}
    if firsts:  # each branch a subquery: SQLite allows no LIMIT on a member of a UNION itself
        rows = conn.execute(union_all(*(select(*first.c) for first in firsts)))
        for cid, kind, code, _, lead_id, message in sorted(rows, key=lambda r: r.id):  # first by attempt/lead id
            found.setdefault((cid, kind, code), []).append((lead_id, message))
    out: dict[str, list[dict]] = {}
    for cid, by_code in groups.items():
        out[cid] = []
        for kind, code, n in by_code:
            first = found.get((cid, kind, code), [])
            message = LEAD_LEVEL_ERRORS.get(code) if kind == "lead" else next((m for _, m in first if m), None)
            out[cid].append({"code": code or None, "message": message, "count": n,
                             "sample_lead_ids": [str(lead_id) for lead_id, _ in first], "scope": "lead"})
    return out


def stop_error_groups(conn: Connection, runs: dict[str, int], samples: int = 5) -> dict[str, list[dict]]:
    """campaign id -> the key-level and campaign-level answers of its run `runs[id]`
    (errors[] scope "key" / "campaign"), grouped by class and code, most first: how many,
    the provider's text, the first few leads. One statement for all the campaigns, on
    ix_attempts_stops: such answers are few in a run (a key leaves the run at its first,
    a rejected template holds the channel)."""
    out: dict[str, list[dict]] = {cid: [] for cid in runs}
    started = [(cid, run) for cid, run in runs.items() if run]
    if not started:
        return out
    a = attempts.c
    group = (a.campaign_id, a.error_class, a.error_code)
    ranked = (select(a.campaign_id, a.error_class, a.error_code, a.lead_id, a.error_message,
                     func.row_number().over(partition_by=group, order_by=a.id).label("nth"),
                     func.count().over(partition_by=group).label("n"))
              .where(STOP_ERRORS, or_(*(and_(a.campaign_id == cid, a.run == run) for cid, run in started)))
              .subquery())
    found: dict[tuple[str, str, str | None], dict] = {}
    for r in conn.execute(select(ranked).where(ranked.c.nth <= samples).order_by(ranked.c.nth)):
        group_of = found.setdefault((r.campaign_id, r.error_class, r.error_code), {
            "code": r.error_code, "message": None, "count": r.n, "sample_lead_ids": [], "scope": r.error_class})
        group_of["message"] = group_of["message"] or r.error_message
        group_of["sample_lead_ids"].append(str(r.lead_id))
    for (cid, _, _), group_of in sorted(found.items(), key=lambda item: (item[1]["scope"] != "campaign",
                                                                         -item[1]["count"], item[0][2] or "")):
        out[cid].append(group_of)
    return out


def set_unfinished_leads(conn: Connection, campaign_id: str, state: str, now: datetime) -> int:
    """Cancel: every lead not yet terminal takes `state`."""
    result = conn.execute(update(leads).where(leads.c.campaign_id == campaign_id,
                                              leads.c.state.in_(UNFINISHED_LEAD_STATES))
                          .values(state=state, lease_owner=None, lease_expires_at=None, updated_at=now))
    return result.rowcount


def get_campaign_by_id(conn: Connection, campaign_id: str, *, for_update: bool = False, for_share: bool = False):
    """For the engine, which works across workspaces."""
    query = select(campaigns).where(campaigns.c.id == campaign_id)
    if for_update or for_share:
        query = query.with_for_update(read=for_share and not for_update)
    return conn.execute(query).mappings().first()


def recent_counted_outcomes(conn: Connection, campaign_id: str, channel: str, run: int, window: int) -> list[bool]:
    """The last `window` counted outcomes of a channel in a run, newest first (True = failed)."""
    rows = conn.execute(
        select(attempts.c.counted_failure)
        .where(attempts.c.campaign_id == campaign_id, attempts.c.run == run, attempts.c.channel == channel,
               (attempts.c.status.in_(ACCEPTED_ATTEMPT_STATUSES)) | attempts.c.counted_failure.is_(True))
        .order_by(attempts.c.id.desc()).limit(window))
    return [bool(r[0]) for r in rows]


def sending_campaigns(conn: Connection, workspace_id: str, *, for_update: bool = False) -> list[dict]:
    query = select(campaigns).where(campaigns.c.workspace_id == workspace_id, campaigns.c.status == "sending") \
        .order_by(campaigns.c.created_at, campaigns.c.id)
    if for_update:
        query = query.with_for_update()
    return [dict(r) for r in conn.execute(query).mappings()]


def campaigns_with_holds(conn: Connection, reasons: list[str]) -> list[str]:
    """Sending or paused campaigns that hold a channel for one of `reasons` (the sweeper's work)."""
    query = (select(campaigns.c.id).distinct().join(holds, holds.c.campaign_id == campaigns.c.id)
             .where(campaigns.c.status.in_(("sending", "paused")), holds.c.reason.in_(reasons)))
    return list(conn.execute(query).scalars())


def campaigns_with_parked_leads(conn: Connection) -> list[str]:
    """Sending campaigns whose re-clamp parked leads (the sweeper places them)."""
    query = select(campaigns.c.id).where(campaigns.c.status == "sending", campaigns.c.parked_before.is_not(None))
    return list(conn.execute(query).scalars())


def system_entries_since(conn: Connection, campaign_id: str, *, action: str, reason: str, actor_id: str,
                         since: datetime) -> list[datetime]:
    """When the system (`actor_id`) wrote `action` entries for `reason` since `since`."""
    rows = conn.execute(select(timeline.c.at).where(
        timeline.c.campaign_id == campaign_id, timeline.c.action == action, timeline.c.reason == reason,
        timeline.c.actor_type == "system", timeline.c.actor_id == actor_id, timeline.c.at >= since)
        .order_by(timeline.c.id))
    return [r[0] for r in rows]
