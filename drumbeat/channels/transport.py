"""An httpx transport that keeps many keep-alive connections cheaply.

httpcore's connection pool re-examines every connection it holds, for every request that
arrives or finishes (`_assign_requests_to_connections`: idle checks nested in a loop over
the connections, and a socket poll each) — quadratic in the pool's size. One pool of 256
connections spent ~4 ms of CPU per request, capping a worker at ~100 sends/s
(bench/sends_over_http.py). `ShardedTransport` spreads the calls over small pools instead (8
connections each), always the least busy one, so a worker with `--concurrency` calls in
flight keeps that many connections open at a cost that does not grow with it.
"""

from __future__ import annotations

import math

import httpx

PER_POOL = 8


class _Released(httpx.AsyncByteStream):
    """A response body that tells its pool's counter when it is closed (the connection is
    busy until then)."""

    def __init__(self, stream, release) -> None:
        self.stream = stream
        self.release = release

    async def __aiter__(self):
        async for chunk in self.stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.stream.aclose()
        finally:
            release, self.release = self.release, None
            if release is not None:
                release()


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, connections: int, *, per_pool: int = PER_POOL, **transport_options) -> None:
        per_pool = max(1, min(per_pool, connections))
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        # one TLS context for every pool (building one costs milliseconds and memory)
        transport_options.setdefault("verify", httpx.create_ssl_context())
        self.pools = [httpx.AsyncHTTPTransport(limits=limits, **transport_options)
                      for _ in range(math.ceil(connections / per_pool))]
        self.busy = [0] * len(self.pools)  # requests each pool is serving (until their body is closed)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = min(range(len(self.pools)), key=self.busy.__getitem__)
        self.busy[i] += 1

        def release() -> None:
            self.busy[i] -= 1

        try:
            response = await self.pools[i].handle_async_request(request)
        except BaseException:
            release()
            raise
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=_Released(response.stream, release), extensions=response.extensions)

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()
