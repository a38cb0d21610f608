"""Outbound webhooks, the durable outbox of their deliveries and the delivery log.

`enqueue` runs inside the transaction that made the event, so an event is delivered if
and only if its change committed; the notifier leases the head of each (webhook,
campaign) queue, which keeps deliveries in order per campaign across processes.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from drumbeat.domain.events import event_for
from drumbeat.store.ids import new_id
from drumbeat.store.tables import (
    campaigns,
    email_notifications,
    integrations,
    users,
    webhook_deliveries,
    webhook_delivery_log,
    webhooks,
)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


# --- webhooks ---------------------------------------------------------------------------

def insert_webhook(conn: Connection, workspace_id: str, url: str, sealed_secret: str, events: list[str],
                   now: datetime) -> str:
    webhook_id = new_id()
    conn.execute(insert(webhooks).values(id=webhook_id, workspace_id=workspace_id, url=url,
                                         secret_encrypted=sealed_secret, events=events, created_at=now))
    return webhook_id


def list_webhooks(conn: Connection, workspace_id: str) -> list[dict]:
    rows = conn.execute(select(webhooks).where(webhooks.c.workspace_id == workspace_id)
                        .order_by(webhooks.c.created_at, webhooks.c.id)).mappings()
    return [dict(r) for r in rows]


def delete_webhook(conn: Connection, webhook_id: str) -> None:
    """The webhook, its deliveries and their log (deleted explicitly: SQLite enforces no
    ON DELETE CASCADE without its foreign-key pragma)."""
    ids = select(webhook_deliveries.c.id).where(webhook_deliveries.c.webhook_id == webhook_id)
    conn.execute(delete(webhook_delivery_log).where(webhook_delivery_log.c.delivery_id.in_(ids)))
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))


def get_webhook(conn: Connection, workspace_id: str, webhook_id: str):
    return conn.execute(select(webhooks).where(webhooks.c.id == webhook_id,
                                               webhooks.c.workspace_id == workspace_id)).mappings().first()


# --- the outbox -------------------------------------------------------------------------

def enqueue_for_timeline(conn: Connection, campaign_id: str, *, action: str, to_status: str | None,
                         reason: str | None, actor_type: str, actor_id: str | None, details: dict,
                         now: datetime) -> int:
    """Write one delivery per subscribed webhook for the event this timeline entry raises."""
    event = event_for(str(action), to_status)
    if event is None:
        return 0
    campaign = conn.execute(select(campaigns.c.id, campaigns.c.workspace_id, campaigns.c.name, campaigns.c.status,
                                   campaigns.c.paused_reason).where(campaigns.c.id == campaign_id)).mappings().first()
    if campaign is None:
        return 0
    enqueue_email(conn, dict(campaign), event, reason=reason, details=details or {}, now=now)
    targets = [w for w in conn.execute(select(webhooks.c.id, webhooks.c.events)
                                       .where(webhooks.c.workspace_id == campaign["workspace_id"])).mappings()
               if not w["events"] or event in w["events"]]
    if not targets:
        return 0
    body = json.dumps({
        "event": event, "at": now.isoformat(),
        "campaign": {"id": campaign["id"], "name": campaign["name"], "status": campaign["status"],
                     "paused_reason": campaign["paused_reason"]},
        "details": {"reason": reason, "actor": {"type": actor_type, "id": actor_id}, **(details or {})},
    }, default=str, separators=(",", ":"))
    conn.execute(insert(webhook_deliveries), [
        {"webhook_id": w["id"], "campaign_id": campaign_id, "event": event, "body": body, "state": PENDING,
         "attempts": 0, "next_attempt_at": now, "created_at": now} for w in targets])
    return len(targets)


def enqueue_test(conn: Connection, webhook_id: str, url: str, event: str, now: datetime) -> None:
    """A test delivery: no campaign (its queue is the webhook's own, campaign id '')."""
    body = json.dumps({"event": event, "at": now.isoformat(), "webhook": {"id": webhook_id, "url": url}},
                      separators=(",", ":"))
    conn.execute(insert(webhook_deliveries).values(webhook_id=webhook_id, campaign_id="", event=event, body=body,
                                                    state=PENDING, attempts=0, next_attempt_at=now, created_at=now))


def lease_due_heads(conn: Connection, now: datetime, lease: timedelta, limit: int = 100) -> list[dict]:
    """Lease the oldest undelivered delivery of each (webhook, campaign) queue when it is
    due and nobody holds it: deliveries of one campaign go out one at a time, in order."""
    heads = (select(func.min(webhook_deliveries.c.id))
             .where(webhook_deliveries.c.state == PENDING)
             .group_by(webhook_deliveries.c.webhook_id, webhook_deliveries.c.campaign_id))
    candidates = list(conn.execute(
        select(webhook_deliveries.c.id).where(
            webhook_deliveries.c.id.in_(heads), webhook_deliveries.c.next_attempt_at <= now,
            or_(webhook_deliveries.c.locked_until.is_(None), webhook_deliveries.c.locked_until < now))
        .order_by(webhook_deliveries.c.id).limit(limit)).scalars())
    leased = _lease(conn, webhook_deliveries, candidates, now, lease)
    if not leased:
        return []
    rows = conn.execute(select(webhook_deliveries, webhooks.c.url, webhooks.c.secret_encrypted)
                        .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
                        .where(webhook_deliveries.c.id.in_(leased)).order_by(webhook_deliveries.c.id)).mappings()
    return [dict(r) for r in rows]


def _lease(conn: Connection, table, ids: list[int], now: datetime, lease: timedelta) -> list[int]:
    """Compare-and-set each pending row's lock: of two notifiers racing for one, one wins."""
    leased = []
    for row_id in ids:
        result = conn.execute(update(table).where(
            table.c.id == row_id, table.c.state == PENDING,
            or_(table.c.locked_until.is_(None), table.c.locked_until < now)).values(locked_until=now + lease))
        if result.rowcount == 1:
            leased.append(row_id)
    return leased


def record_try(conn: Connection, delivery_id: int, *, attempt: int, status_code: int | None, error: str | None,
               delivered: bool, next_attempt_at: datetime, now: datetime, gave_up: bool = False) -> None:
    """Log one try; the delivery is delivered, failed (`gave_up`: its tries ran out, and the
    next delivery of its queue becomes the head), or pending until `next_attempt_at`."""
    conn.execute(insert(webhook_delivery_log).values(delivery_id=delivery_id, attempt=attempt,
                                                     status_code=status_code, error=error, at=now))
    values: dict = {"attempts": attempt, "last_status_code": status_code, "last_error": error, "locked_until": None}
    if delivered:
        values.update(state=DELIVERED, delivered_at=now)
    elif gave_up:
        values.update(state=FAILED, failed_at=now)
    else:
        values.update(next_attempt_at=next_attempt_at)
    conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(**values))


