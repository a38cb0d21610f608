"""Which campaign changes people are told about (DESIGN.md §8, API.md webhooks), and the
notifier's retry rule. Pure: the store writes the outbox, the engine delivers it."""

from __future__ import annotations

EVENTS = ("campaign.paused", "campaign.resumed", "campaign.hold_placed", "campaign.hold_lifted",
          "campaign.completed", "campaign.failed", "lead.in_doubt")


def event_for(action: str, to_status: str | None) -> str | None:
    """The event a timeline entry raises, if any."""
    if action == "hold_placed":
        return "campaign.hold_placed"
    if action == "hold_lifted":
        return "campaign.hold_lifted"
    if action == "leads_in_doubt":
        return "lead.in_doubt"
    if action == "resume":
        return "campaign.resumed"
    if to_status == "paused":
        return "campaign.paused"
    if to_status == "completed":
        return "campaign.completed"
    if to_status == "failed":
        return "campaign.failed"
    return None


def retry_delay(attempts: int, *, base: float = 2.0, cap: float = 600.0) -> float:
    """Seconds to wait after `attempts` failed tries: exponential, capped; never gives up
    (a delivery is dropped only when its webhook is deleted)."""
    return min(cap, base * 2 ** max(0, attempts - 1))
