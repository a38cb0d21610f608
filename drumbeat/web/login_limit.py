"""Failed dashboard sign-ins, counted per email and per client address (issue 8).

After ThrottleRule.max_failures failures within its window (domain/throttle.py) for the
email tried, or from the client address, POST /login answers 429 without checking the
password, so a password cannot be guessed by trying many, whether one account is
attacked from many addresses or many accounts from one.

The counts live in this process's memory: they are lost on restart and not shared
between `drumbeat serve` processes (each process enforces the limit on its own share of
the attempts). That is acceptable for the dashboard's one or few serving processes; a
deployment with many would keep them in the database or a shared cache instead.
Behind a reverse proxy, run the server with forwarded headers trusted (uvicorn
--proxy-headers --forwarded-allow-ips) so the client address is the visitor's, not the
proxy's — else all visitors share one address and one limit.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

from drumbeat.clock import Clock, utcnow
from drumbeat.domain.throttle import ThrottleRule, recent_failures, wait_before_next_attempt

MAX_TRACKED_KEYS = 100_000  # memory bound: beyond this, keys with no recent failure are dropped first


class LoginThrottle:
    def __init__(self, rule: ThrottleRule | None = None, clock: Clock = utcnow) -> None:
        self.rule = rule or ThrottleRule()
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[datetime]] = {}
        self._lock = threading.Lock()  # sync routes run in a thread pool

    @staticmethod
    def _keys(email: str, client: str | None) -> list[tuple[str, str]]:
        keys = [("client", client or "unknown")]
        if email.strip():
            keys.append(("email", email.strip().lower()))
        return keys

    def attempt(self, email: str, client: str | None) -> timedelta | None:
        """Check and count in one step, so concurrent guesses cannot slip past the limit
        together: None means go ahead, and the attempt already counts as a failure until
        `succeeded` says otherwise; else how long to wait (that attempt is not counted)."""
        now = self._clock()
        with self._lock:
            keys = self._keys(email, client)
            waits = [w for w in (wait_before_next_attempt(self._failures.get(key, ()), now, self.rule)
                                 for key in keys) if w is not None]
            if waits:
                return max(waits)
            if len(self._failures) >= MAX_TRACKED_KEYS:
                self._prune(now)
            for key in keys:
                kept = deque(recent_failures(self._failures.get(key, ()), now, self.rule),
                             maxlen=self.rule.max_failures)
                kept.append(now)
                self._failures[key] = kept
            return None

    def succeeded(self, email: str, client: str | None) -> None:
        """The attempt was right: it is no failure. A correct password also clears that
        email's count; the address keeps its earlier failures (signing in to one's own
        account must not reset the count of guesses at someone else's)."""
        with self._lock:
            self._failures.pop(("email", email.strip().lower()), None)
            counted = self._failures.get(("client", client or "unknown"))
            if counted:
                counted.pop()

    def _prune(self, now: datetime) -> None:
        for key in [k for k, v in self._failures.items() if not recent_failures(v, now, self.rule)]:
            del self._failures[key]
        while len(self._failures) >= MAX_TRACKED_KEYS:  # all recent: drop the oldest keys
            del self._failures[next(iter(self._failures))]
