"""Round robin over a channel's usable keys (active, enabled, not failed in this run)."""

from __future__ import annotations

from collections import defaultdict
from itertools import count


class RoundRobin:
    def __init__(self) -> None:
        self._turns: dict[tuple[str, str], count] = defaultdict(count)

    def pick(self, campaign_id: str, channel: str, usable: list[str]) -> str:
        return usable[next(self._turns[(campaign_id, channel)]) % len(usable)]
