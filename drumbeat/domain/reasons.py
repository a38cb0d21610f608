"""Why a campaign or a channel stopped (DESIGN.md §2, §4)."""

from __future__ import annotations

from enum import StrEnum


class PauseReason(StrEnum):
    MANUAL = "manual"
    ALL_KEYS_FAILED = "all_keys_failed"
    HIGH_FAILURE_RATE = "high_failure_rate"
    ACCOUNT_DISCONNECTED = "account_disconnected"
    ACCOUNT_RESTRICTED = "account_restricted"
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    TEMPLATE_REJECTED = "template_rejected"

    @property
    def text(self) -> str:
        return EXPLANATIONS[self]


EXPLANATIONS: dict[PauseReason, str] = {
    PauseReason.MANUAL: "Paused by a person; it runs again only when someone resumes it.",
    PauseReason.ALL_KEYS_FAILED: (
        "Every API key of the channel failed in this run; rotate or add a key, then resume."
    ),
    PauseReason.HIGH_FAILURE_RATE: (
        "Too many recent sends failed; check the lead list and the errors, then resume."
    ),
    PauseReason.ACCOUNT_DISCONNECTED: (
        "The sending account is disconnected; it resumes by itself once it is reconnected."
    ),
    PauseReason.ACCOUNT_RESTRICTED: (
        "The provider restricted the sending account; a person must review it and resume."
    ),
    PauseReason.SUBSCRIPTION_CANCELED: (
        "The workspace subscription is not active; sending resumes when it is renewed."
    ),
    PauseReason.TEMPLATE_REJECTED: (
        "The provider rejected a message template; edit the template, then resume."
    ),
}

# Most severe first: when several holds stop a campaign, the first one names the pause.
SEVERITY: tuple[PauseReason, ...] = (
    PauseReason.ACCOUNT_RESTRICTED,
    PauseReason.SUBSCRIPTION_CANCELED,
    PauseReason.TEMPLATE_REJECTED,
    PauseReason.ALL_KEYS_FAILED,
    PauseReason.HIGH_FAILURE_RATE,
    PauseReason.ACCOUNT_DISCONNECTED,
)


def most_severe(reasons: list[str]) -> PauseReason:
    present = {PauseReason(r) for r in reasons}
    for reason in SEVERITY:
        if reason in present:
            return reason
    return PauseReason.MANUAL


def pause_reason_for(held: dict[str, str], due_channels: set[str]) -> PauseReason | None:
    """A sending campaign pauses when every channel its unfinished leads wait on is held
    (DESIGN.md §4); the pause takes the most severe of those holds' reasons."""
    if due_channels and all(channel in held for channel in due_channels):
        return most_severe([held[channel] for channel in due_channels])
    return None


# Holds the sweeper may lift by itself once their cause is cleared (DESIGN.md §5); every
# other reason waits for a person.
AUTO_LIFTABLE: frozenset[PauseReason] = frozenset({PauseReason.ACCOUNT_DISCONNECTED,
                                                   PauseReason.SUBSCRIPTION_CANCELED})
# Flapping: after this many automatic lifts of one reason on one campaign within the
# window, the next one is left to a person.
MAX_AUTO_LIFTS = 3
AUTO_LIFT_WINDOW_HOURS = 24
