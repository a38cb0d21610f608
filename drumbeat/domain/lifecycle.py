"""Campaign statuses and the transitions between them (DESIGN.md §2).

`transition()` is the only place that decides whether an action is allowed; the store
applies its answer with a compare-and-set on the old status, so two concurrent actions
cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drumbeat.domain.exceptions import ConfirmationRequired, InvalidTransition
from drumbeat.domain.reasons import PauseReason


class Status(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELED})


class Action(StrEnum):
    SCHEDULE = "schedule"
    UNSCHEDULE = "unschedule"
    START = "start"
    PAUSE = "pause"
    AUTO_PAUSE = "auto_pause"
    RESUME = "resume"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"


_ALLOWED: dict[Action, frozenset[Status]] = {
    Action.SCHEDULE: frozenset({Status.DRAFT}),
    Action.UNSCHEDULE: frozenset({Status.SCHEDULED}),
    Action.START: frozenset({Status.DRAFT, Status.SCHEDULED}),
    Action.PAUSE: frozenset({Status.SENDING, Status.PAUSED}),
    Action.AUTO_PAUSE: frozenset({Status.SENDING}),
    Action.RESUME: frozenset({Status.PAUSED, Status.SENDING}),
    Action.COMPLETE: frozenset({Status.SENDING}),
    Action.FAIL: frozenset({Status.SENDING}),
    Action.CANCEL: frozenset({Status.DRAFT, Status.SCHEDULED, Status.SENDING, Status.PAUSED}),
}

_TARGET: dict[Action, Status] = {
    Action.SCHEDULE: Status.SCHEDULED,
    Action.UNSCHEDULE: Status.DRAFT,
    Action.START: Status.SENDING,
    Action.PAUSE: Status.PAUSED,
    Action.AUTO_PAUSE: Status.PAUSED,
    Action.RESUME: Status.SENDING,
    Action.COMPLETE: Status.COMPLETED,
    Action.FAIL: Status.FAILED,
    Action.CANCEL: Status.CANCELED,
}


@dataclass(frozen=True)
class Transition:
    from_status: Status
    to_status: Status
    action: Action
    paused_reason: PauseReason | None


def transition(
    status: str,
    action: Action,
    *,
    paused_reason: str | None = None,
    reason: PauseReason | None = None,
    has_holds: bool = False,
) -> Transition:
    """Decide the outcome of `action` on a campaign, or raise InvalidTransition.

    `reason` is the pause reason for AUTO_PAUSE. A manual pause of a campaign that is
    already paused is allowed only when the system paused it: the reason becomes
    `manual`, so a person takes over and nothing resumes it automatically.
    """
    current = Status(status)
    if current not in _ALLOWED[action]:
        raise InvalidTransition(current, action)
    if action is Action.PAUSE and current is Status.PAUSED and paused_reason == PauseReason.MANUAL:
        raise InvalidTransition(current, action)
    if action is Action.RESUME and current is Status.SENDING and not has_holds:
        raise InvalidTransition(current, action)
    new_reason: PauseReason | None = None
    if action is Action.PAUSE:
        new_reason = PauseReason.MANUAL
    elif action is Action.AUTO_PAUSE:
        new_reason = reason or PauseReason.MANUAL
    return Transition(current, _TARGET[action], action, new_reason)


def check_cancel_confirmation(campaign_name: str, confirm: str | None) -> None:
    """Cancel is irreversible: the operator must type the campaign's exact name."""
    if confirm != campaign_name:
        raise ConfirmationRequired(
            "type the campaign's exact name in `confirm` to cancel it",
            {"expected": "the campaign's exact name"},
        )


def finished_status(contacted_any: bool) -> Action:
    """Every lead is terminal: completed if anybody was contacted, else failed."""
    return Action.COMPLETE if contacted_any else Action.FAIL