def list_deliveries(conn: Connection, webhook_id: str, *, limit: int, offset: int) -> list[dict]:
    rows = [dict(r) for r in conn.execute(
        select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        .order_by(webhook_deliveries.c.id.desc()).offset(offset).limit(limit)).mappings()]
    if rows:
        log: dict[int, list[dict]] = {}
        for r in conn.execute(select(webhook_delivery_log)
                              .where(webhook_delivery_log.c.delivery_id.in_([d["id"] for d in rows]))
                              .order_by(webhook_delivery_log.c.id)).mappings():
            log.setdefault(r["delivery_id"], []).append(dict(r))
        for d in rows:
            d["log"] = log.get(d["id"], [])
    return rows


# --- emails to owners and operators ------------------------------------------------------

def enqueue_email(conn: Connection, campaign: dict, event: str, *, reason: str | None, details: dict,
                  now: datetime) -> None:
    recipients = sorted(conn.execute(select(users.c.email).where(
        users.c.workspace_id == campaign["workspace_id"], users.c.role.in_(("owner", "operator")))).scalars())
    if not recipients:
        return
    payload = {"campaign": {k: campaign[k] for k in ("id", "name", "status", "paused_reason")}, "reason": reason,
               "details": json.loads(json.dumps(details, default=str))}
    conn.execute(insert(email_notifications).values(
        workspace_id=campaign["workspace_id"], campaign_id=campaign["id"], event=event, recipients=recipients,
        payload=payload, state=PENDING, attempts=0, next_attempt_at=now, created_at=now))


def lease_due_emails(conn: Connection, now: datetime, lease: timedelta, limit: int = 50) -> list[dict]:
    """Due pending emails nobody is sending, oldest first, each leased with a compare-and-set."""
    candidates = list(conn.execute(
        select(email_notifications.c.id).where(
            email_notifications.c.state == PENDING, email_notifications.c.next_attempt_at <= now,
            or_(email_notifications.c.locked_until.is_(None), email_notifications.c.locked_until < now))
        .order_by(email_notifications.c.id).limit(limit)).scalars())
    leased = _lease(conn, email_notifications, candidates, now, lease)
    if not leased:
        return []
    rows = conn.execute(select(email_notifications).where(email_notifications.c.id.in_(leased))
                        .order_by(email_notifications.c.id)).mappings()
    return [dict(r) for r in rows]


def smtp_integration(conn: Connection, workspace_id: str):
    """The workspace's first active SMTP integration, if any."""
    return conn.execute(select(integrations).where(
        integrations.c.workspace_id == workspace_id, integrations.c.provider == "smtp",
        integrations.c.enabled.is_(True), integrations.c.health == "active")
        .order_by(integrations.c.created_at, integrations.c.id).limit(1)).mappings().first()


def record_email_try(conn: Connection, email_id: int, *, attempt: int, state: str, error: str | None,
                     next_attempt_at: datetime, now: datetime) -> None:
    values: dict = {"attempts": attempt, "state": state, "last_error": error, "locked_until": None,
                    "next_attempt_at": next_attempt_at}
    if state == "sent":
        values["sent_at"] = now
    conn.execute(update(email_notifications).where(email_notifications.c.id == email_id).values(**values))
