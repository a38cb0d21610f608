"""Reading the maintained campaign counts (tables.campaign_counts), and folding them.

Triggers keep the counts in the transaction that changes a lead or an attempt, so a read
here costs a few index rows whatever the number of leads (the campaign view at 1,000,000
leads), and equals a recount at every commit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, case, func, insert, select
from sqlalchemy.dialects import sqlite

from drumbeat.store.sql import queries
from drumbeat.store.tables import campaign_counts

c = campaign_counts.c
ACCEPTED_PREFIX = "accepted@"


def metrics(conn: Connection, campaign_id: str) -> dict[str, int]:
    """Every metric of a campaign except the accepted-send buckets."""
    return metrics_of(conn, [campaign_id])[campaign_id]


def metrics_of(conn: Connection, campaign_ids: list[str]) -> dict[str, dict[str, int]]:
    """campaign id -> every metric but the accepted-send buckets, in one query."""
    out: dict[str, dict[str, int]] = {cid: {} for cid in campaign_ids}
    rows = conn.execute(select(c.campaign_id, c.metric, func.sum(c.n))
                        .where(c.campaign_id.in_(campaign_ids), ~c.metric.startswith(ACCEPTED_PREFIX))
                        .group_by(c.campaign_id, c.metric))
    for cid, metric, n in rows:
        if n:
            out[cid][metric] = int(n)
    return out


def lead_states(conn: Connection, campaign_ids: list[str]) -> dict[str, dict[str, int]]:
    """campaign id -> {lead state: count} for several campaigns in one query."""
    out: dict[str, dict[str, int]] = {cid: {} for cid in campaign_ids}
    if not campaign_ids:
        return out
    rows = conn.execute(select(c.campaign_id, c.metric, func.sum(c.n)).where(
        c.campaign_id.in_(campaign_ids), c.metric.startswith("lead:")).group_by(c.campaign_id, c.metric))
    for cid, metric, n in rows:
        if n:
            out[cid][metric[len("lead:"):]] = int(n)
    return out


def steps_with(conn: Connection, campaign_id: str, states) -> set[int]:
    """The steps at which some lead of the campaign is in one of `states` (unfinished)."""
    rows = conn.execute(select(c.metric).where(c.campaign_id == campaign_id, c.metric.startswith("step:"))
                        .group_by(c.metric).having(func.sum(c.n) > 0))
    return steps_in({metric: 1 for metric in rows.scalars()}, states)


def steps_in(by_metric: dict[str, int], states) -> set[int]:
    """steps_with, from a campaign's metrics already read (metrics_of)."""
    wanted = {str(s) for s in states}
    return {int(parts[1]) for metric, n in by_metric.items() if n > 0 and metric.startswith("step:")
            and (parts := metric.split(":"))[2] in wanted}


# Leads failed before any send because their message could not leave (a missing variable,
# a content the provider would refuse): `content_error:<code>`. They have no attempt for
# the triggers to count, and no write path changes a failed lead again, so the claim that
# fails them adds to this count in the same transaction (fail_unsendable in claims).
CONTENT_ERROR_PREFIX = "content_error:"


def add_content_failures(conn: Connection, campaign_id: str, by_code: dict[str, int]) -> None:
    rows = [{"campaign_id": campaign_id, "metric": CONTENT_ERROR_PREFIX + code, "n": n}
            for code, n in sorted(by_code.items()) if n]
    if not rows:
        return
    if conn.dialect.name == "postgresql":  # a delta row, like the triggers'
        conn.execute(insert(campaign_counts), rows)
        return
    upsert = sqlite.insert(campaign_counts)
    conn.execute(upsert.on_conflict_do_update(index_elements=["campaign_id", "metric"],
                                              set_={"n": campaign_counts.c.n + upsert.excluded.n}), rows)


def bucket(at: datetime) -> str:
    """The quarter-hour bucket name of an instant, as the triggers write it."""
    at = at.astimezone(UTC)
    return ACCEPTED_PREFIX + at.replace(minute=at.minute // 15 * 15).strftime("%Y-%m-%dT%H:%M")


def accepted_since(conn: Connection, starts: dict[str, tuple[datetime, datetime]]) -> dict[str, tuple[int, int]]:
    """campaign id -> accepted sends started at or after each of its two instants (local
    midnights of today and of Monday: every zone's offset is a whole number of quarter
    hours, so they fall on bucket boundaries). One query per distinct pair of instants:
    campaigns in the same time zone share it."""
    by_pair: dict[tuple[str, str], list[str]] = {}
    for cid, (day, week) in starts.items():
        by_pair.setdefault((_bucket_from(day), _bucket_from(week)), []).append(cid)
    out = {cid: (0, 0) for cid in starts}
    for (day, week), ids in by_pair.items():
        since_day = func.coalesce(func.sum(case((c.metric >= day, c.n), else_=0)), 0)
        rows = conn.execute(select(c.campaign_id, since_day, func.sum(c.n))
                            .where(c.campaign_id.in_(ids), c.metric >= min(day, week),
                                   c.metric.startswith(ACCEPTED_PREFIX))
                            .group_by(c.campaign_id))
        for cid, n_day, n_week in rows:
            out[cid] = (int(n_day), int(n_week or 0))
    return out


def _bucket_from(since: datetime) -> str:
    """The first bucket at or after `since`."""
    start = since.astimezone(UTC)
    if start.minute % 15 or start.second or start.microsecond:
        start = start.replace(second=0, microsecond=0) + timedelta(minutes=15 - start.minute % 15)
    return bucket(start)


def lead_total_sql(campaign_id_column, states: tuple[str, ...] | None = None):
    """A scalar subquery: the leads of a campaign (in `states`), for sorting lists."""
    metric_filter = c.metric.in_([f"lead:{s}" for s in states]) if states else c.metric.startswith("lead:")
    return (select(func.coalesce(func.sum(c.n), 0)).where(c.campaign_id == campaign_id_column, metric_filter)
            .scalar_subquery())


def fold(conn: Connection, min_rows: int = 64) -> int:
    """PostgreSQL: replace each campaign's delta rows by one row per metric, where a
    campaign has gathered at least `min_rows`. Rows inserted by transactions that commit
    meanwhile are neither deleted nor summed, so the totals never change. Returns the
    campaigns folded. (SQLite keeps one row per metric: nothing to do.)"""
    if conn.dialect.name != "postgresql":
        return 0
    busy = list(conn.execute(select(c.campaign_id).group_by(c.campaign_id).having(func.count() >= min_rows))
                .scalars())
    for campaign_id in busy:
        conn.execute(queries("postgresql")["fold_campaign_counts"], {"campaign_id": campaign_id})
    return len(busy)
