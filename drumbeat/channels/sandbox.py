"""An in-process provider for every channel, with scriptable failures (API.md `sandbox`).

config: {"fail": null|"key"|"rate"|"transient"|"lead"|"campaign", "fail_after": null|int,
"latency_ms": 0, "dedupe": false}: fail every send with that class, or only after the first
`fail_after` sends of this integration (counted per process). `dedupe: true` answers a
repeated idempotency key with its first answer, like a provider that deduplicates (within
one process), so the engine re-sends an attempt cut off by a crash instead of asking.
The connection test (`probe`) answers the scripted `fail` at once (whatever `fail_after`),
and is accepted when `fail` is null.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.domain.errors import ErrorClass, SendResult

MESSAGES = {
    ErrorClass.KEY: "sandbox: the API key was rejected",
    ErrorClass.RATE: "sandbox: too many requests",
    ErrorClass.TRANSIENT: "sandbox: provider temporarily unavailable",
    ErrorClass.LEAD: "sandbox: the recipient cannot be reached",
    ErrorClass.CAMPAIGN: "sandbox: the template is not approved",
}


class SandboxAdapter:
    dedupes_by_idempotency_key = False  # unless an integration's config says `dedupe: true`

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()  # per integration: sends answered so far
        self.answered: dict[str, SendResult] = {}  # idempotency key -> answer, for `dedupe: true`

    def dedupes(self, config: dict) -> bool:
        """`dedupe: true` plays a provider that drops a repeated idempotency key (DESIGN.md §3)."""
        return bool((config or {}).get("dedupe"))

    async def send(self, credential: Credential, message: OutboundMessage) -> SendResult:
        config = credential.config or {}
        if self.dedupes(config) and message.idempotency_key in self.answered:
            return self.answered[message.idempotency_key]
        result = await self._send(credential, message)
        if self.dedupes(config):
            self.answered[message.idempotency_key] = result
        return result

    async def _send(self, credential: Credential, message: OutboundMessage) -> SendResult:
        config = credential.config or {}
        latency = float(config.get("latency_ms") or 0)
        if latency:
            await asyncio.sleep(latency / 1000)
        seen = self.sent[credential.integration_id]
        self.sent[credential.integration_id] += 1
        fail = config.get("fail")
        fail_after = config.get("fail_after")
        if fail and (fail_after is None or seen >= int(fail_after)):
            return _failure(ErrorClass(fail))
        return SendResult(provider_message_id=f"sbx-{message.idempotency_key}")

    async def probe(self, credential: Credential) -> SendResult:
        fail = (credential.config or {}).get("fail")
        return _failure(ErrorClass(fail)) if fail else SendResult()


def _failure(error_class: ErrorClass) -> SendResult:
    return SendResult(error_class=error_class, error_code=f"sandbox:{error_class.value}",
                      error_message=MESSAGES[error_class],
                      retry_after_seconds=1.0 if error_class is ErrorClass.RATE else None)
