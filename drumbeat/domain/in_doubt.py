"""Settling in-doubt sends without a person (DESIGN.md §3 and §9, API.md v1.1).

A worker that died mid-call leaves an attempt nobody knows the fate of. What may settle
it, in order of trust:
- a provider status naming the attempt (WhatsApp echoes `biz_opaque_callback_data`,
  Twilio calls the `StatusCallback` URL that carries `?attempt=`): the provider's word;
- a look-up of the provider's messages (Twilio): a message is the attempt's only if its
  body, its sender and its creation time inside the attempt's lease all match, and
  exactly one does (`match_lookup`); none or several prove nothing — a miss may be a
  message still queued, two may be two campaigns saying the same thing;
- the campaign's `in_doubt_policy`: `retry_after_silence` sends once more after the
  silence, but only where the provider's statuses are known to arrive (`sweep_verdict`).

Pure: the services read the rows and the provider, these functions decide.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from drumbeat.domain.errors import ErrorClass
from drumbeat.domain.leads import LeadProgress, LeadState, acceptance_wait, apply_outcome
from drumbeat.domain.schedule import Window, clamp, lead_zone


class InDoubtPolicy(StrEnum):
    ASK = "ask"  # unresolved attempts wait for a person
    RETRY_AFTER_SILENCE = "retry_after_silence"


DEFAULT_SILENCE_SECONDS = 900
# Silence proves something only where the provider has delivered statuses this recently:
# none at all means its webhook is not set up.
STATUSES_RECENT = timedelta(hours=1)


class Resolution(StrEnum):
    """How an in-doubt attempt was judged (attempts.doubt_resolution, the timeline)."""

    PROVIDER_STATUS = "provider_status"  # settled by a status naming the attempt
    LOOKUP = "lookup"  # settled by the provider's message look-up
    RETRIED = "retried"  # sent once more by the policy
    LEFT = "left"  # left for a person


@dataclass(frozen=True)
class ProviderMessage:
    """One message of the provider's list (a Twilio `Messages.json` row)."""

    sid: str
    body: str | None
    sender: str | None  # the number it was sent from
    messaging_service: str | None  # the Messaging Service (MG...) it went through, if any
    created_at: datetime | None
    status: str | None = None


def sender_matches(message: ProviderMessage, sender: str) -> bool:
    """The attempt's sender is a number (`From`) or a Messaging Service (`MG...`)."""
    if sender.startswith("MG"):
        return message.messaging_service == sender
    return message.sender == sender


def match_lookup(messages: list[ProviderMessage], *, body: str, sender: str, started_at: datetime,
                 lease_until: datetime) -> ProviderMessage | None:
    """The one message that is the attempt's, or None when none or several match.

    A match has the attempt's body and sender, and was created inside the attempt's lease:
    from when the attempt was committed (the provider's clock has whole seconds, so from
    the start of that second) until the lease expired — a call the worker started cannot
    have reached the provider later."""
    earliest = started_at.replace(microsecond=0)
    found = [m for m in messages
             if m.body == body and sender_matches(m, sender) and m.created_at is not None
             and earliest <= m.created_at <= lease_until]
    return found[0] if len(found) == 1 else None


def in_doubt_since(lease_until: datetime | None, updated_at: datetime) -> datetime:
    """When an attempt went in doubt: its lease's end (else when it was marked)."""
    return lease_until or updated_at


def sweep_verdict(*, policy: str, silence_seconds: int, doubted_since: datetime, now: datetime,
                  statuses_since: datetime | None, retried_before: bool) -> Resolution | None:
    """What the sweeper does with an in-doubt attempt nothing settled (its look-up, where
    there is one, found nothing): None to wait longer, RETRIED to send it once more, LEFT
    to leave it for a person.

    Nothing is decided before the silence has passed (a status may still come). Then, with
    `retry_after_silence`, the attempt is retried — once: a lead whose step was retried by
    the policy already is left — and only on an integration that delivered a status within
    the last hour (`statuses_since`): with none, silence proves nothing. `ask` leaves it."""
    if now < doubted_since + timedelta(seconds=silence_seconds):
        return None
    if policy != InDoubtPolicy.RETRY_AFTER_SILENCE or retried_before:
        return Resolution.LEFT
    if statuses_since is None or statuses_since < now - STATUSES_RECENT:
        return Resolution.LEFT
    return Resolution.RETRIED


def workable_state(current_step: int) -> str:
    """The state an in-doubt lead goes back to when it may be sent again (a retry, a
    transient failure): not contacted on its first step, in progress after."""
    return "not_contacted" if current_step == 0 else "in_progress"


def lead_after_answer(lead: dict, steps: list[dict], schedule: dict, *, error_class: ErrorClass | None,
                      error_code: str | None, now: datetime,
                      rng: random.Random | None = None) -> tuple[dict, str, bool]:
    """The lead's new fields after its current step's attempt was answered — exactly as the
    worker moves it (engine.worker._record_in): accepted, the next step is planned from
    now and clamped into the window (or waits for an acceptance); refused, by its class. An
    in-doubt lead is judged as the workable lead it was. Returns (lead fields, the
    attempt's status, whether the failure counts)."""
    step = lead["current_step"]
    nxt = step + 1
    state = LeadState(lead["state"])
    if state is LeadState.IN_DOUBT:
        state = LeadState(workable_state(step))
    change = apply_outcome(
        LeadProgress(state, step, lead["next_action_at"], lead["retries"]), step_count=len(steps),
        error_class=error_class, error_code=error_code, now=now,
        next_step_delay=timedelta(seconds=steps[nxt]["delay_seconds"]) if nxt < len(steps) else None)
    advanced = change.lead.current_step != step
    wait = acceptance_wait(steps[step], steps[nxt] if nxt < len(steps) else None) if error_class is None else None
    next_at = change.lead.next_action_at
    if advanced and not wait and change.lead.state is LeadState.IN_PROGRESS:
        next_at = clamp(next_at, Window.from_schedule(schedule), lead_zone(lead.get("timezone")), rng)
    return ({"state": change.lead.state, "current_step": change.lead.current_step,
             "next_action_at": now + wait if wait else next_at, "awaiting": "acceptance" if wait else None,
             "retries": change.lead.retries, "attempt_no": 0 if advanced else lead["attempt_no"],
             "last_error": change.last_error or lead.get("last_error")}, change.attempt_status, change.counted_failure)
