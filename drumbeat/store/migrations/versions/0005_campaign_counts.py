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

PG_QUARTER = ("date_trunc('hour', created_at AT TIME ZONE 'UTC')"
              " + floor(date_part('minute', created_at AT TIME ZONE 'UTC') / 15) * interval '15 minutes'")
PG_BUCKET = f"to_char({PG_QUARTER}, 'YYYY-MM-DD\"T\"HH24:MI')"

# Per table: the columns its metrics depend on (rows are grouped on them first, so a
# statement over a million rows aggregates a handful of groups), and the metrics of one
# group `g` (NULLs are dropped).
PG_COUNTED = {
    "leads": ("campaign_id, state, current_step", 3, f"""
        ('lead:' || g.state),
        (CASE WHEN g.state IN {UNFINISHED} THEN 'step:' || g.current_step || ':' || g.state END)"""),
    "attempts": (f"campaign_id, status, counted_failure, error_code, {PG_QUARTER} AS quarter", 5, f"""
        ('attempt:' || g.status),
        (CASE WHEN g.counted_failure THEN 'counted_failure' END),
        (CASE WHEN g.counted_failure THEN 'error:' || COALESCE(g.error_code, '') END),
        (CASE WHEN g.status IN {ACCEPTED} THEN 'accepted@' || to_char(g.quarter, 'YYYY-MM-DD"T"HH24:MI') END)"""),
}

PG_DELTAS = """
    INSERT INTO campaign_counts (campaign_id, metric, n)
    SELECT g.campaign_id, m.metric, sum(g.d) FROM ({groups}) AS g, LATERAL (VALUES {metrics}) AS m(metric)
    WHERE m.metric IS NOT NULL GROUP BY 1, 2 HAVING sum(g.d) <> 0;"""


def _pg_function(table: str) -> str:
    keys, width, metrics = PG_COUNTED[table]
    by = ", ".join(str(i) for i in range(1, width + 1))
    new = f"SELECT {keys}, count(*) AS d FROM new_rows GROUP BY {by}"
    old = f"SELECT {keys}, -count(*) AS d FROM old_rows GROUP BY {by}"
    return f"""
CREATE FUNCTION drumbeat_count_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN{PG_DELTAS.format(groups=new, metrics=metrics)}
  ELSIF TG_OP = 'DELETE' THEN{PG_DELTAS.format(groups=old, metrics=metrics)}
  ELSE  -- rows whose metrics did not change cancel out{PG_DELTAS.format(groups=f"{new} UNION ALL {old}", metrics=metrics)}
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
    bucket = SQLITE_BUCKET.format(t="created_at") if sqlite else PG_BUCKET
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
    for table in PG_COUNTED:
        op.execute(_pg_function(table))
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
