"""variants and statistics: a step's message variants, the variant of each attempt, and
per campaign / step / variant / quarter-hour counters kept by triggers

Revision ID: 0022
Revises: 0018

- `steps.variants`: null, or `[{"template", "weight"}, ...]` (2 to 5); the step's own
  `template` column then holds the first variant's template.
- `attempts.variant`: the index of the variant the attempt sent (null without variants).
- `step_stats`: what GET /campaigns/{id}/stats reads instead of counting attempts. One
  row per (campaign, step, variant, UTC quarter hour) on SQLite; insert-only delta rows
  on PostgreSQL (statement triggers, like campaign_counts in 0005), folded by the sweeper
  (store.stats.fold). `variant` is -1 for a step without variants (a key column may not
  be null). An attempt counts at its start (`created_at`): `sent` while its status is
  sent, delivered or read, `delivered` while delivered or read, `read` while read,
  `failed` while it is a counted failure (as `breakdown.failed`). A lead turning
  `replied` or `opted_out` counts at that moment (`updated_at`) for the step and variant
  of its last accepted attempt (else its last attempt); a lead with no attempt is not
  counted there. Every zone's offset is a whole number of quarter hours, so the campaign
  zone's hours and midnights fall on bucket boundaries.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: Union[str, Sequence[str], None] = "0018"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ACCEPTED = "('sent', 'delivered', 'read')"
ENDED = "('replied', 'opted_out')"


def _pg_quarter(column: str) -> str:
    at = f"{column} AT TIME ZONE 'UTC'"
    return (f"to_char(date_trunc('hour', {at}) + floor(date_part('minute', {at}) / 15) * interval '15 minutes',"
            " 'YYYY-MM-DD\"T\"HH24:MI')")


def _sqlite_quarter(column: str) -> str:
    return (f"strftime('%Y-%m-%dT%H:', {column}) || printf('%02d', CAST(strftime('%M', {column}) AS INTEGER)"
            " / 15 * 15)")


PG_ATTEMPT_ROWS = """SELECT campaign_id, step, COALESCE(variant, -1) AS variant, {quarter} AS quarter,
           {sign} * (status IN {accepted})::int AS sent, {sign} * (status IN ('delivered', 'read'))::int AS delivered,
           {sign} * (status = 'read')::int AS read, {sign} * counted_failure::int AS failed
      FROM {rows} WHERE status IN {accepted} OR counted_failure"""

PG_ATTEMPT_DELTAS = """
    INSERT INTO step_stats (campaign_id, step, variant, quarter, sent, delivered, read, failed, replied, opted_out)
    SELECT campaign_id, step, variant, quarter, sum(sent), sum(delivered), sum(read), sum(failed), 0, 0
      FROM ({rows}) AS g GROUP BY 1, 2, 3, 4
    HAVING sum(sent) <> 0 OR sum(delivered) <> 0 OR sum(read) <> 0 OR sum(failed) <> 0;"""


def _pg_attempt_rows(rows: str, sign: int) -> str:
    return PG_ATTEMPT_ROWS.format(quarter=_pg_quarter("created_at"), sign=sign, accepted=ACCEPTED, rows=rows)


PG_ATTEMPTS_FUNCTION = f"""
CREATE FUNCTION drumbeat_stats_attempts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN{PG_ATTEMPT_DELTAS.format(rows=_pg_attempt_rows('new_rows', 1))}
  ELSIF TG_OP = 'DELETE' THEN{PG_ATTEMPT_DELTAS.format(rows=_pg_attempt_rows('old_rows', -1))}
  ELSE  -- rows whose counts did not change cancel out{PG_ATTEMPT_DELTAS.format(
      rows=_pg_attempt_rows('new_rows', 1) + ' UNION ALL ' + _pg_attempt_rows('old_rows', -1))}
  END IF;
  RETURN NULL;
