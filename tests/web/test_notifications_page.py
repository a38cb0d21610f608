"""The notifications page shows a delivery given up after its last try (issue 21)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from drumbeat.domain.backoff import MAX_WEBHOOK_TRIES
from drumbeat.services import notifications
from drumbeat.store import notifications as store
from drumbeat.store.tables import webhook_deliveries
from tests.web.conftest import sign_in


def test_a_delivery_given_up_is_shown_failed_with_when_and_its_last_answer(client, ctx, users):
    owner = users["owner"]["principal"]
    hook = notifications.create_webhook(ctx, owner, "https://hooks.example.com/drumbeat", None, ["campaign.paused"])
    now = ctx.clock()
    with ctx.db.begin() as conn:
        delivery_id = conn.execute(insert(webhook_deliveries).values(
            webhook_id=hook["id"], campaign_id="c" * 32, event="campaign.paused", body="{}", state="pending",
            attempts=0, next_attempt_at=now, created_at=now).returning(webhook_deliveries.c.id)).scalar_one()
        for attempt in range(1, MAX_WEBHOOK_TRIES + 1):
            store.record_try(conn, delivery_id, attempt=attempt, status_code=503, error="HTTP 503",
                             delivered=False, gave_up=attempt == MAX_WEBHOOK_TRIES,
                             next_attempt_at=now + timedelta(seconds=attempt), now=now)
    sign_in(client, "owner@acme.test")

    page = client.get("/notifications")

    assert page.status_code == 200
    assert 'class="chip delivery-failed">failed<' in page.text
    assert "gave up" in page.text and "HTTP 503" in page.text
    assert f'<td class="num">{MAX_WEBHOOK_TRIES}</td>' in page.text
