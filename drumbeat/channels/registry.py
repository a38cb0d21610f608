"""Which adapter serves each provider: the one place adapters are constructed.

The worker builds them once over a long-lived client (bootstrap.build_adapters); a test
send and a connection test make one call over a short-lived client of their own (`once`).
Both come here, so a new provider is added once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from drumbeat.channels.base import ChannelAdapter
from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.channels.smtp import SmtpAdapter
from drumbeat.channels.transport import provider_client
from drumbeat.channels.twilio import TwilioAdapter
from drumbeat.channels.unipile import UnipileAdapter
from drumbeat.channels.whatsapp import WhatsAppCloudAdapter
from drumbeat.domain.errors import ErrorClass, SendResult
from drumbeat.domain.leads import PROVIDER_CONNECT_TIMEOUT_SECONDS, PROVIDER_IO_TIMEOUT_SECONDS


def adapters(client: httpx.AsyncClient, public_url: str | None = None) -> dict[str, ChannelAdapter]:
    """One adapter per provider; the HTTP ones share `client`. With `public_url`, Twilio's
    StatusCallback names each attempt (API.md v1.1)."""
    return {
        "sandbox": SandboxAdapter(),
        "whatsapp_cloud": WhatsAppCloudAdapter(client),
        "twilio": TwilioAdapter(client, public_url),
        "smtp": SmtpAdapter(),
        "unipile": UnipileAdapter(client),
    }


# The prefix of each provider's error codes (`whatsapp:190`), where it differs from its name.
CODE_PREFIXES = {"whatsapp_cloud": "whatsapp"}


def code_prefix(provider: str) -> str:
    return CODE_PREFIXES.get(provider, provider)


def client(connections: int) -> httpx.AsyncClient:
    """The adapters' HTTP client with the provider timeouts (a retry of an in-doubt lead
    waits out the longest call these allow: domain.leads)."""
    timeout = httpx.Timeout(PROVIDER_IO_TIMEOUT_SECONDS, connect=PROVIDER_CONNECT_TIMEOUT_SECONDS)
    return provider_client(connections, timeout)


async def once(provider: str, call: Callable[[ChannelAdapter], Awaitable[SendResult]]) -> SendResult:
    """`call(adapter)` for one request outside the worker (a test send, a connection test),
    over a client of its own with the provider timeouts, closed after it."""
    async with client(1) as http:
        try:
            return await call(adapters(http)[provider])
        except Exception as exc:  # an adapter bug is an answer here too, never a 500
            return SendResult(error_class=ErrorClass.TRANSIENT, error_code=f"{provider}:exception",
                              error_message=type(exc).__name__)
