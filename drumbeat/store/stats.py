"""Reading the per step / variant / quarter-hour counters (tables.step_stats), and folding them.

Triggers (migration 0022) keep the counters in the transaction that changes an attempt or
a lead, so a read costs the campaign's counter rows, never its attempts: the statistics of
a campaign with 1,000,000 leads read a few thousand rows at most.
"""

from __future__ import annotations

from bisect import bisect_right

from sqlalchemy import BigInteger, Connection, cast, func, select, text

from drumbeat.store.sql import queries
from drumbeat.store.tables import step_stats

s = step_stats.c
METRICS = ("sent", "delivered", "read", "failed", "replied", "opted_out")
SERIES = ("sent", "delivered", "read", "replied", "failed")


def by_step_and_variant(conn: Connection, campaign_id: str) -> dict[tuple[int, int | None], dict[str, int]]:
    """(step, variant or None) -> every metric, over the campaign's whole life."""
    rows = conn.execute(select(s.step, s.variant, *_sums(METRICS))
                        .where(s.campaign_id == campaign_id).group_by(s.step, s.variant))
    return {(step, None if variant < 0 else variant): {m: int(v or 0) for m, v in zip(METRICS, values, strict=True)}
            for step, variant, *values in rows}


def _sums(names) -> list:
    # sum(bigint) is numeric on PostgreSQL: back to bigint, so rows arrive as ints, not Decimals.
    return [cast(func.sum(getattr(s, m)), BigInteger) for m in names]


def by_bucket(conn: Connection, campaign_id: str, start_keys: list[str], end: str) -> dict[int, dict[str, int]]:
    """Bucket index -> the series metrics, for buckets starting at the quarters `start_keys`
    (sorted) and the last one ending at `end`. PostgreSQL sums each bucket itself
    (width_bucket over the keys: a row per bucket, not per quarter); SQLite's quarters are
    summed here."""
    if not start_keys:
        return {}
    if conn.dialect.name != "postgresql":
        out: dict[int, dict[str, int]] = {}
        for key, metrics in by_quarter(conn, campaign_id, start_keys[0], end).items():
            index = bisect_right(start_keys, key) - 1
            into = out.setdefault(index, dict.fromkeys(SERIES, 0))
            for m, n in metrics.items():
                into[m] += n
        return out
    bucket = func.width_bucket(s.quarter, text("CAST(:starts AS text[])")).label("b")
    rows = conn.execute(select(bucket, *_sums(SERIES))
                        .where(s.campaign_id == campaign_id, s.quarter >= start_keys[0], s.quarter < end)
                        .group_by(bucket), {"starts": start_keys})
    return {b - 1: {m: int(v or 0) for m, v in zip(SERIES, values, strict=True)} for b, *values in rows}


def by_quarter(conn: Connection, campaign_id: str, first: str, end: str) -> dict[str, dict[str, int]]:
    """UTC quarter key -> the series metrics, for quarters in [first, end)."""
    rows = conn.execute(select(s.quarter, *_sums(SERIES))
                        .where(s.campaign_id == campaign_id, s.quarter >= first, s.quarter < end)
                        .group_by(s.quarter))
    return {quarter: {m: int(v or 0) for m, v in zip(SERIES, values, strict=True)} for quarter, *values in rows}


def fold(conn: Connection, min_rows: int = 256) -> int:
    """PostgreSQL: replace the delta rows of each campaign that gathered at least
    `min_rows` by one row per (step, variant, quarter); rows committed meanwhile stay as
    they are, so the sums never change. Returns the campaigns folded. (SQLite keeps one
    row per key: nothing to do.)"""
    if conn.dialect.name != "postgresql":
        return 0
    busy = list(conn.execute(select(s.campaign_id).group_by(s.campaign_id).having(func.count() >= min_rows))
                .scalars())
    for campaign_id in busy:
        conn.execute(queries("postgresql")["fold_step_stats"], {"campaign_id": campaign_id})
    return len(busy)
