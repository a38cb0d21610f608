"""The one interface every channel adapter implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from drumbeat.domain.errors import SendResult


@dataclass(frozen=True)
class Credential:
    """One integration as an adapter sees it: decrypted credentials and its config."""

    integration_id: str
    provider: str
    channel: str
    credentials: dict
    config: dict


@dataclass(frozen=True)
class OutboundMessage:
    channel: str
    to: str  # the address the channel uses (E.164 phone, email, profile URL)
    body: str
    idempotency_key: str
    subject: str | None = None
    template: dict = field(default_factory=dict)  # the step's template (name, language, action...)


class ChannelAdapter(Protocol):
    # True when the provider itself drops a repeated idempotency key, so a send cut off
    # by a crash may safely be repeated with the same key (DESIGN.md §3).
    dedupes_by_idempotency_key: bool

    async def send(self, credential: Credential, message: OutboundMessage) -> SendResult: ...
