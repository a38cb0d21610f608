"""Campaign use cases: create, read, edit, and the lifecycle actions (DESIGN.md §2, §5)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from drumbeat.domain.contact_cap import ContactCap, contact_cap_wait
from drumbeat.domain.exceptions import InvalidTransition, NotFound, ResumeBlocked, ValidationFailed
from drumbeat.domain.explanations import explain
from drumbeat.domain.gates import evaluate_gates, unsubscribe_gate
from drumbeat.domain.key_checks import ProbeResult
from drumbeat.domain.leads import TERMINAL_LEAD_STATES, WORKABLE_LEAD_STATES, LeadState
from drumbeat.domain.lifecycle import Action, Status, check_cancel_confirmation, transition
from drumbeat.domain.messages import sent_texts
from drumbeat.domain.reasons import PauseReason, most_severe
from drumbeat.domain.schedule import (
    DaySlots,
    Limits,
    Window,
    budget,
    charged_days,
    day_index,
    day_stretches,
    earliest_send,
    lead_zone,
    local_day,
    next_slot,
    placement_horizon,
    plan_days,
    rate_ready_at,
    share_days,
    spread_slices,
    week_of,
    zone_openings,
)
from drumbeat.domain.templates import ATTRIBUTE_PREFIX, LEAD_FIELDS, required_variables
from drumbeat.services.context import Actor, Context, Principal
from drumbeat.services.holds import (
    SWEEPER,
    channels_at,
    due_channels,
    failing_keys,
    key_pools,
    lift_hold,
    place_hold,
    pool_member,
    template_gate_facts,
)
from drumbeat.services.key_checks import probe_marked_keys
from drumbeat.services.templates import check_against_catalogue
from drumbeat.store import campaigns as store
from drumbeat.store import claims, counts
from drumbeat.store import integrations as integration_store
from drumbeat.store import leads as lead_store
from drumbeat.store.leads import copy_leads
from drumbeat.store.tables import campaigns as campaigns_table
from drumbeat.store.workspaces import get_workspace

LEAD_STATES = [s.value for s in LeadState]
# next_send_at judges this many of the longest-waiting leads, each in its own zone: with
# leads in several zones, the first to go need not be the one waiting longest.
DUE_LEADS_JUDGED = 200


def _load(conn: Connection, principal: Principal, campaign_id: str, *, for_update: bool = False):
    row = store.get_campaign(conn, principal.workspace_id, campaign_id, for_update=for_update)
    if row is None:
        raise NotFound("campaign not found", {"id": campaign_id})
    return row


# --- reading ---------------------------------------------------------------------------

def campaign_view(conn: Connection, row, now: datetime) -> dict:
    """The campaign object of API.md, with `missing_variables` (not in a list's items: it
    reads the campaign's unfinished leads)."""
    view = campaign_views(conn, [row], now)[0]
    view["missing_variables"] = missing_variables(conn, row, view["steps"])
    return view


# Before start, and while paused, the operator sees how many leads would fail for a
# missing variable; once sending, the failures themselves are in `errors`.
MISSING_VARIABLES_IN = frozenset({Status.DRAFT, Status.SCHEDULED, Status.PAUSED})


def missing_variables(conn: Connection, row, steps: list[dict]) -> list[dict]:
    """[{"variable", "leads", "sample_lead_ids"}]: per variable a step uses without fallback,
    the unfinished leads that still have to run such a step and have no value for it (one
    statement per variable)."""
    if row["status"] not in MISSING_VARIABLES_IN:
        return []
    last_use: dict[str, int] = {}  # variable -> the last step that needs it
    for position, step in enumerate(steps):
        for variable in required_variables(sent_texts(step["channel"], step["template"])):
            if variable in LEAD_FIELDS or variable.startswith(ATTRIBUTE_PREFIX):  # as validated at create
                last_use[variable] = position
    out = []
    for variable, through in sorted(last_use.items()):
        n, sample = lead_store.leads_missing(conn, row["id"], variable, through_step=through)
        if n:
            out.append({"variable": variable, "leads": n, "sample_lead_ids": [str(i) for i in sample]})
    return out


def campaign_views(conn: Connection, rows: list, now: datetime) -> list[dict]:
    """The campaign objects of several campaigns (a list page): each part is read for all
    of them at once, so a page costs the same statements whatever its length."""
    ids = [row["id"] for row in rows]
    metrics = counts.metrics_of(conn, ids)  # one read of the maintained counts
    holds = store.holds_of(conn, ids)
    steps = store.steps_of(conn, ids)
    # The stops of the current run (key, campaign) first, then the leads' failures.
    stops = store.stop_error_groups(conn, {row["id"]: row["run"] for row in rows})
    errors = store.error_groups(conn, metrics)
    errors = {cid: stops[cid] + errors[cid] for cid in ids}
    caps = caps_of(conn, rows, now)
    sends = next_sends(conn, rows, now, steps, caps, metrics)
    return [_view(row, metrics[row["id"]], holds[row["id"]], steps[row["id"]], errors[row["id"]], caps[row["id"]],
                  sends[row["id"]]) for row in rows]


def _view(row, metrics: dict[str, int], holds: list[dict], steps: list[dict], errors: list[dict], caps: dict,
          next_send: tuple[datetime | None, str | None]) -> dict:
    leads = {s: metrics.get(f"lead:{s}", 0) for s in LEAD_STATES}
    total = sum(leads.values())
    terminal = sum(leads[s] for s in TERMINAL_LEAD_STATES)
    progress = {**leads, "total": total, "percent": round(100.0 * terminal / total, 2) if total else 0.0}
    read = metrics.get("attempt:read", 0)
    delivered = metrics.get("attempt:delivered", 0) + read
    breakdown = {
        "sent": metrics.get("attempt:sent", 0) + delivered,
        "delivered": delivered,
        "read": read,
        "replied": leads[LeadState.REPLIED],
        "failed": metrics.get("counted_failure", 0),
    }
    reason = row["paused_reason"]
    paused_by = ({"type": row["paused_by_type"], "id": row["paused_by_id"]}
                 if row["paused_by_type"] else None)
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "paused_reason": reason,
        "paused_reason_text": PauseReason(reason).text if reason else None,
        "paused_at": row["paused_at"],
        "paused_by": paused_by,
        "pause_details": row["pause_details"] or {},
        "pause_explanation": explain(reason, row["pause_details"]).as_dict() if reason else None,
        "holds": [{"channel": h["channel"], "reason": h["reason"], "since": h["since"], "details": h["details"],
                   "explanation": explain(h["reason"], h["details"], h["channel"]).as_dict()} for h in holds],
        "steps": steps,
        "schedule": row["schedule"],
        "limits": row["limits"],
        "failure_policy": row["failure_policy"],
        "integration_ids": row["integration_ids"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "next_send_at": next_send[0],
        "next_send_reason": next_send[1],
        "caps": caps,
        "progress": progress,
        "breakdown": breakdown,
        "errors": errors,
    }


def next_sends(conn: Connection, rows: list, now: datetime, steps: dict[str, list[dict]], caps: dict[str, dict],
               metrics: dict[str, dict[str, int]]) -> dict[str, tuple[datetime | None, str | None]]:
    """campaign id -> when its next send happens and, if not now, why: the earliest of the
    longest-waiting leads in its own window (a lead's own time zone, else the campaign's),
    then past days whose cap (or ramp, or the keys' own caps) is spent, or past the sends
    the rate has booked. `steps`, `caps` (caps_of: the sends charged today and this week)
    and `metrics` (counts.metrics_of) as campaign_views reads them. A few statements for
    all the campaigns together, whatever their number (the list pages)."""
    out: dict[str, tuple[datetime | None, str | None]] = {row["id"]: (None, None) for row in rows}
    sending = []
    for row in rows:
        if row["status"] == Status.SCHEDULED:
            out[row["id"]] = _scheduled_start(row, now)
        elif row["status"] == Status.SENDING:
            sending.append(row)
    due = store.earliest_due_of(conn, {row["id"]: row["parked_before"] for row in sending}, DUE_LEADS_JUDGED)
    firsts = {row["id"]: first for row in sending
              if (first := earliest_send(due[row["id"]], now, Window.from_schedule(row["schedule"]))) is not None}
    delayed = [row for row in sending if firsts.get(row["id"], (None, None))[1] == "step_delay"]
    contact_caps = {ws: ContactCap.from_setting(get_workspace(conn, ws)["contact_cap"])
                    for ws in {row["workspace_id"] for row in delayed}}
    for row in delayed:  # a lead moved later by the workspace contact cap looks like a step delay
        if (cap := contact_caps[row["workspace_id"]]) is not None:
            held_until = _contact_capped_until(conn, row, cap, now)
            if held_until is not None and held_until >= firsts[row["id"]][0]:
                firsts[row["id"]] = (held_until, "contact_cap")
    waiting = [row for row in sending if row["id"] in firsts]
    limits = {row["id"]: Limits.from_limits(row["limits"]) for row in waiting}
    ramped = [cid for cid, lim in limits.items() if lim.capped and lim.ramp]
    first_days = claims.first_sending_days(conn, ramped) if ramped else {}
    rate_untils = claims.counter_untils(conn, [claims.campaign_rate_key(cid) for cid, lim in limits.items()
                                               if lim.rate_per_second])
    paced = {row["id"]: _paced(row, firsts[row["id"]], now, limits[row["id"]], caps[row["id"]],
                               first_days.get(row["id"]), rate_untils.get(claims.campaign_rate_key(row["id"])))
             for row in waiting}
    later = _keys_capped_until(conn, waiting, steps, metrics, paced)
    for row in waiting:
        at, reason = paced[row["id"]]
        out[row["id"]] = (later[row["id"]], "integration_cap") if row["id"] in later else (at, reason)
    return out


def _scheduled_start(row, now: datetime) -> tuple[datetime | None, str | None]:
    start_at = row["schedule"].get("start_at")
    if not start_at:
        return None, None
    at = max(datetime.fromisoformat(start_at), now)
    slot = next_slot(at, Window.from_schedule(row["schedule"]))
    return slot, "window" if slot > at else None


def _paced(row, first: tuple[datetime, str | None], now: datetime, limits: Limits, caps: dict,
           first_day, rate_until: datetime | None) -> tuple[datetime, str | None]:
    """The first lead's send time (earliest_send), moved past spent days and booked sends."""
    at, reason = first
    window = Window.from_schedule(row["schedule"])
    if limits.capped:
        today = local_day(now, window.timezone)
        sent_today, sent_week = caps["today"], caps["this_week"]  # a capped campaign's counters
        first_day = (first_day if limits.ramp else None) or today
        at_day = local_day(at, window.timezone)
        used_day = sent_today if at_day == today else 0
        used_week = sent_week if week_of(at_day) == week_of(today) else 0
        plan = plan_days(at, window, limits, total=1, first_day=first_day, sent_today=used_day,
                         sent_this_week=used_week)
        spent_today = budget(limits, today=today, first_day=first_day, sent_today=sent_today,
                             sent_this_week=sent_week)
        on_day = budget(limits, today=at_day, first_day=first_day, sent_today=used_day, sent_this_week=used_week)
        # The first day with budget left; a lead in its own zone may send outside the
        # campaign's window, so only a spent day moves it.
        if plan and plan[0].opens > at and on_day.remaining == 0:
            at, reason = plan[0].opens, on_day.reason or spent_today.reason or "daily_cap"
        elif at > now and spent_today.remaining == 0:
            reason = spent_today.reason
    if limits.rate_per_second:  # the sends booked on the rate counter run until then
        ready = rate_ready_at(rate_until, now, float(limits.rate_per_second))
        if ready > now and ready >= at:
            at, reason = ready, "rate"
    return at, reason


def _contact_capped_until(conn: Connection, row, cap: ContactCap, now: datetime) -> datetime | None:
    """When the workspace contact cap lets the campaign's first waiting lead go, if it holds
    that lead back now (its person had every contact the cap allows)."""
    lead_id = store.first_waiting_lead(conn, row["id"], row["parked_before"])
    if lead_id is None:
        return None
    return contact_cap_wait(cap, claims.contacts_since(conn, row["workspace_id"], [lead_id], cap.since(now))
                            .get(lead_id, []), now)



def _keys_capped_until(conn: Connection, rows: list, steps: dict[str, list[dict]],
                       metrics: dict[str, dict[str, int]],
                       paced: dict[str, tuple[datetime, str | None]]) -> dict[str, datetime]:
    """Campaign id -> when it may send again, for those whose every usable key of every
    channel with due leads has spent its own daily cap (a UTC day) on the day it would
    send: the next UTC day's window."""
    if not rows:
        return {}
    pools = integration_store.pools_of(conn, rows)
    capped: dict[str, list[tuple[dict, int]]] = {}
    for row in rows:
        channels = channels_at(steps[row["id"]], counts.steps_in(metrics[row["id"]], WORKABLE_LEAD_STATES))
        usable = [r for r in pools[row["id"]] if r["channel"] in channels and pool_member(r).usable]
        caps = [integration_store.daily_cap_of(r) for r in usable]
        if usable and None not in caps:
            capped[row["id"]] = list(zip(usable, caps, strict=True))
    day_of = {cid: claims.day_period(paced[cid][0].astimezone(UTC).date()) for cid in capped}
    sent = claims.counter_values(conn, [("integration", r["id"], day_of[cid])
                                        for cid, keys in capped.items() for r, _ in keys])
    out = {}
    for row in rows:
        keys = capped.get(row["id"])
        if keys and all(sent.get(("integration", r["id"], day_of[row["id"]]), 0) >= cap for r, cap in keys):
            at = paced[row["id"]][0]
            midnight = datetime.combine(at.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(),
                                        tzinfo=UTC)
            out[row["id"]] = next_slot(midnight, Window.from_schedule(row["schedule"]))
    return out


def _campaign_counts(conn: Connection, row, today) -> tuple[int, int]:
    """Sends charged to the campaign's caps today and this week (its counters)."""
    day_key, week_key = claims.campaign_cap_keys(row["id"], today)
    counts = claims.counter_values(conn, [day_key, week_key])
    return counts.get(day_key, 0), counts.get(week_key, 0)


def caps_of(conn: Connection, rows: list, now: datetime) -> dict[str, dict]:
    """Today's and this week's sends against the caps, per campaign. With a cap, ramp or
    rate the counters the engine charges are shown (what the caps are held to: every
    started send, less the key-level, rate-limited and campaign-level answers given back);
    without, accepted sends since local midnight and Monday."""
    days, limits, counter_keys, accepted_starts = {}, {}, {}, {}
    for row in rows:
        cid = row["id"]
        window = Window.from_schedule(row["schedule"])
        limits[cid] = Limits.from_limits(row["limits"])
        days[cid] = today = local_day(now, window.timezone)
        if limits[cid].capped or limits[cid].rate_per_second:
            counter_keys[cid] = claims.campaign_cap_keys(cid, today)
        else:
            zone = ZoneInfo(window.timezone)
            accepted_starts[cid] = (datetime.combine(today, datetime.min.time(), tzinfo=zone),
                                    datetime.combine(week_of(today), datetime.min.time(), tzinfo=zone))
    charged = claims.counter_values(conn, [key for keys in counter_keys.values() for key in keys])
    sent = {cid: (charged.get(day, 0), charged.get(week, 0)) for cid, (day, week) in counter_keys.items()}
    sent.update(counts.accepted_since(conn, accepted_starts) if accepted_starts else {})
    ramped = [cid for cid, lim in limits.items() if lim.ramp is not None]
    first_days = claims.first_sending_days(conn, ramped) if ramped else {}
    out = {}
    for row in rows:
        cid, today, lim = row["id"], days[row["id"]], limits[row["id"]]
        ramp_cap = lim.ramp_cap(day_index(today, first_days.get(cid) or today)) if lim.ramp is not None else None
        out[cid] = {"today": sent[cid][0], "this_week": sent[cid][1], "daily_cap": lim.daily_cap,
                    "weekly_cap": lim.weekly_cap, "ramp_cap": ramp_cap}
    return out


def get_campaign(ctx: Context, principal: Principal, campaign_id: str) -> dict:
    with ctx.db.begin() as conn:
        return campaign_view(conn, _load(conn, principal, campaign_id), ctx.clock())


SORTS = {"created_at": campaigns_table.c.created_at, "name": campaigns_table.c.name,
         "status": campaigns_table.c.status}


def list_campaigns(ctx: Context, principal: Principal, *, status: str | None = None, q: str | None = None,
                   sort: str = "created_at", order: str = "desc", limit: int = 50,
                   cursor: str | None = None) -> dict:
    """Keyset-free but stable paging: the cursor is an offset into the sorted list."""
    offset = _decode_cursor(cursor)
    c = campaigns_table.c
    query = select(campaigns_table).where(c.workspace_id == principal.workspace_id)
    if status:
        query = query.where(c.status.in_(status.split(",")))
    if q:
        query = query.where(func.lower(c.name).contains(q.lower(), autoescape=True))
    if sort == "percent":
        key = (counts.lead_total_sql(c.id, TERMINAL_LEAD_STATES) * 1.0) / func.nullif(counts.lead_total_sql(c.id), 0)
    else:
        key = SORTS[sort]
    query = query.order_by(key.desc() if order == "desc" else key.asc(), c.id).offset(offset).limit(limit + 1)
    now = ctx.clock()
    with ctx.db.begin() as conn:
        rows = list(conn.execute(query).mappings())
        more = len(rows) > limit
        items = campaign_views(conn, rows[:limit], now)
    return {"items": items, "next_cursor": _encode_cursor(offset + limit) if more else None}


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        # Clamped: an absurd offset is an empty page, not a database error.
        return min(max(0, int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"])), 2**31 - 1)
    except Exception:
        raise ValidationFailed([{"field": "cursor", "message": "invalid cursor"}]) from None


def get_timeline(ctx: Context, principal: Principal, campaign_id: str) -> list[dict]:
    with ctx.db.begin() as conn:
        _load(conn, principal, campaign_id)
        return store.get_timeline(conn, campaign_id)


# --- writing ---------------------------------------------------------------------------

def create_campaign(ctx: Context, principal: Principal, data: dict) -> dict:
    now = ctx.clock()
    with ctx.db.begin() as conn:
        check_against_catalogue(conn, principal.workspace_id, data["steps"], data.get("integration_ids"))
        campaign_id = store.insert_campaign(conn, principal.workspace_id, data, now)
        store.add_timeline(conn, campaign_id, now=now, action="create", to_status=Status.DRAFT,
                           actor_type="user", actor_id=principal.user_id, token_id=principal.token_id,
                           details={"name": data["name"]})
        return campaign_view(conn, store.get_campaign(conn, principal.workspace_id, campaign_id), now)


EDITABLE_IN = frozenset({Status.DRAFT, Status.SCHEDULED, Status.PAUSED})
SETTINGS = ("name", "schedule", "limits", "failure_policy", "integration_ids")


def update_campaign(ctx: Context, principal: Principal, campaign_id: str, patch: dict) -> dict:
    """PATCH: settings in draft/scheduled/paused; steps in draft; while paused only the
    templates of the existing steps (same number and channels)."""
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = _load(conn, principal, campaign_id, for_update=True)
        status = Status(row["status"])
        if status not in EDITABLE_IN:
            raise InvalidTransition(status, "edit")
        if "steps" in patch or "integration_ids" in patch:
            check_against_catalogue(conn, principal.workspace_id,
                                    patch["steps"] if "steps" in patch else store.get_steps(conn, campaign_id),
                                    patch["integration_ids"] if "integration_ids" in patch else row["integration_ids"])
        if "steps" in patch:
            if status is Status.DRAFT:
                store.replace_steps(conn, campaign_id, patch["steps"])
            elif status is Status.PAUSED and _only_templates_changed(store.get_steps(conn, campaign_id),
                                                                     patch["steps"]):
                store.update_step_templates(conn, campaign_id, {i: s["template"] for i, s in enumerate(patch["steps"])},
                                            {i: s.get("variants") for i, s in enumerate(patch["steps"])})
            else:
                raise InvalidTransition(status, "edit_steps")
        values = {k: patch[k] for k in SETTINGS if k in patch}
        if "schedule" in values:  # start_at belongs to schedule/unschedule: kept unless the patch names it
            values["schedule"] = {"start_at": row["schedule"].get("start_at"), **values["schedule"]}
        if values:
            store.update_campaign(conn, campaign_id, **values)
        store.add_timeline(conn, campaign_id, now=now, action="edit", actor_type="user", actor_id=principal.user_id,
                           token_id=principal.token_id, details={"fields": sorted(patch)})
        return campaign_view(conn, store.get_campaign(conn, principal.workspace_id, campaign_id), now)


def _only_templates_changed(current: list[dict], new: list[dict]) -> bool:
    """Same steps, channels and delays; and the same variants with the same weights (adding,
    removing or reweighing a variant would move leads from one variant to another)."""
    return len(current) == len(new) and all(
        a["channel"] == b["channel"] and a["delay_seconds"] == b.get("delay_seconds", a["delay_seconds"])
        and _weights(a) == _weights(b)
        for a, b in zip(current, new, strict=True))


def _weights(step: dict) -> list[int] | None:
    return [v["weight"] for v in step["variants"]] if step.get("variants") else None


def schedule(ctx: Context, principal: Principal, campaign_id: str, start_at: datetime) -> dict:
    now = ctx.clock()
    if start_at <= now:
        raise ValidationFailed([{"field": "start_at", "message": "must be in the future"}])
    return _simple_action(ctx, principal, campaign_id, Action.SCHEDULE,
                          schedule_update={"start_at": start_at.isoformat()})


def unschedule(ctx: Context, principal: Principal, campaign_id: str) -> dict:
    return _simple_action(ctx, principal, campaign_id, Action.UNSCHEDULE, schedule_update={"start_at": None})


def pause(ctx: Context, principal: Principal, campaign_id: str) -> dict:
    return _simple_action(ctx, principal, campaign_id, Action.PAUSE)


def cancel(ctx: Context, principal: Principal, campaign_id: str, confirm: str | None) -> dict:
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = _load(conn, principal, campaign_id, for_update=True)
        t = transition(row["status"], Action.CANCEL)
        check_cancel_confirmation(row["name"], confirm)
        _apply(conn, row, t, now, Actor.of(principal), extra={"finished_at": now})
        canceled = store.set_unfinished_leads(conn, campaign_id, LeadState.CANCELED, now)
        store.add_timeline(conn, campaign_id, now=now, action="leads_canceled", actor_type="user",
                           actor_id=principal.user_id, token_id=principal.token_id, details={"leads": canceled})
        return campaign_view(conn, store.get_campaign(conn, principal.workspace_id, campaign_id), now)


def _simple_action(ctx: Context, principal: Principal, campaign_id: str, action: Action,
                   schedule_update: dict | None = None) -> dict:
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = _load(conn, principal, campaign_id, for_update=True)
        t = transition(row["status"], action, paused_reason=row["paused_reason"])
        extra = {"schedule": {**row["schedule"], **schedule_update}} if schedule_update is not None else None
        _apply(conn, row, t, now, Actor.of(principal), extra=extra)
        return campaign_view(conn, store.get_campaign(conn, principal.workspace_id, campaign_id), now)


def _apply(conn: Connection, row, t, now: datetime, actor: Actor, *, details: dict | None = None,
           extra: dict | None = None) -> None:
    if not store.apply_transition(conn, row["id"], t, now=now, actor_type=actor.type, actor_id=actor.id,
                                  details=details, extra=extra, token_id=actor.token_id):
        # Somebody else changed the status between our read and our write.
        current = store.get_campaign_by_id(conn, row["id"])
        raise InvalidTransition(current["status"], t.action)


def start(ctx: Context, principal: Principal, campaign_id: str) -> dict:
    return run_through_gates(ctx, campaign_id, Action.START, Actor.of(principal), principal.workspace_id)


def resume(ctx: Context, principal: Principal, campaign_id: str) -> dict:
    return run_through_gates(ctx, campaign_id, Action.RESUME, Actor.of(principal), principal.workspace_id)


def run_through_gates(ctx: Context, campaign_id: str, action: Action, actor: Actor, workspace_id: str,
                      *, keep: frozenset[str] = frozenset(), probes: Mapping[str, ProbeResult] | None = None) -> dict:
    """Start or resume through the one gate check (DESIGN.md §5): a new run begins,
    channels that pass are released, channels that fail are held; refused as a whole
    (nothing changes) when the campaign gates fail or no channel passes. Holds whose
    reason is in `keep` stay (the sweeper lifts only the causes it may clear).

    Keys marked failed in the last run are probed first (services.key_checks; `probes`
    when the caller already has the results), outside the transaction; a key whose mark
    the probe does not clear starts the new run marked again."""
    if probes is None:
        probes = probe_marked_keys(ctx, campaign_id)
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = store.get_campaign(conn, workspace_id, campaign_id, for_update=True)
        if row is None:
            raise NotFound("campaign not found", {"id": campaign_id})
        holds = store.get_holds(conn, campaign_id)
        t = transition(row["status"], action, paused_reason=row["paused_reason"], has_holds=bool(holds))
        steps = store.get_steps(conn, campaign_id)
        channels = due_channels(conn, campaign_id, steps)
        workspace = get_workspace(conn, workspace_id)
        pools = key_pools(conn, row, channels, marks=True)
        report = evaluate_gates(subscription_active=workspace["subscription_status"] == "active",
                                status=row["status"], pools=pools,
                                templates=template_gate_facts(conn, row, steps),
                                unsubscribe=unsubscribe_gate(steps, public_url_set=bool(ctx.public_url)),
                                probes=probes, probe_timeout=ctx.probe_timeout_seconds)
        if not report.may_run:
            raise ResumeBlocked(f"the campaign cannot {action.value}: a gate is closed",
                                {"gates": [g.as_dict() for g in report.gates]})
        extra: dict = {"run": row["run"] + 1}
        if action is Action.START:
            extra["started_at"] = now
        details: dict = {"gates": [g.as_dict() for g in report.gates]}
        if report.keys:
            details["keys"] = [v.as_dict() for _, v in sorted(report.keys.items())]
        if t.from_status != t.to_status:
            _apply(conn, row, t, now, actor, details=details, extra=extra)
        else:
            store.update_campaign(conn, campaign_id, **extra)
            store.add_timeline(conn, campaign_id, now=now, action=action, from_status=t.from_status,
                               to_status=t.to_status, actor_type=actor.type, actor_id=actor.id,
                               token_id=actor.token_id, details=details if report.keys else None)
        integration_store.carry_key_failures(conn, campaign_id, row["run"], row["run"] + 1, report.kept_marks)
        for hold in holds:
            if hold["channel"] not in report.blocked_channels and hold["reason"] not in keep:
                lift_hold(conn, campaign_id, hold, now, actor)
        for channel, reason in report.blocked_channels.items():
            if all(h["channel"] != channel for h in holds):
                gates = [g.as_dict() for g in report.gates if g.channel == channel and not g.ok]
                held: dict = {"gates": gates}
                if reason is PauseReason.ALL_KEYS_FAILED:  # the keys still dead, as a stop names them
                    held["keys"] = failing_keys(conn, campaign_id, row["run"] + 1, pools[channel])
                place_hold(conn, campaign_id, channel, reason, held, now, actor)
        moved = reclamp(conn, row, now)
        if moved:
            store.add_timeline(conn, campaign_id, now=now, action="reclamp", actor_type=actor.type,
                               actor_id=actor.id, details={"leads": moved})
        return campaign_view(conn, store.get_campaign(conn, workspace_id, campaign_id), now)


def reclamp(conn: Connection, row, now: datetime, *, parked_only: bool = False) -> int:
    """Start or resume (DESIGN.md §5): every lead whose next action time has passed goes
    to the next valid slots, paced by the caps and the ramp, never as a burst. The plan is
    computed here: the campaign zone's calendar days and how many sends each may take
    (less what leads already planned for that day take), each shared among the time
    zones of the leads placed that have a stretch of their window in it, so no day takes
    more than its cap whichever zones its sends go in; one statement then numbers each
    zone's leads and gives its lead k its slot.

    Only the sends of the window's next openings are placed (domain.schedule
    .PLACED_OPENINGS); the leads beyond them are parked behind the campaign's
    `parked_before`, and the sweeper places them an opening at a time (`parked_only`);
    without a cap, a randomized campaign's opening is placed a slice at a time
    (domain.schedule.spread_slices).
    A campaign open all the time without caps, rate or randomizing keeps its leads."""
    window = Window.from_schedule(row["schedule"])
    limits = Limits.from_limits(row["limits"])
    parked_before = row["parked_before"]
    if window.always_open and not limits.capped and not limits.rate_per_second and not window.randomize:
        if parked_before is not None:  # its limits changed: what waited parked is due now
            store.update_campaign(conn, row["id"], parked_before=None)
        return 0
    placing = (claims.Placing(row["id"], now, below=parked_before) if parked_only else
               claims.Placing(row["id"], now, prior=parked_before))
    today = local_day(now, window.timezone)
    sent_today, sent_week = _campaign_counts(conn, row, today)
    first = claims.first_sending_day(conn, row["id"]) if limits.ramp else None
    booked: dict = {}
    if limits.capped:  # leads already planned keep their share of each day's cap
        for hour, n in claims.booked_hours(conn, placing).items():
            day = local_day(hour, window.timezone)
            booked[day] = booked.get(day, 0) + n
    days = charged_days(now, window, limits, until=placement_horizon(now, window), first_day=first or today,
                        sent_today=sent_today, sent_this_week=sent_week, booked=booked)
    room = None if not limits.capped else sum(d.capacity for d in days)
    zones = None
    if room is None and window.randomize:
        zones = claims.placed_lead_zones(conn, placing, None)
        turn, day, opens, closes = next(day_stretches(now, window))
        slices = spread_slices(DaySlots(day, opens, closes, None, turn), now, waiting=sum(zones.values()),
                               planned=lambda lo, hi: claims.booked_between(conn, placing, lo, hi))
        if slices is not None:
            days, room, zones = slices, sum(d.capacity for d in slices), None
    if zones is None:
        zones = claims.placed_lead_zones(conn, placing, room)
    total = sum(zones.values())
    stretches = {z: zone_openings(days, now, window, lead_zone(z)) for z in zones}
    shares = share_days(days, zones, stretches)
    placed = sum(map(sum, shares.values()))
    # Leads beyond the room, or in a zone with no room left in its window, wait parked.
    still_parked = placed < total or (room is not None and total >= room)
    keep = (parked_before if parked_only else now) if still_parked else None
    if keep != parked_before:
        store.update_campaign(conn, row["id"], parked_before=keep)
    if still_parked and not parked_only:
        claims.park_due_now(conn, placing)
    if not placed:
        return 0
    gap = 1.0 / limits.rate_per_second if limits.rate_per_second else 0.0
    pace = gap and not window.randomize
    plan, ahead = [], [0] * len(days)  # ahead: the leads of the zones before in each slot
    for z, per_slot in shares.items():
        lo = 0
        for i, (n, stretch) in enumerate(zip(per_slot, stretches[z], strict=True)):
            if n:  # the zone's leads numbered lo .. lo + n - 1 go in this stretch
                # with a rate, a slot's leads of every zone are spaced as one sequence
                opens = stretch[0] + timedelta(seconds=ahead[i] * gap) if pace else stretch[0]
                plan.append({"zone": z, "lo": lo, "hi": lo + n, "opens": opens, "closes": stretch[1], "gap": gap})
                lo += n
                ahead[i] += n
    return claims.reclamp_due_leads(conn, placing, plan=plan, limit=room, randomize=window.randomize)


def place_parked_leads(ctx: Context) -> int:
    """The sweeper's share of the re-clamp: in each sending campaign with parked leads,
    place the sends of the openings now within reach (on the timeline as a re-clamp by
    the system). Returns how many leads were placed."""
    now = ctx.clock()
    with ctx.db.connect() as conn:
        ids = store.campaigns_with_parked_leads(conn)
    placed = 0
    for campaign_id in ids:
        with ctx.db.begin() as conn:  # the row lock orders this after a racing pause or resume
            row = store.get_campaign_by_id(conn, campaign_id, for_update=True)
            if row is None or row["status"] != Status.SENDING or row["parked_before"] is None:
                continue
            moved = reclamp(conn, row, now, parked_only=True)
            if moved:
                store.add_timeline(conn, campaign_id, now=now, action="reclamp", actor_type=SWEEPER.type,
                                   actor_id=SWEEPER.id, details={"leads": moved, "parked": True})
            placed += moved
    return placed


def start_due_campaigns(ctx: Context) -> int:
    """Scheduled campaigns whose start_at has come start through the gates, with actor
    system (DESIGN.md §2, §5); one the gates refuse starts and pauses at once with the
    failing gate's reason, so the operator sees why it is not sending."""
    now = ctx.clock()
    c = campaigns_table.c
    with ctx.db.connect() as conn:
        rows = conn.execute(select(c.id, c.workspace_id, c.schedule).where(c.status == Status.SCHEDULED)).all()
    started = 0
    actor = Actor.system("scheduler")
    for r in rows:
        start_at = (r.schedule or {}).get("start_at")
        if not start_at or datetime.fromisoformat(start_at) > now:
            continue
        probes = probe_marked_keys(ctx, r.id)
        try:
            run_through_gates(ctx, r.id, Action.START, actor, r.workspace_id, probes=probes)
        except InvalidTransition:
            continue  # another worker started it, or a person unscheduled it
        except ResumeBlocked:
            if not _start_paused(ctx, r.id, r.workspace_id, actor, probes):
                continue
        started += 1
    return started


def _start_paused(ctx: Context, campaign_id: str, workspace_id: str, actor: Actor,
                  probes: Mapping[str, ProbeResult]) -> bool:
    """A due start_at that the gates refuse: start, hold what failed, pause with its reason."""
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = store.get_campaign(conn, workspace_id, campaign_id, for_update=True)
        if row is None or row["status"] != Status.SCHEDULED:
            return False
        steps = store.get_steps(conn, campaign_id)
        channels = due_channels(conn, campaign_id, steps)
        workspace = get_workspace(conn, workspace_id)
        subscription_active = workspace["subscription_status"] == "active"
        report = evaluate_gates(subscription_active=subscription_active, status=row["status"],
                                pools=key_pools(conn, row, channels, marks=True),
                                templates=template_gate_facts(conn, row, steps),
                                unsubscribe=unsubscribe_gate(steps, public_url_set=bool(ctx.public_url)),
                                probes=probes, probe_timeout=ctx.probe_timeout_seconds)
        gates = [g.as_dict() for g in report.gates]
        if subscription_active:
            blocked = dict(report.blocked_channels)
        else:
            blocked = {channel: PauseReason.SUBSCRIPTION_CANCELED for channel in channels}
        reason = most_severe(list(blocked.values())) if subscription_active else PauseReason.SUBSCRIPTION_CANCELED
        _apply(conn, row, transition(row["status"], Action.START), now, actor, details={"gates": gates},
               extra={"run": row["run"] + 1, "started_at": now})
        integration_store.carry_key_failures(conn, campaign_id, row["run"], row["run"] + 1, report.kept_marks)
        for channel, why in sorted(blocked.items()):
            place_hold(conn, campaign_id, channel, why,
                       {"gates": [g for g in gates if g.get("channel") == channel and not g["ok"]]}, now, actor)
        t = transition(Status.SENDING, Action.AUTO_PAUSE, reason=reason)
        store.apply_transition(conn, campaign_id, t, now=now, actor_type=actor.type, actor_id=actor.id,
                               details={"gates": gates})
        return True


def duplicate(ctx: Context, principal: Principal, campaign_id: str, include_leads: bool) -> dict:
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = _load(conn, principal, campaign_id)
        data = {"name": f"{row['name']} (copy)"[:200], "steps": store.get_steps(conn, campaign_id),
                "schedule": {**row["schedule"], "start_at": None}, "limits": row["limits"],
                "failure_policy": row["failure_policy"], "integration_ids": row["integration_ids"]}
        new_id = store.insert_campaign(conn, principal.workspace_id, data, now)
        store.add_timeline(conn, new_id, now=now, action="duplicate", to_status=Status.DRAFT, actor_type="user",
                           actor_id=principal.user_id, token_id=principal.token_id,
                           details={"source_campaign_id": campaign_id, "name": data["name"]})
        if include_leads:
            copy_leads(conn, campaign_id, new_id, now)
        return campaign_view(conn, store.get_campaign(conn, principal.workspace_id, new_id), now)
