"""Which key each send uses.

Round robin over a channel's usable keys (active, enabled, not failed in this run). Once a
key of the channel has failed in this run, the others are no longer trusted blindly: each
key that has not answered a success since gets one probe at a time, so a provider-wide
outage costs at most one call per key beyond the calls already in flight.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import count

UNLIMITED = 1 << 30

PoolKey = tuple[str, int, str]  # campaign id, run, channel


class KeyPools:
    def __init__(self) -> None:
        self._turns: dict[PoolKey, count] = defaultdict(count)
        self._proven: dict[PoolKey, set[str]] = {}  # present once a key of the pool failed
        self.inflight: Counter[str] = Counter()

    def key_failed(self, pool: PoolKey) -> None:
        self._proven[pool] = set()  # every key must prove itself again

    def key_succeeded(self, pool: PoolKey, key: str) -> None:
        if pool in self._proven:
            self._proven[pool].add(key)

    def chooser(self, pool: PoolKey, usable: list[str], *, failures_in_run: bool) -> Chooser:
        if failures_in_run and pool not in self._proven:
            self._proven[pool] = set()  # another worker saw the failure, or we restarted
        proven = self._proven.get(pool)
        if proven is None:
            return Chooser(self, pool, usable, [])
        trusted = [k for k in usable if k in proven]
        return Chooser(self, pool, trusted, [k for k in usable if k not in proven and not self.inflight[k]])

    def next_turn(self, pool: PoolKey) -> int:
        return next(self._turns[pool])


class Chooser:
    def __init__(self, pools: KeyPools, pool: PoolKey, trusted: list[str], probes: list[str]) -> None:
        self.pools, self.pool, self.trusted, self.probes = pools, pool, trusted, probes

    @property
    def capacity(self) -> int:
        return UNLIMITED if self.trusted else len(self.probes)

    def pick(self) -> str:
        if self.probes:
            return self.probes.pop()
        return self.trusted[self.pools.next_turn(self.pool) % len(self.trusted)]
