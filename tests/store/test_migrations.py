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


def test_0013_makes_old_suppressions_manual_and_bootstrap_hashes_them(ctx):
    from drumbeat.domain.consent import address_hash
    from drumbeat.store.leads import hash_unhashed_suppressions, suppressed_among
    from drumbeat.store.secrets import ADDRESS_HASH_PURPOSE

    _at(ctx.db, "0012", down=True)
    with ctx.db.begin() as conn:
        conn.execute(text("INSERT INTO workspaces (id, name, created_at) VALUES ('w1', 'w', '2026-01-01')"))
        for phone, email in (("+4915123456701", None), (None, "a@example.com"), ("+4915123456701", None)):
            conn.execute(text("INSERT INTO suppressions (workspace_id, phone, email, created_at)"
                              " VALUES ('w1', :phone, :email, '2026-01-01')"), {"phone": phone, "email": email})
    _at(ctx.db, "heads")
    key = ctx.box.derive_key(ADDRESS_HASH_PURPOSE)
    with ctx.db.begin() as conn:
        rows = conn.execute(text("SELECT reason, address_hash FROM suppressions ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [("manual", None)] * 3
        found = suppressed_among(conn, "w1", ["+4915123456701"], ["a@example.com"])  # by address meanwhile
        assert found == ({"+4915123456701"}, {"a@example.com"})
        assert hash_unhashed_suppressions(conn, key) == 2  # the duplicate entry goes
        rows = conn.execute(text("SELECT phone, email, address_hash FROM suppressions ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        ("+4915123456701", None, address_hash(key, phone="+4915123456701")),
        (None, "a@example.com", address_hash(key, email="a@example.com"))]
    with ctx.db.begin() as conn:
        workspace = conn.execute(text("SELECT opt_out_words, auto_replies FROM workspaces")).one()
    assert [_json(v) for v in workspace] == [[], {"stop": None, "help": None}]


def _json(value):
    import json

    return json.loads(value) if isinstance(value, str) else value


def test_0022_counts_the_attempts_and_replies_already_there_and_the_downgrade_undoes_it(ctx):
    from drumbeat.store import stats

    _at(ctx.db, "0018", down=True)
    with ctx.db.begin() as conn:
        conn.execute(text("INSERT INTO workspaces (id, name, created_at) VALUES ('w1', 'w', '2026-01-01')"))
        conn.execute(text("INSERT INTO campaigns (id, workspace_id, name, status, pause_details, schedule, limits,"
                          " failure_policy, created_at) VALUES ('c1', 'w1', 'c', 'sending', '{}', '{}', '{}', '{}',"
                          " '2026-01-01')"))
        for n, (state, statuses) in enumerate([("replied", ["sent", "read"]), ("failed", ["failed"]),
                                               ("completed", ["delivered"])]):
            lead = conn.execute(text(
                "INSERT INTO leads (campaign_id, phone, attributes, state, current_step, next_action_at, retries,"
                " attempt_no, created_at, updated_at) VALUES ('c1', :phone, '{}', :state, 1, '2026-01-01', 0, 0,"
                " '2026-01-01', '2026-01-02 10:20:00') RETURNING id"), {"phone": f"+1415555010{n}", "state": state}
            ).scalar_one()
            for step, status in enumerate(statuses):
                conn.execute(text(
                    "INSERT INTO attempts (lead_id, campaign_id, step, channel, integration_id, run, idempotency_key,"
                    " status, counted_failure, created_at, updated_at) VALUES (:lead, 'c1', :step, 'sms', 'k1', 1,"
                    " :key, :status, :counted, '2026-01-01 09:05:00', '2026-01-01')"),
                    {"lead": lead, "step": step, "key": f"{lead}:{step}:1", "status": status,
                     "counted": status == "failed"})
    _at(ctx.db, "heads")
    with ctx.db.begin() as conn:
        totals = stats.by_step_and_variant(conn, "c1")
        assert totals[(0, None)] == {"sent": 2, "delivered": 1, "read": 0, "failed": 1, "replied": 0, "opted_out": 0}
        # The reply belongs to the replied lead's last accepted attempt (step 1, read).
        assert totals[(1, None)] == {"sent": 1, "delivered": 1, "read": 1, "failed": 0, "replied": 1, "opted_out": 0}
        assert set(stats.by_quarter(conn, "c1", "2026-01-01T09:00", "2026-01-03T00:00")) == {
            "2026-01-01T09:00", "2026-01-02T10:15"}
    _at(ctx.db, "0018", down=True)
    _at(ctx.db, "heads")
