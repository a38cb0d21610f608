"""Migrations keep what is there: an upgrade over existing rows moves them along."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from drumbeat.store import receipts
from drumbeat.store.db import alembic_config


def _at(engine, revision: str, *, down: bool = False) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_0008_keeps_every_provider_message_id_findable(ctx):
    _at(ctx.db, "0007", down=True)
    with ctx.db.begin() as conn:
        conn.execute(text("INSERT INTO workspaces (id, name, created_at) VALUES ('w1', 'w', '2026-01-01')"))
        conn.execute(text("INSERT INTO campaigns (id, workspace_id, name, status, pause_details, schedule, limits,"
                          " failure_policy, created_at) VALUES ('c1', 'w1', 'c', 'sending', '{}', '{}', '{}', '{}',"
                          " '2026-01-01')"))
        lead = conn.execute(text("INSERT INTO leads (campaign_id, phone, attributes, state, current_step,"
                                 " next_action_at, retries, attempt_no, created_at, updated_at) VALUES ('c1',"
                                 " '+14155550100', '{}', 'in_progress', 1, '2026-01-01', 0, 0, '2026-01-01',"
                                 " '2026-01-01') RETURNING id")).scalar_one()
        for n, message_id in enumerate(("wamid.A", None)):
            conn.execute(text("INSERT INTO attempts (lead_id, campaign_id, step, channel, integration_id, run,"
                              " idempotency_key, status, provider_message_id, counted_failure, created_at, updated_at)"
                              " VALUES (:lead, 'c1', 0, 'whatsapp', 'k1', 1, :key, 'sent', :message, false,"
                              " '2026-01-01', '2026-01-01')"), {"lead": lead, "key": f"{lead}:0:{n}",
                                                               "message": message_id})
    _at(ctx.db, "heads")
    with ctx.db.begin() as conn:
        found = receipts.attempt_by_message(conn, "k1", "wamid.A")
        assert found is not None and found["lead_id"] == lead and found["status"] == "sent"
        assert receipts.lead_of_attempt_message(conn, "wamid.A") == lead
        assert conn.execute(text("SELECT count(*) FROM provider_messages")).scalar_one() == 1
