"""The one interface every channel adapter implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from drumbeat.domain.errors import SendResult
from drumbeat.domain.messages import OutboundMessage  # noqa: F401 - adapters take it from here


@dataclass(frozen=True)
class Credential:
    """One integration as an adapter sees it: decrypted credentials and its config."""

    integration_id: str
    provider: str
    channel: str
    credentials: dict
    config: dict


class ChannelAdapter(Protocol):
    # True when the provider itself drops a repeated idempotency key, so a send cut off
    # by a crash may safely be repeated with the same key (DESIGN.md §3).
    dedupes_by_idempotency_key: bool

    async def send(self, credential: Credential, message: OutboundMessage) -> SendResult: ...

    # One cheap authenticated read that sends nothing (the connection test; API.md v1.1):
    # accepted when the credential works, else the refusal classified as a send's would be.
    async def probe(self, credential: Credential) -> SendResult: ...
