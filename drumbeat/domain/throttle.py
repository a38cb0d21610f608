"""Sign-in throttling, the rule alone: after `max_failures` failed attempts within `window`
(a sliding window), further attempts wait until the oldest of those failures has aged out.

Pure: the failures and `now` are handed in (services/sign_ins.py keeps them, in the database).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ThrottleRule:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)


def recent_failures(failures: Sequence[datetime], now: datetime, rule: ThrottleRule) -> list[datetime]:
    """The failures still inside the window, oldest first."""
    return sorted(t for t in failures if now - t < rule.window)


def wait_before_next_attempt(failures: Sequence[datetime], now: datetime, rule: ThrottleRule) -> timedelta | None:
    """None when an attempt may be made now; else how long until one may. With n recent
    failures (n >= max_failures) the count falls below the limit when the failure at
    position n - max_failures (oldest first) leaves the window."""
    recent = recent_failures(failures, now, rule)
    if len(recent) < rule.max_failures:
        return None
    return recent[len(recent) - rule.max_failures] + rule.window - now


def wait_for_any(failures_per_key: Sequence[Sequence[datetime]], now: datetime, rule: ThrottleRule) -> timedelta | None:
    """An attempt counted under several keys (its email, its client address) waits for the
    longest of their waits; None when no key is over the limit."""
    waits = [w for w in (wait_before_next_attempt(f, now, rule) for f in failures_per_key) if w is not None]
    return max(waits) if waits else None


def retry_after_seconds(wait: timedelta) -> int:
    """A Retry-After value (RFC 9110: whole seconds), never 0 while still blocked."""
    return max(1, math.ceil(wait.total_seconds()))
