"""Error classes of provider answers (DESIGN.md §3).

    ProviderError
      key        the credential is unusable (auth failed, revoked, quota exhausted,
                 account locked): mark the key failed for this run, do not charge the lead
      rate       per-second throttle: retry later, not a failure of anything
      transient  5xx, timeout, connection error: retry with backoff, then fail the lead
      lead       this recipient cannot be reached: fail (or opt out) the lead only
      campaign   the template is missing or not approved: stop the channel

Adapters raise nothing: they return an outcome carrying one of these classes and a
provider-qualified code (`whatsapp:131026`, `twilio:21211`, `sandbox:lead`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorClass(StrEnum):
    KEY = "key"
    RATE = "rate"
    TRANSIENT = "transient"
    LEAD = "lead"
    CAMPAIGN = "campaign"


@dataclass(frozen=True)
class SendResult:
    """What a provider answered to one send."""

    provider_message_id: str | None = None
    error_class: ErrorClass | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after_seconds: float | None = None
    opt_out: bool = False  # lead-level: the recipient unsubscribed (opt out rather than fail)
    hard_bounce: bool = False  # lead-level: the address does not exist (SMTP 5.1.x): never write to it again
    health_event: str | None = None  # key-level: the account itself is disconnected or restricted

    @property
    def accepted(self) -> bool:
        return self.error_class is None
