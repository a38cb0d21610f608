"""Lead states (DESIGN.md §3) and what one attempt's outcome does to a lead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from drumbeat.domain.backoff import RandomSource, jittered
from drumbeat.domain.errors import ErrorClass


class LeadState(StrEnum):
    NOT_CONTACTED = "not_contacted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REPLIED = "replied"
    FAILED = "failed"
    OPTED_OUT = "opted_out"
    IN_DOUBT = "in_doubt"
    CANCELED = "canceled"


TERMINAL_LEAD_STATES = frozenset(
    {LeadState.COMPLETED, LeadState.REPLIED, LeadState.FAILED, LeadState.OPTED_OUT, LeadState.CANCELED}
)
# Leads the engine may still claim; in_doubt waits for a person.
WORKABLE_LEAD_STATES = (LeadState.NOT_CONTACTED, LeadState.IN_PROGRESS)
UNFINISHED_LEAD_STATES = (LeadState.NOT_CONTACTED, LeadState.IN_PROGRESS, LeadState.IN_DOUBT)


class AttemptStatus(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    KEY_ERROR = "key_error"
    IN_DOUBT = "in_doubt"


ACCEPTED_ATTEMPT_STATUSES = (AttemptStatus.SENT, AttemptStatus.DELIVERED, AttemptStatus.READ)

MAX_TRANSIENT_RETRIES = 3


@dataclass(frozen=True)
class LeadProgress:
    """Where a lead stands: the fields an outcome may change."""

    state: LeadState
    current_step: int
    next_action_at: datetime
    retries: int  # transient retries spent on the current step


@dataclass(frozen=True)
class LeadChange:
    lead: LeadProgress
    attempt_status: AttemptStatus
    counted_failure: bool  # counts in breakdown.failed and the failure window
    last_error: str | None = None


DEFAULT_ACCEPTANCE_WAIT = timedelta(days=14)


def acceptance_wait(step: dict, next_step: dict | None) -> timedelta | None:
    """A LinkedIn message step right after an invitation waits for the invitation to be
    accepted, up to its `wait_seconds` (DESIGN.md §3); None when nothing waits."""
    if next_step is None or step["channel"] != "linkedin" or next_step["channel"] != "linkedin":
        return None
    if step["template"].get("action") != "invite" or next_step["template"].get("action", "message") != "message":
        return None
    seconds = next_step["template"].get("wait_seconds")
    return timedelta(seconds=seconds) if seconds is not None else DEFAULT_ACCEPTANCE_WAIT


# The longest a provider call can run (channels.registry.client gives the HTTP client these
# timeouts; SMTP's default timeout is the I/O one). httpx applies them per phase: connect,
# then sending the request, then waiting for the answer.
PROVIDER_CONNECT_TIMEOUT_SECONDS = 10.0
PROVIDER_IO_TIMEOUT_SECONDS = 30.0
LONGEST_PROVIDER_CALL = timedelta(seconds=PROVIDER_CONNECT_TIMEOUT_SECONDS + 2 * PROVIDER_IO_TIMEOUT_SECONDS)
RETRY_MARGIN = timedelta(seconds=30)  # for the stalled worker to commit the answer it got


def retry_not_before(doubted_attempt_at: datetime, now: datetime) -> datetime:
    """When an operator's Retry of an in-doubt lead may send again: not before the doubted
    call must have ended (its attempt row is committed just before the call), so a late
    answer saying "sent" can still settle the lead instead of a second contact."""
    return max(now, doubted_attempt_at + LONGEST_PROVIDER_CALL + RETRY_MARGIN)


def transient_backoff(retries: int, rng: RandomSource | None = None) -> timedelta:
    """The wait before a transient error's retry: growing, capped at five minutes; with a
    random source, shortened by up to half at random (domain.backoff.jittered), so sends
    that failed together (a provider's brief outage) are not all retried in one instant."""
    nominal = min(300, 5 * 2**retries)
    return timedelta(seconds=jittered(nominal, rng) if rng is not None else nominal)


def apply_outcome(
    lead: LeadProgress,
    *,
    step_count: int,
    error_class: ErrorClass | None,
    error_code: str | None,
    now: datetime,
    next_step_delay: timedelta | None = None,
    retry_after: timedelta | None = None,
    opt_out: bool = False,
    rng: RandomSource | None = None,
) -> LeadChange:
    """The lead after one attempt of its current step (DESIGN.md §3).

    `error_class` None means the provider accepted the message. Key-level, rate-limited
    and campaign-level answers never charge the lead: it keeps its state and step. With
    `rng`, a transient error's retry is jittered (transient_backoff).
    """
    if error_class is None:
        nxt = lead.current_step + 1
        if nxt >= step_count:
            done = LeadProgress(LeadState.COMPLETED, nxt, now, 0)
            return LeadChange(done, AttemptStatus.SENT, False)
        delay = next_step_delay or timedelta(0)
        return LeadChange(LeadProgress(LeadState.IN_PROGRESS, nxt, now + delay, 0), AttemptStatus.SENT, False)
    if error_class is ErrorClass.LEAD:
        state = LeadState.OPTED_OUT if opt_out else LeadState.FAILED
        failed = LeadProgress(state, lead.current_step, lead.next_action_at, lead.retries)
        return LeadChange(failed, AttemptStatus.FAILED, not opt_out, error_code)
    if error_class is ErrorClass.TRANSIENT:
        if lead.retries >= MAX_TRANSIENT_RETRIES:
            failed = LeadProgress(LeadState.FAILED, lead.current_step, lead.next_action_at, lead.retries)
            return LeadChange(failed, AttemptStatus.FAILED, True, error_code)
        later = LeadProgress(lead.state, lead.current_step, now + transient_backoff(lead.retries, rng),
                            lead.retries + 1)
        return LeadChange(later, AttemptStatus.FAILED, False, error_code)
    if error_class is ErrorClass.RATE:
        later = LeadProgress(lead.state, lead.current_step, now + (retry_after or timedelta(seconds=1)), lead.retries)
        return LeadChange(later, AttemptStatus.FAILED, False, error_code)
    if error_class is ErrorClass.KEY:
        return LeadChange(lead, AttemptStatus.KEY_ERROR, False, None)
    # campaign-level: the lead waits, the channel is held (or the campaign fails)
    return LeadChange(lead, AttemptStatus.FAILED, False, None)
