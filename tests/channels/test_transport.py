"""ShardedTransport: many keep-alive connections over small httpcore pools, each request
on the least busy one, every connection returned when its response is closed."""

from __future__ import annotations

import asyncio

import httpx

from drumbeat.bootstrap import build_adapters
from drumbeat.channels.transport import ShardedTransport


async def test_concurrent_requests_spread_over_the_pools_and_connections_are_kept_alive(whatsapp_server):
    transport = ShardedTransport(16, per_pool=4)
    assert len(transport.pools) == 4
    whatsapp_server.latency = 0.05  # every request is still in flight when the next ones start
    url = f"{whatsapp_server.base_url}/v23.0/1/messages"
    async with httpx.AsyncClient(transport=transport) as client:
        body = {"messaging_product": "whatsapp", "to": "4915112345678", "type": "text", "text": {"body": "x"}}
        headers = {"Authorization": "Bearer t"}
        for _ in range(3):  # three waves of 16: the second and third reuse the first one's connections
            answers = await asyncio.gather(*(client.post(url, json=body, headers=headers) for _ in range(16)))
            assert all(a.status_code == 200 for a in answers)
            assert transport.busy == [0, 0, 0, 0]  # every response read and closed: nothing is held
        opened = [len(pool._pool.connections) for pool in transport.pools]
    assert opened == [4, 4, 4, 4]  # 16 in flight used every pool fully, and no connection more
    assert len(whatsapp_server.requests) == 48


async def test_a_failed_request_gives_its_slot_back():
    transport = ShardedTransport(2, per_pool=1)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            try:
                await client.get("http://127.0.0.1:9/unreachable", timeout=2)
            except httpx.ConnectError:
                pass
    assert transport.busy == [0, 0]


async def test_a_worker_keeps_a_connection_for_each_call_in_flight(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    adapters = build_adapters(concurrency=256)
    transport = adapters["whatsapp_cloud"].client._transport
    assert isinstance(transport, ShardedTransport)
    assert sum(pool._pool._max_connections for pool in transport.pools) == 256
    assert all(pool._pool._max_keepalive_connections == pool._pool._max_connections for pool in transport.pools)
    await adapters["whatsapp_cloud"].client.aclose()


async def test_behind_an_environment_proxy_the_worker_keeps_httpx_own_transport(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    client = build_adapters(concurrency=64)["whatsapp_cloud"].client
    assert not isinstance(client._transport, ShardedTransport)
    proxied = client._transport_for_url(httpx.URL("https://graph.facebook.com/v23.0/1/messages"))
    assert proxied is not client._transport  # the proxy's mount answers
    assert proxied._pool._max_connections == 64
    await client.aclose()
