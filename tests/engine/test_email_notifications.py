"""Owners and operators get an email for each campaign event where SMTP is configured:
the reason, its explanation, the figures and a link (DESIGN.md §8)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.notifier import Notifier
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import integrations as integration_service
from drumbeat.store.tables import email_notifications
from drumbeat.store.workspaces import insert_user
from tests.factory import add_leads, new_campaign, sandbox_key, workspace
from tests.fakes.providers import QUIET_SMTP

pytestmark = pytest.mark.filterwarnings(QUIET_SMTP)


def auto_paused_campaign(ctx) -> tuple:
    p = workspace(ctx)
    with ctx.db.begin() as conn:
        insert_user(conn, p.workspace_id, "ops@acme.test", "operator", None, ctx.clock())
        insert_user(conn, p.workspace_id, "watcher@acme.test", "viewer", None, ctx.clock())
    sandbox_key(ctx, p, fail="key")
    cid = new_campaign(ctx, p, name="Spring promo")
    add_leads(ctx, cid, 10)
    svc.start(ctx, p, cid)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=2).drain())
    assert svc.get_campaign(ctx, p, cid)["paused_reason"] == "all_keys_failed"
    return p, cid


def deliver(ctx, **kw) -> None:
    asyncio.run(Notifier(ctx, base_delay=0.01, max_delay=0.05, public_url="https://drumbeat.example", **kw)
                .deliver_due())


def test_an_auto_pause_is_emailed_to_owners_and_operators_through_the_workspace_smtp_integration(ctx, smtp_server):
    p, cid = auto_paused_campaign(ctx)
    integration_service.create_integration(ctx, p, {
        "channel": "email", "provider": "smtp", "label": "mail", "daily_cap": None,
        "credentials": {"username": "mailer", "password": "s3cret-pass"}, "config": smtp_server.config()})
    deliver(ctx)
    paused = [d for d in smtp_server.deliveries if "paused" in d.message["Subject"]]
    assert len(paused) == 1
    mail = paused[0]
    assert sorted(mail.rcpt_tos) == ["ops@acme.test", "owner@acme.test"]  # not the viewer
    assert mail.message["Subject"] == "[Drumbeat] Campaign \u201cSpring promo\u201d paused: all_keys_failed"
    body = mail.message.get_content()
    assert "Every API key of the channel failed in this run" in body
    assert "channel: whatsapp" in body
    assert f"https://drumbeat.example/campaigns/{cid}" in body
    deliver(ctx)  # sent once: nothing goes out twice
    assert len([d for d in smtp_server.deliveries if "paused" in d.message["Subject"]]) == 1


def test_drumbeat_smtp_url_is_used_and_a_refused_send_is_retried_until_it_goes_through(ctx, smtp_server):
    auto_paused_campaign(ctx)
    url = f"smtp://mailer:s3cret-pass@127.0.0.1:{smtp_server.port}?from=alerts@drumbeat.example"
    smtp_server.refuse_data(451, "4.3.0 try again later")
    deliver(ctx, smtp_url=url)
    assert smtp_server.deliveries == []
    with ctx.db.connect() as conn:
        states = set(conn.execute(select(email_notifications.c.state)).scalars())
    assert states == {"pending"}
    smtp_server.data_reply = None
    asyncio.run(asyncio.sleep(0.1))
    deliver(ctx, smtp_url=url)
    assert smtp_server.deliveries and all(d.mail_from == "alerts@drumbeat.example" for d in smtp_server.deliveries)


def test_without_any_smtp_the_emails_are_skipped_not_left_pending(ctx):
    auto_paused_campaign(ctx)
    deliver(ctx)
    with ctx.db.connect() as conn:
        states = set(conn.execute(select(email_notifications.c.state)).scalars())
    assert states == {"skipped"}
