"""Outbound webhooks of a workspace (API.md): create, list, delete, and the delivery log.

The secret that signs deliveries is sealed with the context's secret box and never
returned whole (but a generated one, once, in the answer that created it); events reach
the outbox from the store (store.notifications)."""

from __future__ import annotations

import base64
import secrets

from drumbeat.domain.audit import CREATED, DELETED
from drumbeat.domain.exceptions import NotFound
from drumbeat.services import audit
from drumbeat.services.context import Context, Principal
from drumbeat.store import notifications as store
from drumbeat.store.secrets import mask


def webhook_view(ctx: Context, row) -> dict:
    return {"id": row["id"], "url": row["url"], "events": row["events"],
            "secret": mask(ctx.box.open(row["secret_encrypted"]).get("secret")), "created_at": row["created_at"]}


def generate_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create_webhook(ctx: Context, principal: Principal, url: str, secret: str | None, events: list[str]) -> dict:
    """Without `secret`, one is generated and returned whole, this once (API.md)."""
    now = ctx.clock()
    generated = generate_secret() if secret is None else None
    with ctx.db.begin() as conn:
        webhook_id = store.insert_webhook(conn, principal.workspace_id, url,
                                          ctx.box.seal({"secret": secret or generated}), sorted(set(events)), now)
        audit.record(conn, principal.workspace_id, principal, CREATED, "webhook", webhook_id,
                     {"url": url, "events": sorted(set(events))}, now)
        view = webhook_view(ctx, store.get_webhook(conn, principal.workspace_id, webhook_id))
    return {**view, "secret": generated} if generated else view


def delete_webhook(ctx: Context, principal: Principal, webhook_id: str) -> None:
    """Another workspace's webhook is not found, exactly like an unknown one."""
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = store.get_webhook(conn, principal.workspace_id, webhook_id)
        if row is None:
            raise NotFound("webhook not found", {"id": webhook_id})
        store.delete_webhook(conn, webhook_id)
        audit.record(conn, principal.workspace_id, principal, DELETED, "webhook", webhook_id,
                     {"url": row["url"], "events": row["events"]}, now)


def list_webhooks(ctx: Context, principal: Principal) -> list[dict]:
    with ctx.db.begin() as conn:
        return [webhook_view(ctx, r) for r in store.list_webhooks(conn, principal.workspace_id)]


def list_deliveries(ctx: Context, principal: Principal, webhook_id: str, *, limit: int = 50,
                    offset: int = 0) -> list[dict]:
    """Newest first, each with its log of tries (status code, attempt, error, time)."""
    with ctx.db.begin() as conn:
        if store.get_webhook(conn, principal.workspace_id, webhook_id) is None:
            raise NotFound("webhook not found", {"id": webhook_id})
        rows = store.list_deliveries(conn, webhook_id, limit=limit, offset=offset)
    return [{"id": str(d["id"]), "event": d["event"], "campaign_id": d["campaign_id"], "state": d["state"],
             "attempts": d["attempts"], "last_status_code": d["last_status_code"], "last_error": d["last_error"],
             "next_attempt_at": d["next_attempt_at"] if d["state"] == "pending" else None,
             "created_at": d["created_at"], "delivered_at": d["delivered_at"], "failed_at": d["failed_at"],
             "log": [{"attempt": e["attempt"], "status_code": e["status_code"], "error": e["error"], "at": e["at"]}
                     for e in d["log"]]} for d in rows]


TEST_EVENT = "webhook.test"


def send_test(ctx: Context, principal: Principal, webhook_id: str) -> None:
    """Queue a `webhook.test` delivery: sent, signed, retried and logged like any other
    (its own queue, beside the campaigns')."""
    now = ctx.clock()
    with ctx.db.begin() as conn:
        row = store.get_webhook(conn, principal.workspace_id, webhook_id)
        if row is None:
            raise NotFound("webhook not found", {"id": webhook_id})
        store.enqueue_test(conn, row["id"], row["url"], TEST_EVENT, now)
