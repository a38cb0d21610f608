"""Which campaign changes people are told about (DESIGN.md §8, API.md webhooks), and the
notifier's retry rule. Pure: the store writes the outbox, the engine delivers it."""

from __future__ import annotations

from drumbeat.domain.reasons import PauseReason

EVENTS = ("campaign.paused", "campaign.resumed", "campaign.hold_placed", "campaign.hold_lifted",
          "campaign.completed", "campaign.failed", "lead.in_doubt")


# New in-doubt leads, and what became of them (details.outcome): settled by the provider's
# records, retried by the in_doubt_policy, or left for a person.
IN_DOUBT_ACTIONS = ("leads_in_doubt", "in_doubt_settled", "in_doubt_retried", "in_doubt_left")


def event_for(action: str, to_status: str | None) -> str | None:
    """The event a timeline entry raises, if any."""
    if action == "test_send":  # it names the status it left unchanged: no news about the campaign
        return None
    if action == "hold_placed":
        return "campaign.hold_placed"
    if action == "hold_lifted":
        return "campaign.hold_lifted"
    if action in IN_DOUBT_ACTIONS:
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


_HEADLINES = {
    "campaign.paused": "paused",
    "campaign.resumed": "resumed",
    "campaign.hold_placed": "has a channel on hold",
    "campaign.hold_lifted": "has a channel back",
    "campaign.completed": "completed",
    "campaign.failed": "failed",
    "lead.in_doubt": "has leads in doubt",
}


def email_for(event: str, campaign: dict, reason: str | None, details: dict, link: str) -> tuple[str, str]:
    """Subject and plain-text body of the email owners and operators get for an event:
    what happened, why (the reason's one-line explanation), the figures, and a link."""
    subject = f"[Drumbeat] Campaign \u201c{campaign['name']}\u201d {_HEADLINES.get(event, event)}"
    if reason:
        subject += f": {reason}"
    lines = [f"Campaign: {campaign['name']} (now {campaign['status']})", f"Event: {event}"]
    if reason:
        known = reason in PauseReason.__members__.values()
        lines.append(f"Reason: {reason}" + (f" \u2014 {PauseReason(reason).text}" if known else ""))
    figures = {k: v for k, v in details.items() if k not in ("actor", "reason") and v not in (None, "", [], {})}
    if figures:
        lines.append("")
        lines.append("Details:")
        lines += [f"  {key}: {value}" for key, value in sorted(figures.items())]
    lines += ["", f"Open the campaign: {link}", ""]
    return subject, "\n".join(lines)
