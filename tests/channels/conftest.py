"""Channel adapters against local fake providers: one server per session, reset per test."""

from __future__ import annotations

import httpx
import pytest

from drumbeat.channels.transport import provider_client
from tests.fakes.providers import free_port


@pytest.fixture
async def http():
    """The shared client the adapters get in production, with a short timeout for tests."""
    async with provider_client(8, httpx.Timeout(2.0, connect=1.0)) as client:
        yield client


@pytest.fixture
def closed_port_url() -> str:
    """A base URL where nothing listens: connection refused."""
    return f"http://127.0.0.1:{free_port()}"
