"""maintained campaign counts: leads by state (and unfinished leads by step), attempts by
status, counted failures by code, accepted sends per quarter hour; kept by triggers in
the writing transaction

Revision ID: 0005
Revises: 0004

The campaign view reads these instead of counting a million leads per request. Triggers
(not application code) keep them, so no write path can forget one: on PostgreSQL
statement-level triggers append one delta row per (campaign, metric) and statement —
insert-only, so racing workers never wait on a counter row — and the sweeper folds the
deltas; on SQLite (one writer) row triggers update a single row per metric in place.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ACCEPTED = "('sent', 'delivered', 'read')"
UNFINISHED = "('not_contacted', 'in_progress', 'in_doubt')"

# --- PostgreSQL ----------------------------------------------------------------------------

PG_BUCKET = ("to_char(date_trunc('hour', {t} AT TIME ZONE 'UTC')"
             " + floor(date_part('minute', {t} AT TIME ZONE 'UTC') / 15) * interval '15 minutes',"
             " 'YYYY-MM-DD\"T\"HH24:MI')")

# The metrics one attempt row contributes (NULLs are dropped).
PG_ATTEMPT_METRICS = f"""
    SELECT r.campaign_id, m.metric FROM {{rows}} AS r,
    LATERAL (VALUES ('attempt:' || r.status),
                    (CASE WHEN r.counted_failure THEN 'counted_failure' END),
                    (CASE WHEN r.counted_failure THEN 'error:' || COALESCE(r.error_code, '') END),
                    (CASE WHEN r.status IN {ACCEPTED} THEN 'accepted@' || {PG_BUCKET.format(t='r.created_at')} END)
            ) AS m(metric)
    WHERE m.metric IS NOT NULL"""

PG_LEAD_METRICS = f"""
    SELECT r.campaign_id, m.metric FROM {{rows}} AS r,
    LATERAL (VALUES ('lead:' || r.state),
                    (CASE WHEN r.state IN {UNFINISHED} THEN 'step:' || r.current_step || ':' || r.state END)
            ) AS m(metric)
    WHERE m.metric IS NOT NULL"""

PG_FUNCTION = """
CREATE FUNCTION drumbeat_count_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO campaign_counts (campaign_id, metric, n)
    SELECT campaign_id, metric, count(*) FROM ({new}) AS x GROUP BY 1, 2;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO campaign_counts (campaign_id, metric, n)
    SELECT campaign_id, metric, -count(*) FROM ({old}) AS x GROUP BY 1, 2;
  ELSE  -- rows whose metrics did not change cancel out
    INSERT INTO campaign_counts (campaign_id, metric, n)
    SELECT campaign_id, metric, sum(d) FROM (
      SELECT campaign_id, metric, 1 AS d FROM ({new}) AS a
      UNION ALL SELECT campaign_id, metric, -1 FROM ({old}) AS b) AS x
    GROUP BY 1, 2 HAVING sum(d) <> 0;
  END IF;
  RETURN NULL;
