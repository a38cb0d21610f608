"""Provider secrets never appear in API answers, logs or error records (DESIGN.md §7)."""

from __future__ import annotations

import asyncio
import json

import httpx
import structlog
from sqlalchemy import select

from drumbeat.bootstrap import build_adapters
from drumbeat.engine.worker import Worker
from drumbeat.store.tables import attempts, integrations
from tests.factory import add_leads

TOKEN = "EAAGsecretTOKEN0123456789"
APP_SECRET = "meta-app-secret-abcdef"


def test_a_full_run_with_failing_keys_never_shows_or_logs_the_secrets(ctx, client, owner, whatsapp_server):
    api, h = "/api/v1", owner["headers"]
    created = client.post(f"{api}/integrations", headers=h, json={
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "main",
        "credentials": {"access_token": TOKEN, "app_secret": APP_SECRET},
        "config": {"phone_number_id": "1001", "base_url": f"{whatsapp_server.base_url}/v23.0"}})
    campaign = client.post(f"{api}/campaigns", headers=h, json={
        "name": "Secrets", "steps": [{"channel": "whatsapp", "template": {"body": "Hi"}}]}).json()
    add_leads(ctx, campaign["id"], 30)
    client.post(f"{api}/campaigns/{campaign['id']}/start", headers=h)
    # The provider echoes the token in its error text, as some do.
    whatsapp_server.fail_key(TOKEN, code=190, after=10, message=f"Invalid OAuth access token {TOKEN}")

    async def run():
        async with httpx.AsyncClient(timeout=5) as http:
            await Worker(ctx, build_adapters(http), concurrency=4, tick_seconds=0.05).drain()

    with structlog.testing.capture_logs() as logs:
        asyncio.run(run())
    assert any(entry.get("reason") == "all_keys_failed" for entry in logs)  # something was logged

    answers = [created.text,
               client.get(f"{api}/integrations", headers=h).text,
               client.get(f"{api}/campaigns/{campaign['id']}", headers=h).text,
               client.get(f"{api}/campaigns/{campaign['id']}/timeline", headers=h).text,
               json.dumps(logs, default=str)]
    with ctx.db.connect() as conn:
        answers += [str(row) for row in conn.execute(select(attempts))]
        answers += [str(row) for row in conn.execute(select(integrations))]  # stored encrypted
    for text in answers:
        assert TOKEN not in text and APP_SECRET not in text
    view = client.get(f"{api}/campaigns/{campaign['id']}", headers=h).json()
    assert view["paused_reason"] == "all_keys_failed"
    assert "****" in view["pause_details"]["keys"][0]["message"]  # masked, still useful
