"""Outbound webhooks (API.md, Users and workspace): the workspace's owner says where
campaign events go; each delivery is signed and logged."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from drumbeat.api.deps import ContextDep, Owner
from drumbeat.schemas import (
    EXAMPLE_AT,
    EXAMPLE_IDS,
    Instant,
    ObjectId,
    WebhookCreate,
    error_responses,
    examples,
)
from drumbeat.services import notifications

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WEBHOOK_EXAMPLE = {"id": EXAMPLE_IDS["webhook"], "url": "https://hooks.example.com/drumbeat",
                   "events": ["campaign.completed", "campaign.paused"], "secret": "****cret", "created_at": EXAMPLE_AT}


class WebhookPublic(BaseModel):
    model_config = examples(WEBHOOK_EXAMPLE)

    id: str
    url: str
    events: list[str]
    secret: str
    created_at: Instant


class WebhooksPublic(BaseModel):
    model_config = examples({"items": [WEBHOOK_EXAMPLE], "next_cursor": None})

    items: list[WebhookPublic]
    next_cursor: str | None = None


class DeliveryTry(BaseModel):
    attempt: int
    status_code: int | None
    error: str | None
    at: Instant


class DeliveryPublic(BaseModel):
    id: str
    event: str
    campaign_id: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: Instant | None
    created_at: Instant
    delivered_at: Instant | None
    failed_at: Instant | None  # given up: its last try failed too
    log: list[DeliveryTry]


class DeliveriesPublic(BaseModel):
    model_config = examples({"items": [{
        "id": "3", "event": "campaign.paused", "campaign_id": EXAMPLE_IDS["campaign"], "state": "delivered",
        "attempts": 2, "last_status_code": 200, "last_error": None, "next_attempt_at": None,
        "created_at": "2026-03-02T16:40:00+00:00", "delivered_at": "2026-03-02T16:40:31+00:00",
        "failed_at": None,
        "log": [{"attempt": 1, "status_code": 502, "error": "HTTP 502", "at": "2026-03-02T16:40:01+00:00"},
                {"attempt": 2, "status_code": 200, "error": None, "at": "2026-03-02T16:40:31+00:00"}]}],
        "next_cursor": None})

    items: list[DeliveryPublic]
    next_cursor: str | None = None


@router.post("", status_code=201, response_model=WebhookPublic, responses=error_responses(403, 422))
def create_webhook(body: WebhookCreate, principal: Owner, ctx: ContextDep):
    """Send the listed events to `url`, signed with `secret` (headers `X-Drumbeat-Signature`
    and the Standard Webhooks `webhook-signature`). Without `secret`, a `whsec_` secret is
    generated and returned whole in this answer only (masked from then on)."""
    return notifications.create_webhook(ctx, principal, body.url, body.secret, list(body.events))


@router.delete("/{webhook_id}", status_code=204, response_class=Response, responses=error_responses(403, 404))
def delete_webhook(webhook_id: ObjectId, principal: Owner, ctx: ContextDep):
    """Stop sending events there: the webhook and its pending deliveries and log are deleted."""
    notifications.delete_webhook(ctx, principal, webhook_id)
    return Response(status_code=204)


@router.get("", response_model=WebhooksPublic, responses=error_responses(403))
def list_webhooks(principal: Owner, ctx: ContextDep):
    return {"items": notifications.list_webhooks(ctx, principal), "next_cursor": None}


@router.get("/{webhook_id}/deliveries", response_model=DeliveriesPublic, responses=error_responses(403, 404))
def list_deliveries(webhook_id: ObjectId, principal: Owner, ctx: ContextDep,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None):
    """Newest first; each delivery with its log of tries (status code, attempt, error, time)."""
    # At most 18 digits: a larger offset overflowed the database's integer (a 500).
    offset = int(cursor) if cursor else 0
    items = notifications.list_deliveries(ctx, principal, webhook_id, limit=limit + 1, offset=offset)
    more = len(items) > limit
    return {"items": items[:limit], "next_cursor": str(offset + limit) if more else None}