END $$;
"""

# The last attempt a lead's reply or opt-out belongs to: its last accepted one, else its last.
LAST_ATTEMPT = (f"SELECT a.campaign_id, a.step, a.variant FROM attempts AS a WHERE a.lead_id = {{lead}}"
                f" ORDER BY (a.status IN {ACCEPTED}) DESC, a.id DESC LIMIT 1")

PG_LEADS_FUNCTION = f"""
CREATE FUNCTION drumbeat_stats_leads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Most statements (claims, outcomes, re-clamps, cancel) end no lead this way: no join then.
  IF NOT EXISTS (SELECT 1 FROM new_rows WHERE state IN {ENDED}) THEN
    RETURN NULL;
  END IF;
  INSERT INTO step_stats (campaign_id, step, variant, quarter, sent, delivered, read, failed, replied, opted_out)
  SELECT a.campaign_id, a.step, COALESCE(a.variant, -1), {_pg_quarter('n.updated_at')}, 0, 0, 0, 0,
         sum((n.state = 'replied')::int), sum((n.state = 'opted_out')::int)
    FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id AND o.state IS DISTINCT FROM n.state
         CROSS JOIN LATERAL ({LAST_ATTEMPT.format(lead='n.id')}) AS a
   WHERE n.state IN {ENDED}
   GROUP BY 1, 2, 3, 4;
  RETURN NULL;
