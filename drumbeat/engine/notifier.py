"""Delivers the outbox of outbound webhooks, and the emails to owners and operators (DESIGN.md §8).

Each delivery is POSTed as the JSON body stored with it, signed twice:
`X-Drumbeat-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`,
and the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature:
v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, made by the reference
`standardwebhooks` library), whose timestamp lets a receiver refuse a replayed delivery.
A 2xx answer delivers it; anything else (or no answer) is logged and retried with
exponential, jittered backoff, up to MAX_WEBHOOK_TRIES tries: then it is marked failed
(domain.backoff). Only the oldest pending delivery of a (webhook, campaign) queue is
tried, so a campaign's events arrive in order; the outbox lives in the database, so a
restart loses nothing (a delivery cut off mid-request is sent again: at least once).
While the database is away the loop probes it at least once a second and logs once per
outage, not once per probe.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import httpx
import structlog
from sqlalchemy.exc import DBAPIError
from standardwebhooks import Webhook as StandardWebhook

from drumbeat.config import LOCAL_URL
from drumbeat.domain.backoff import Outage, outage_probe_delay, retry_delay, webhook_retry_delay
from drumbeat.domain.events import email_for
from drumbeat.services.context import Context
from drumbeat.store import notifications as store

log = structlog.get_logger()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


WHSEC_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks key: the base64-decoded part of a `whsec_` secret (as the
    specification's secrets are written), else the secret's UTF-8 bytes (API.md). The
    library takes the bytes as they are, so either kind signs through it."""
    if secret.startswith(WHSEC_PREFIX):
        part = secret[len(WHSEC_PREFIX):]
        return base64.b64decode(part + "=" * (-len(part) % 4))
    return secret.encode()


def standard_headers(secret: str, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` (this try's, in whole seconds) and `webhook-signature`."""
    return {"webhook-id": message_id, "webhook-timestamp": str(math.floor(at.timestamp())),
            "webhook-signature": StandardWebhook(signing_key(secret)).sign(message_id, at, body)}


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """`smtp://user:password@host:port?from=alerts@example.com&starttls=true`"""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        return cls(parts.hostname or "localhost", parts.port or 25, query.get("from", ["drumbeat@localhost"])[0],
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None,
                   query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"))


class Notifier:
    def __init__(self, ctx: Context, *, client: httpx.AsyncClient | None = None, tick_seconds: float = 1.0,
                 base_delay: float = 2.0, max_delay: float = 600.0, timeout: float = 10.0,
                 smtp_url: str | None = None, public_url: str | None = None,
                 rng: random.Random | None = None) -> None:
        self.ctx = ctx
        self.rng = rng or random.Random()
        self.outage = Outage()
        self.probe_first, self.probe_at_most = 0.1, 1.0  # domain.backoff.outage_probe_delay
        self.smtp = SmtpServer.from_url(smtp_url) if smtp_url else None
        self.public_url = (public_url or LOCAL_URL).rstrip("/")
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
                pause = self.tick
                try:
                    busy = await self.deliver_due()
                    lasted = self.outage.recovered(time.monotonic())
                    if lasted is not None:
                        log.info("notifier: database reachable again", outage_seconds=round(lasted, 3))
                except DBAPIError as exc:
                    # The database went away: probe it with a growing, jittered pause (at most a
                    # second), and say so once per outage, not once per probe (issue 21).
                    if self.outage.failed(time.monotonic()):
                        log.warning("notifier: database unreachable, probing",
                                    error=type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__)
                    busy = 0
                    pause = outage_probe_delay(self.outage.failures, self.rng, first=self.probe_first,
                                               at_most=self.probe_at_most)
                except Exception as exc:  # not the database: try again next tick
                    log.warning("notifier error", error=type(exc).__name__)
                    busy = 0
                if not busy:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=pause)
                    except TimeoutError:
                        pass
        finally:
            if own:
                await self.client.aclose()

    async def deliver_due(self) -> int:
        """Try every due head delivery and every due email once; returns how many were tried."""
        with self.ctx.db.begin() as conn:
            due = store.lease_due_heads(conn, self.ctx.clock(), self.lease)
            emails = store.lease_due_emails(conn, self.ctx.clock(), self.lease)
        await asyncio.gather(*(self._deliver(d) for d in due), *(self._send_email(e) for e in emails))
        return len(due) + len(emails)

    def _smtp_for(self, workspace_id: str) -> SmtpServer | None:
        """DRUMBEAT_SMTP_URL, else the workspace's own SMTP integration, else none."""
        if self.smtp is not None:
            return self.smtp
        with self.ctx.db.connect() as conn:
            row = store.smtp_integration(conn, workspace_id)
        if row is None:
            return None
        secrets, config = self.ctx.box.open(row["credentials_encrypted"]), row["config"] or {}
        return SmtpServer(config["host"], int(config["port"]), config["from"], secrets.get("username"),
                          secrets.get("password"), bool(config.get("starttls")))

    async def _send_email(self, email: dict) -> None:
        server = self._smtp_for(email["workspace_id"])
        attempt, now = email["attempts"] + 1, self.ctx.clock()
        if server is None:  # nobody configured email: nothing to retry
            with self.ctx.db.begin() as conn:
                store.record_email_try(conn, email["id"], attempt=attempt, state="skipped",
                                       error="no SMTP configured", next_attempt_at=now, now=now)
            return
        payload = email["payload"]
        link = f"{self.public_url}/campaigns/{payload['campaign']['id']}"
        subject, body = email_for(email["event"], payload["campaign"], payload["reason"], payload["details"], link)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = server.sender, ", ".join(email["recipients"]), subject
        message.set_content(body)
        error = None
        try:
            await aiosmtplib.send(message, hostname=server.host, port=server.port, username=server.username,
                                  password=server.password, start_tls=server.starttls, timeout=self.timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            log.info("notification email failed", email_id=email["id"], attempt=attempt, error=error)
        wait = timedelta(seconds=retry_delay(attempt, self.rng, base=self.base_delay, cap=self.max_delay))
        with self.ctx.db.begin() as conn:
            store.record_email_try(conn, email["id"], attempt=attempt, state="pending" if error else "sent",
                                   error=error, next_attempt_at=now + wait, now=now)

    async def _deliver(self, delivery: dict) -> None:
        body = delivery["body"].encode()
        secret = self.ctx.box.open(delivery["secret_encrypted"])["secret"]
        # webhook-id is the delivery's id, the same on every try (a receiver dedupes by it).
        headers = {"Content-Type": "application/json", "X-Drumbeat-Signature": signature(secret, body),
                   "X-Drumbeat-Event": delivery["event"], "X-Drumbeat-Delivery": str(delivery["id"]),
                   **standard_headers(secret, str(delivery["id"]), self.ctx.clock(), body)}
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
        wait = webhook_retry_delay(attempt, self.rng, base=self.base_delay, cap=self.max_delay)
        with self.ctx.db.begin() as conn:
            store.record_try(conn, delivery["id"], attempt=attempt, status_code=status, error=error,
                             delivered=error is None, gave_up=error is not None and wait is None,
                             next_attempt_at=now + timedelta(seconds=wait or 0), now=now)
        if error and wait is None:
            log.warning("webhook delivery given up", delivery_id=delivery["id"], attempt=attempt, error=error)
        elif error:
            log.info("webhook delivery failed", delivery_id=delivery["id"], attempt=attempt, error=error)
