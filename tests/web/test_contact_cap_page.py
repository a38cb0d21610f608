"""The campaign page says in words when the workspace contact cap holds its leads back."""

from __future__ import annotations

import asyncio

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services.workspaces import update_settings
from tests.factory import add_leads, new_campaign, sandbox_key
from tests.web.conftest import sign_in


def test_a_campaign_held_back_by_the_contact_cap_says_so_on_its_page(ctx, client, users):
    owner = users["owner"]["principal"]
    sandbox_key(ctx, owner)
    update_settings(ctx, owner, {"contact_cap": {"max": 1, "days": 7}})
    first, second = new_campaign(ctx, owner, name="First"), new_campaign(ctx, owner, name="Second")
    for cid in (first, second):
        add_leads(ctx, cid, 3)  # the same three people
        svc.start(ctx, owner, cid)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=8).drain())
    held = [cid for cid in (first, second) if svc.get_campaign(ctx, owner, cid)["status"] == "sending"]
    assert len(held) == 1

    sign_in(client, "viewer@acme.test")
    page = client.get(f"/campaigns/{held[0]}")
    assert page.status_code == 200
    assert "held back by the workspace contact cap" in page.text