END $$;
"""

PG_TRIGGERS = """
CREATE TRIGGER count_{table}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION drumbeat_count_{table}();
CREATE TRIGGER count_{table}_update AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION drumbeat_count_{table}();
CREATE TRIGGER count_{table}_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION drumbeat_count_{table}();
"""

# --- SQLite --------------------------------------------------------------------------------

SQLITE_BUCKET = ("strftime('%Y-%m-%dT%H:', {t}) || printf('%02d', CAST(strftime('%M', {t}) AS INTEGER) / 15 * 15)")


def _sqlite_attempt_metrics(r: str, sign: int) -> str:
    return f"""
      SELECT {r}.campaign_id AS campaign_id, 'attempt:' || {r}.status AS metric, {sign} AS d
      UNION ALL SELECT {r}.campaign_id, 'counted_failure', {sign} WHERE {r}.counted_failure
      UNION ALL SELECT {r}.campaign_id, 'error:' || COALESCE({r}.error_code, ''), {sign} WHERE {r}.counted_failure
      UNION ALL SELECT {r}.campaign_id, 'accepted@' || {SQLITE_BUCKET.format(t=f'{r}.created_at')}, {sign}
                WHERE {r}.status IN {ACCEPTED}"""


def _sqlite_lead_metrics(r: str, sign: int) -> str:
    return f"""
      SELECT {r}.campaign_id AS campaign_id, 'lead:' || {r}.state AS metric, {sign} AS d
      UNION ALL SELECT {r}.campaign_id, 'step:' || {r}.current_step || ':' || {r}.state, {sign}
                WHERE {r}.state IN {UNFINISHED}"""


SQLITE_UPSERT = """
    INSERT INTO campaign_counts (campaign_id, metric, n)
    SELECT campaign_id, metric, sum(d) FROM ({deltas}) WHERE true GROUP BY campaign_id, metric HAVING sum(d) <> 0
    ON CONFLICT (campaign_id, metric) DO UPDATE SET n = n + excluded.n;"""


def _sqlite_triggers(table: str, metrics, columns: str, changed: str) -> list[str]:
    return [
        f"CREATE TRIGGER count_{table}_insert AFTER INSERT ON {table} BEGIN"
        + SQLITE_UPSERT.format(deltas=metrics("NEW", 1)) + " END",
        f"CREATE TRIGGER count_{table}_update AFTER UPDATE OF {columns} ON {table} WHEN {changed} BEGIN"
        + SQLITE_UPSERT.format(deltas=metrics("NEW", 1) + " UNION ALL " + metrics("OLD", -1)) + " END",
        f"CREATE TRIGGER count_{table}_delete AFTER DELETE ON {table} BEGIN"
        + SQLITE_UPSERT.format(deltas=metrics("OLD", -1)) + " END",
    ]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "campaign_counts",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("metric", sa.String(length=120), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        # One row per metric on SQLite; any number of delta rows on PostgreSQL.
        *([sa.PrimaryKeyConstraint("campaign_id", "metric", name=op.f("pk_campaign_counts"))] if sqlite else []),
    )
    if not sqlite:
        op.create_index("ix_campaign_counts_campaign", "campaign_counts", ["campaign_id", "metric"])
    # Error samples: the first counted failures of a code, without scanning every attempt.
    op.create_index("ix_attempts_counted_failures", "attempts", ["campaign_id", "error_code", "id"],
                    postgresql_where=sa.text("counted_failure"), sqlite_where=sa.text("counted_failure"))

    # Leads listed by state are paged by id (the in-doubt list of a million-lead campaign).
    op.drop_index("ix_leads_campaign_state", table_name="leads")
    op.create_index("ix_leads_campaign_state", "leads", ["campaign_id", "state", "id"])

    # What is already there is counted once.
    if sqlite:
        bucket = SQLITE_BUCKET.format(t="created_at")
    else:
        bucket = PG_BUCKET.format(t="created_at")
    op.execute("INSERT INTO campaign_counts (campaign_id, metric, n) "
               "SELECT campaign_id, 'lead:' || state, count(*) FROM leads GROUP BY 1, 2")
    op.execute("INSERT INTO campaign_counts (campaign_id, metric, n) "
               "SELECT campaign_id, 'step:' || current_step || ':' || state, count(*) FROM leads"
               f" WHERE state IN {UNFINISHED} GROUP BY 1, 2")
    op.execute("INSERT INTO campaign_counts (campaign_id, metric, n) "
               "SELECT campaign_id, 'attempt:' || status, count(*) FROM attempts GROUP BY 1, 2")
    op.execute("INSERT INTO campaign_counts (campaign_id, metric, n) "
               "SELECT campaign_id, 'counted_failure', count(*) FROM attempts WHERE counted_failure GROUP BY 1")
    op.execute("INSERT INTO campaign_counts (campaign_id, metric, n) "
               "SELECT campaign_id, 'error:' || COALESCE(error_code, ''), count(*) FROM attempts"
               " WHERE counted_failure GROUP BY 1, 2")
    op.execute(f"INSERT INTO campaign_counts (campaign_id, metric, n) "
               f"SELECT campaign_id, 'accepted@' || {bucket}, count(*) FROM attempts"
               f" WHERE status IN {ACCEPTED} GROUP BY 1, 2")

    if sqlite:
        for statement in [
            *_sqlite_triggers("leads", _sqlite_lead_metrics, "state, current_step",
                              "OLD.state IS NOT NEW.state OR OLD.current_step IS NOT NEW.current_step"),
            *_sqlite_triggers("attempts", _sqlite_attempt_metrics, "status, counted_failure, error_code",
                              "OLD.status IS NOT NEW.status OR OLD.counted_failure IS NOT NEW.counted_failure"
                              " OR OLD.error_code IS NOT NEW.error_code"),
        ]:
            op.execute(statement)
        return
    for table, metrics in (("leads", PG_LEAD_METRICS), ("attempts", PG_ATTEMPT_METRICS)):
        op.execute(PG_FUNCTION.format(table=table, new=metrics.format(rows="new_rows"),
                                      old=metrics.format(rows="old_rows")))
        op.execute(PG_TRIGGERS.format(table=table))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ("leads", "attempts"):
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS count_{table}_{event}" + ("" if sqlite else f" ON {table}"))
        if not sqlite:
            op.execute(f"DROP FUNCTION IF EXISTS drumbeat_count_{table}()")
    op.drop_index("ix_attempts_counted_failures", table_name="attempts")
    op.drop_index("ix_leads_campaign_state", table_name="leads")
    op.create_index("ix_leads_campaign_state", "leads", ["campaign_id", "state"])
    op.drop_table("campaign_counts")
