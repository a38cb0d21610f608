"""High failure rate detector (DESIGN.md §4).

Per campaign and channel, over the last `window` counted outcomes of the current run:
with at least `min_samples` counted and a failed share >= `threshold`, the channel is
held with `high_failure_rate`. Counted: accepted sends and lead-level or retry-exhausted
failures; key-level, rate-limited and campaign-level answers are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_POLICY = {"window": 50, "threshold": 0.5, "min_samples": 20}


@dataclass(frozen=True)
class FailureWindow:
    counted: int
    failed: int
    window: int
    threshold: float
    min_samples: int

    @property
    def share(self) -> float:
        return self.failed / self.counted if self.counted else 0.0

    @property
    def tripped(self) -> bool:
        return self.counted >= self.min_samples and self.share >= self.threshold

    def as_details(self) -> dict:
        return {"window": self.window, "counted": self.counted, "failed": self.failed,
                "failed_share": round(self.share, 4), "threshold": self.threshold, "min_samples": self.min_samples}


def evaluate(recent_failed: list[bool], policy: dict | None) -> FailureWindow:
    """`recent_failed`: the most recent counted outcomes, newest first (True = failed)."""
    p = {**DEFAULT_POLICY, **(policy or {})}
    outcomes = recent_failed[: int(p["window"])]
    return FailureWindow(len(outcomes), sum(outcomes), int(p["window"]), float(p["threshold"]), int(p["min_samples"]))
