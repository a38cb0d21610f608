"""What the statistics of a campaign say: time buckets in the campaign's zone, and whether
one variant's reply rate beats the others by more than chance.

Counters are kept per UTC quarter hour (store.stats): every zone's offset from UTC is a
whole number of quarter hours, so each local hour and each local midnight is a quarter
boundary and a bucket is an exact sum of quarters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

MAX_BUCKETS = 2000  # hours: about 83 days; days: about 5 years
Z_95 = 1.959963984540054  # two-sided 95 %: |z| at least this


class Interval(StrEnum):
    HOUR = "hour"
    DAY = "day"


def quarter_key(at: datetime) -> str:
    """The counters' name of the UTC quarter hour holding `at` ('YYYY-MM-DDTHH:MM')."""
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute // 15 * 15).strftime("%Y-%m-%dT%H:%M")


def quarter_start(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)


def bucket_start(at: datetime, zone: str, interval: Interval) -> datetime:
    """The start (UTC) of the bucket holding `at`: the campaign zone's hour or midnight."""
    local = at.astimezone(ZoneInfo(zone))
    if interval is Interval.HOUR:
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return _midnight(local.date(), zone)


def _midnight(day, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _next(start: datetime, zone: str, interval: Interval) -> datetime:
    if interval is Interval.HOUR:
        return start + timedelta(hours=1)  # an hour later is the next local hour, DST or not
    return _midnight(start.astimezone(ZoneInfo(zone)).date() + timedelta(days=1), zone)


def buckets(start: datetime, end: datetime, zone: str, interval: Interval) -> list[datetime]:
    """The starts (UTC) of the buckets from the one holding `start` to the last one that
    begins before `end`, each present even when nothing happened in it."""
    out: list[datetime] = []
    at = bucket_start(start, zone, interval)
    while at < end:
        out.append(at)
        if len(out) > MAX_BUCKETS:
            raise ValueError(f"more than {MAX_BUCKETS} {interval.value}s")
        at = _next(at, zone, interval)
    return out


def bucket_end(starts: Sequence[datetime], zone: str, interval: Interval) -> datetime | None:
    return _next(starts[-1], zone, interval) if starts else None


def reply_rate(replied: int, sent: int) -> float | None:
    return replied / sent if sent else None


def z_score(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-proportion z-test with the pooled proportion: (p_a - p_b) / sqrt(p(1-p)(1/n_a + 1/n_b)).
    0 when either sample is empty or the pooled proportion is 0 or 1 (no variance: no evidence)."""
    if n_a <= 0 or n_b <= 0:
        return 0.0
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return 0.0
    return (successes_a / n_a - successes_b / n_b) / math.sqrt(variance)


@dataclass(frozen=True)
class Leader:
    index: int  # the variant with the highest reply rate
    significant: bool  # its rate beats every other variant's at 95 % (two-sided z-test)


def leading_variant(outcomes: Sequence[tuple[int, int]]) -> Leader | None:
    """Of variants given as (replied, sent), the one with the highest reply rate, and whether
    a two-proportion z-test at 95 % (two-sided, |z| >= 1.96) separates it from each of the
    others. None with fewer than two variants or nothing sent."""
    rated = [(replied / sent, i) for i, (replied, sent) in enumerate(outcomes) if sent > 0]
    if len(outcomes) < 2 or not rated:
        return None
    best_rate, best = max(rated)
    replied_b, sent_b = outcomes[best]
    significant = all(
        z_score(replied_b, sent_b, replied, sent) >= Z_95
        for i, (replied, sent) in enumerate(outcomes) if i != best)
    return Leader(best, significant)