END $$;
"""

PG_TRIGGERS = """
CREATE TRIGGER stats_attempts_insert AFTER INSERT ON attempts REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION drumbeat_stats_attempts();
CREATE TRIGGER stats_attempts_update AFTER UPDATE ON attempts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION drumbeat_stats_attempts();
CREATE TRIGGER stats_attempts_delete AFTER DELETE ON attempts REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION drumbeat_stats_attempts();
CREATE TRIGGER stats_leads_update AFTER UPDATE ON leads REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION drumbeat_stats_leads();
"""

SQLITE_UPSERT = """
    INSERT INTO step_stats (campaign_id, step, variant, quarter, sent, delivered, read, failed, replied, opted_out)
    SELECT campaign_id, step, variant, quarter, sum(sent), sum(delivered), sum(read), sum(failed),
           sum(replied), sum(opted_out)
      FROM ({rows}) WHERE true GROUP BY campaign_id, step, variant, quarter
    HAVING sum(sent) <> 0 OR sum(delivered) <> 0 OR sum(read) <> 0 OR sum(failed) <> 0
        OR sum(replied) <> 0 OR sum(opted_out) <> 0
    ON CONFLICT (campaign_id, step, variant, quarter) DO UPDATE SET
       sent = sent + excluded.sent, delivered = delivered + excluded.delivered, read = read + excluded.read,
       failed = failed + excluded.failed, replied = replied + excluded.replied,
       opted_out = opted_out + excluded.opted_out;"""


def _sqlite_attempt_row(r: str, sign: int) -> str:
    return (f"SELECT {r}.campaign_id AS campaign_id, {r}.step AS step, COALESCE({r}.variant, -1) AS variant,"
            f" {_sqlite_quarter(f'{r}.created_at')} AS quarter,"
            f" {sign} * ({r}.status IN {ACCEPTED}) AS sent, {sign} * ({r}.status IN ('delivered', 'read')) AS delivered,"
            f" {sign} * ({r}.status = 'read') AS read, {sign} * ({r}.counted_failure = 1) AS failed,"
            " 0 AS replied, 0 AS opted_out")


SQLITE_TRIGGERS = [
    "CREATE TRIGGER stats_attempts_insert AFTER INSERT ON attempts"
    f" WHEN NEW.status IN {ACCEPTED} OR NEW.counted_failure BEGIN"
    + SQLITE_UPSERT.format(rows=_sqlite_attempt_row("NEW", 1)) + " END",
    "CREATE TRIGGER stats_attempts_update AFTER UPDATE OF status, counted_failure ON attempts"
    " WHEN OLD.status IS NOT NEW.status OR OLD.counted_failure IS NOT NEW.counted_failure BEGIN"
    + SQLITE_UPSERT.format(rows=_sqlite_attempt_row("NEW", 1) + " UNION ALL " + _sqlite_attempt_row("OLD", -1))
    + " END",
    "CREATE TRIGGER stats_attempts_delete AFTER DELETE ON attempts BEGIN"
    + SQLITE_UPSERT.format(rows=_sqlite_attempt_row("OLD", -1)) + " END",
    "CREATE TRIGGER stats_leads_update AFTER UPDATE OF state ON leads"
    f" WHEN OLD.state IS NOT NEW.state AND NEW.state IN {ENDED} BEGIN"
    + SQLITE_UPSERT.format(rows=(
        f"SELECT a.campaign_id AS campaign_id, a.step AS step, COALESCE(a.variant, -1) AS variant,"
        f" {_sqlite_quarter('NEW.updated_at')} AS quarter, 0 AS sent, 0 AS delivered, 0 AS read, 0 AS failed,"
        f" NEW.state = 'replied' AS replied, NEW.state = 'opted_out' AS opted_out"
        f" FROM ({LAST_ATTEMPT.format(lead='NEW.id')}) AS a")) + " END",
]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column("steps", sa.Column("variants", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(),
                                                                        "postgresql")))
    op.add_column("attempts", sa.Column("variant", sa.SmallInteger()))
    counts = [sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
              for name in ("sent", "delivered", "read", "failed", "replied", "opted_out")]
    op.create_table(
        "step_stats",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("variant", sa.SmallInteger(), nullable=False),
        sa.Column("quarter", sa.String(length=16), nullable=False),  # UTC 'YYYY-MM-DDTHH:MM'
        *counts,
        # One row per key on SQLite; any number of delta rows on PostgreSQL.
        *([sa.PrimaryKeyConstraint("campaign_id", "step", "variant", "quarter", name=op.f("pk_step_stats"))]
          if sqlite else []),
    )
    if not sqlite:
        op.create_index("ix_step_stats_campaign", "step_stats", ["campaign_id", "quarter"])

    # What is already there is counted once (no attempt has a variant yet).
    quarter = _sqlite_quarter if sqlite else _pg_quarter
    op.execute(f"""
        INSERT INTO step_stats (campaign_id, step, variant, quarter, sent, delivered, read, failed, replied, opted_out)
        SELECT campaign_id, step, -1, {quarter('created_at')},
               sum(CASE WHEN status IN {ACCEPTED} THEN 1 ELSE 0 END),
               sum(CASE WHEN status IN ('delivered', 'read') THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'read' THEN 1 ELSE 0 END),
               sum(CASE WHEN counted_failure THEN 1 ELSE 0 END), 0, 0
          FROM attempts WHERE status IN {ACCEPTED} OR counted_failure GROUP BY 1, 2, 4""")
    for state in ("replied", "opted_out"):
        op.execute(f"""
            INSERT INTO step_stats (campaign_id, step, variant, quarter, sent, delivered, read, failed, replied,
                                    opted_out)
            SELECT a.campaign_id, a.step, -1, {quarter('l.updated_at')}, 0, 0, 0, 0,
                   {'count(*)' if state == 'replied' else '0'}, {'count(*)' if state == 'opted_out' else '0'}
              FROM leads AS l JOIN attempts AS a ON a.id = (SELECT x.id FROM attempts AS x WHERE x.lead_id = l.id
                                                             ORDER BY (x.status IN {ACCEPTED}) DESC, x.id DESC
                                                             LIMIT 1)
             WHERE l.state = '{state}'
             GROUP BY 1, 2, 4
            {'ON CONFLICT (campaign_id, step, variant, quarter) DO UPDATE SET ' + state + ' = excluded.' + state
             if sqlite else ''}""")

    if sqlite:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
        return
    op.execute(PG_ATTEMPTS_FUNCTION)
    op.execute(PG_LEADS_FUNCTION)
    op.execute(PG_TRIGGERS)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, event in (("attempts", "insert"), ("attempts", "update"), ("attempts", "delete"),
                         ("leads", "update")):
        op.execute(f"DROP TRIGGER IF EXISTS stats_{table}_{event}" + ("" if sqlite else f" ON {table}"))
    if not sqlite:
        op.execute("DROP FUNCTION IF EXISTS drumbeat_stats_attempts()")
        op.execute("DROP FUNCTION IF EXISTS drumbeat_stats_leads()")
    op.drop_table("step_stats")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("variant")
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("variants")
