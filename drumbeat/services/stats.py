"""A campaign's statistics: per step and variant, and over time (API.md v1.1, "Learning
what works"). Read from the maintained counters (store.stats), never from the attempts.

- `steps`: every step of the campaign, each with its variants (one entry, `variant` null,
  for a step without variants), over the campaign's whole life.
- `series`: one entry per bucket (the campaign zone's hours or midnights, `at` in UTC)
  from the bucket holding `from` (default: when the campaign started, else was created)
  to the last one starting before `to` (default: through the bucket holding now), empty
  ones with zeros.
Sends, deliveries, reads and failures count at the attempt's start; replies and opt-outs
when the lead turned replied or opted out, for its last accepted attempt's step and
variant. `delivered` and `read` are cumulative like `breakdown` (a read message was
delivered and sent).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from drumbeat.domain import stats as rules
from drumbeat.domain.exceptions import ValidationFailed
from drumbeat.services.campaigns import _load as load_campaign
from drumbeat.services.context import Context, Principal
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import stats as store


def campaign_stats(ctx: Context, principal: Principal, campaign_id: str, *, interval: str = "day",
                   start: datetime | None = None, end: datetime | None = None) -> dict:
    now = ctx.clock()
    with ctx.db.begin() as conn:
        campaign = load_campaign(conn, principal, campaign_id)
        steps = campaign_store.get_steps(conn, campaign_id)
        zone = campaign["schedule"].get("timezone") or "UTC"
        every = rules.Interval(interval)
        start = _instant(start, zone) if start is not None else (campaign["started_at"] or campaign["created_at"])
        # By default the series runs through the bucket holding now.
        end = _instant(end, zone) if end is not None else rules.bucket_end([rules.bucket_start(now, zone, every)],
                                                                             zone, every)
        if end <= start:
            raise ValidationFailed([{"field": "to", "message": "must be after `from`"}])
        try:
            starts = rules.buckets(start, end, zone, every)
        except ValueError as exc:
            raise ValidationFailed([{"field": "from", "message": f"{exc}: narrow from/to or use a longer interval"}])\
                from None
        last = rules.bucket_end(starts, zone, every)
        totals = store.by_step_and_variant(conn, campaign_id)
        sums = store.by_bucket(conn, campaign_id, [rules.quarter_key(at) for at in starts],
                               rules.quarter_key(last)) if starts else {}
    return {"interval": every.value, "timezone": zone,
            "steps": step_rows(steps, totals), "series": series(starts, sums)}


def recent_stats(ctx: Context, principal: Principal, campaign_id: str) -> dict | None:
    """What the campaign page charts: by day over the last 30 days, by hour while the
    campaign is younger than two days; None before it started."""
    with ctx.db.connect() as conn:
        started = load_campaign(conn, principal, campaign_id)["started_at"]
    if started is None:
        return None
    now = ctx.clock()
    young = now - started < timedelta(days=2)
    start = max(started, now - (timedelta(hours=47) if young else timedelta(days=30)))
    return campaign_stats(ctx, principal, campaign_id, interval="hour" if young else "day", start=start)


def _instant(value: datetime, zone: str) -> datetime:
    """A time without offset is the campaign's local time."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(zone))).astimezone(UTC)


def step_rows(steps: list[dict], totals: dict[tuple[int, int | None], dict[str, int]]) -> list[dict]:
    out = []
    for position, step in enumerate(steps):
        indexes: list[int | None] = list(range(len(step["variants"]))) if step.get("variants") else [None]
        # Counters of a variant the step no longer lists (none can appear once started) still show.
        indexes += sorted((v for s, v in totals if s == position and v not in indexes), key=lambda v: (v is None, v))
        out.append({"step": position, "channel": step["channel"],
                    "variants": [_variant_row(v, totals.get((position, v), {})) for v in indexes]})
    return out


def _variant_row(variant: int | None, metrics: dict[str, int]) -> dict:
    row = {"variant": variant, **{m: metrics.get(m, 0) for m in store.METRICS}}
    row["reply_rate"] = rules.reply_rate(row["replied"], row["sent"])
    return row


def series(starts: list[datetime], sums: dict[int, dict[str, int]]) -> list[dict]:
    """One point per bucket, empty ones with zeros."""
    return [{"at": at, **dict.fromkeys(store.SERIES, 0), **sums.get(i, {})} for i, at in enumerate(starts)]
