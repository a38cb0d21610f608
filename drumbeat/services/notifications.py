"""Outbound webhooks of a workspace (API.md): create, list, and the delivery log.

The secret that signs deliveries is sealed with the context's secret box and never
returned whole; events reach the outbox from the store (store.notifications)."""

from __future__ import annotations

from drumbeat.domain.audit import CREATED
from drumbeat.domain.exceptions import NotFound
from drumbeat.services import audit
from drumbeat.services.context import Context, Principal
from drumbeat.store import notifications as store
from drumbeat.store.secrets import mask


def webhook_view(ctx: Context, row) -> dict:
    return {"id": row["id"], "url": row["url"], "events": row["events"],
            "secret": mask(ctx.box.open(row["secret_encrypted"]).get("secret")), "created_at": row["created_at"]}


def create_webhook(ctx: Context, principal: Principal, url: str, secret: str, events: list[str]) -> dict:
    now = ctx.clock()
    with ctx.db.begin() as conn:
        webhook_id = store.insert_webhook(conn, principal.workspace_id, url, ctx.box.seal({"secret": secret}),
                                          sorted(set(events)), now)
        audit.record(conn, principal.workspace_id, principal, CREATED, "webhook", webhook_id,
                     {"url": url, "events": sorted(set(events))}, now)
        return webhook_view(ctx, store.get_webhook(conn, principal.workspace_id, webhook_id))


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
             "created_at": d["created_at"], "delivered_at": d["delivered_at"],
             "log": [{"attempt": e["attempt"], "status_code": e["status_code"], "error": e["error"], "at": e["at"]}
                     for e in d["log"]]} for d in rows]
