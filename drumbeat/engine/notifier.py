"""Delivers the outbox of outbound webhooks (DESIGN.md §8).

Each delivery is POSTed as the JSON body stored with it, signed
`X-Drumbeat-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`.
A 2xx answer delivers it; anything else (or no answer) is logged and retried with
exponential backoff. Only the oldest pending delivery of a (webhook, campaign) queue is
tried, so a campaign's events arrive in order; the outbox lives in the database, so a
restart loses nothing (a delivery cut off mid-request is sent again: at least once).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta

import httpx
import structlog

from drumbeat.domain.events import retry_delay
from drumbeat.services.context import Context
from drumbeat.store import notifications as store

log = structlog.get_logger()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(self, ctx: Context, *, client: httpx.AsyncClient | None = None, tick_seconds: float = 1.0,
                 base_delay: float = 2.0, max_delay: float = 600.0, timeout: float = 10.0) -> None:
        self.ctx = ctx
        self.client = client
        self.tick = tick_seconds
        self.base_delay, self.max_delay = base_delay, max_delay
        self.timeout = timeout
        self.lease = timedelta(seconds=timeout * 3)

    async def run(self, stop: asyncio.Event) -> None:
        own = self.client is None
        if own:
            self.client = httpx.AsyncClient(timeout=self.timeout)
        try:
            while not stop.is_set():
                try:
                    busy = await self.deliver_due()
                except Exception as exc:  # the database went away: try again next tick
                    log.warning("notifier error", error=type(exc).__name__)
                    busy = 0
                if not busy:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=self.tick)
                    except TimeoutError:
                        pass
        finally:
            if own:
                await self.client.aclose()

    async def deliver_due(self) -> int:
        """Try every due head delivery once; returns how many were tried."""
        with self.ctx.db.begin() as conn:
            due = store.lease_due_heads(conn, self.ctx.clock(), self.lease)
        if due:
            await asyncio.gather(*(self._deliver(d) for d in due))
        return len(due)

    async def _deliver(self, delivery: dict) -> None:
        body = delivery["body"].encode()
        secret = self.ctx.box.open(delivery["secret_encrypted"])["secret"]
        headers = {"Content-Type": "application/json", "X-Drumbeat-Signature": signature(secret, body),
                   "X-Drumbeat-Event": delivery["event"], "X-Drumbeat-Delivery": str(delivery["id"])}
        status, error = None, None
        try:
            response = await self.client.post(delivery["url"], content=body, headers=headers, timeout=self.timeout)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        attempt = delivery["attempts"] + 1
        now = self.ctx.clock()
        wait = timedelta(seconds=retry_delay(attempt, base=self.base_delay, cap=self.max_delay))
        with self.ctx.db.begin() as conn:
            store.record_try(conn, delivery["id"], attempt=attempt, status_code=status, error=error,
                             delivered=error is None, next_attempt_at=now + wait, now=now)
        if error:
            log.info("webhook delivery failed", delivery_id=delivery["id"], attempt=attempt, error=error)
