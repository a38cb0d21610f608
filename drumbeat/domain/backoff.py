"""How long to wait before trying again, and how to spread the waits (issue 21, quick recovery).

Every retry decision of the engine is one of these pure functions of an attempt count and
a random source (`random.Random` or anything with `.random()`), so it is tested in
milliseconds and the loops only sleep what they are told:

- `outage_probe_delay`: a loop whose database went away probes it again after at most
  `PROBE_AT_MOST_EVERY` second (growing from a tenth of a second, never past that), so a
  worker or the sweeper is back at work within about a second of the database.
- `retry_delay`: a failed webhook delivery, email or transient send waits exponentially
  longer, capped; `webhook_retry_delay` gives up (None) after `MAX_WEBHOOK_TRIES` tries.
- `jittered`: each wait is shortened by up to half, at random, so processes that failed
  together do not all come back in the same instant (a thundering herd on a database that
  has just started, or on a webhook receiver that has just recovered).
- `Outage`: one loop's outage, so it logs once when the outage begins and once when it
  ends, however many ticks it lasted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class RandomSource(Protocol):
    def random(self) -> float:
        """A float in [0, 1)."""


PROBE_AT_MOST_EVERY = 1.0  # seconds between two probes of a database that went away
FIRST_PROBE = 0.1
JITTER_SHARE = 0.5  # a wait is shortened by up to this share of itself
MAX_WEBHOOK_TRIES = 20  # then the delivery is marked failed (about 2 hours of tries at the defaults)


def jittered(delay: float, rng: RandomSource, share: float = JITTER_SHARE) -> float:
    """`delay` shortened by up to `share` of itself, uniformly at random: in
    [delay * (1 - share), delay]. Never longer than `delay`, so a bound stays a bound."""
    return delay * (1.0 - share * rng.random())


def exponential(attempts: int, *, base: float, cap: float) -> float:
    """`base` after the first failed try, doubling with each further one, capped (the
    doubling stops at 2**64, so an outage of any length never overflows a float)."""
    return min(cap, base * 2 ** min(64, max(0, attempts - 1)))


def outage_probe_delay(failures: int, rng: RandomSource, *, first: float = FIRST_PROBE,
                       at_most: float = PROBE_AT_MOST_EVERY) -> float:
    """Seconds before probing a database again after `failures` failed tries in a row:
    growing from `first` to `at_most` (never more), jittered."""
    return jittered(exponential(failures, base=first, cap=at_most), rng)


def retry_delay(attempts: int, rng: RandomSource, *, base: float = 2.0, cap: float = 600.0) -> float:
    """Seconds to wait after `attempts` failed tries: exponential, capped, jittered."""
    return jittered(exponential(attempts, base=base, cap=cap), rng)


def webhook_retry_delay(attempts: int, rng: RandomSource, *, base: float = 2.0, cap: float = 600.0,
                        max_tries: int = MAX_WEBHOOK_TRIES) -> float | None:
    """The wait before the next try of a webhook delivery that failed `attempts` times, or
    None when it has had its `max_tries` tries: it is given up (marked failed)."""
    if attempts >= max_tries:
        return None
    return retry_delay(attempts, rng, base=base, cap=cap)


@dataclass
class Outage:
    """One loop's view of its database: failures in a row, and since when (monotonic
    seconds). `failed` says whether to log (the first failure of an outage), `recovered`
    how long the outage lasted (None when there was none, so nothing to log)."""

    failures: int = 0
    since: float | None = None

    def failed(self, now: float) -> bool:
        self.failures += 1
        if self.since is None:
            self.since = now
            return True
        return False

    def recovered(self, now: float) -> float | None:
        if self.since is None:
            return None
        lasted, self.failures, self.since = now - self.since, 0, None
        return lasted
