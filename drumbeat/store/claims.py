"""The engine's hot path: claim due leads with a lease and start their attempts in one
transaction, then write outcomes in batches.

Claim and attempt insert share one transaction that first takes a share lock on the
campaign row, so a pause (which updates that row) and a claim serialise: once a pause
has committed, no new attempt starts. On PostgreSQL due leads are taken with
FOR UPDATE SKIP LOCKED so workers never wait on each other; on SQLite every write
transaction is BEGIN IMMEDIATE, which makes the same code single-writer and correct.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, insert, select, text, update

from drumbeat.domain.leads import WORKABLE_LEAD_STATES, AttemptStatus, LeadState
from drumbeat.store.sql import queries
from drumbeat.store.tables import attempts, campaigns, holds, leads, steps

LEAD_FIELDS = (leads.c.id, leads.c.state, leads.c.current_step, leads.c.next_action_at, leads.c.retries,
               leads.c.attempt_no, leads.c.phone, leads.c.email, leads.c.linkedin_url, leads.c.first_name,
               leads.c.last_name, leads.c.timezone, leads.c.attributes, leads.c.last_error)


@dataclass
class ClaimedAttempt:
    attempt_id: int
    lead: dict
    step: int
    integration_id: str
    idempotency_key: str


def lock_sending_campaign(conn: Connection, campaign_id: str, run: int):
    """Share-lock the campaign row; None unless it is still sending in the same run."""
    row = conn.execute(select(campaigns.c.status, campaigns.c.run).where(campaigns.c.id == campaign_id)
                       .with_for_update(read=True)).first()
    if row is None or row.status != "sending" or row.run != run:
        return None
    return row


def claim_due_leads(conn: Connection, *, campaign_id: str, run: int, steps_open: list[int], now: datetime,
                    limit: int, owner: str, lease: timedelta, pick_integration,
                    channel_of_step) -> list[ClaimedAttempt] | None:
    """Lease up to `limit` due leads whose current step is on an open channel and commit
    a `sending` attempt for each (the caller commits). `pick_integration(step)` returns
    the key to use, round robin over the channel's usable pool. None means the campaign
    is no longer sending in this run (the caller's view of it is stale)."""
    if lock_sending_campaign(conn, campaign_id, run) is None:
        return None
    if not steps_open or limit <= 0:
        return []
    # Read in this transaction, so a hold placed by any process is honoured at once.
    held_steps = (select(steps.c.position).join(holds, (holds.c.campaign_id == steps.c.campaign_id)
                                                & (holds.c.channel == steps.c.channel))
                  .where(steps.c.campaign_id == campaign_id))
    due = (select(leads.c.id)
           .where(leads.c.campaign_id == campaign_id, leads.c.state.in_(WORKABLE_LEAD_STATES),
                  leads.c.next_action_at <= now, leads.c.lease_owner.is_(None), leads.c.awaiting.is_(None),
                  leads.c.current_step.in_(steps_open), leads.c.current_step.not_in(held_steps))
           .order_by(leads.c.next_action_at).limit(limit)
           .with_for_update(skip_locked=True))
    claimed = conn.execute(
        update(leads).where(leads.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=now + lease, attempt_no=leads.c.attempt_no + 1, updated_at=now)
        .returning(*LEAD_FIELDS)
    ).mappings().all()
    if not claimed:
        return []
    rows = []
    for lead in claimed:
        step = lead["current_step"]
        rows.append({"lead_id": lead["id"], "step": step, "channel": channel_of_step(step),
                     "integration_id": pick_integration(step),
                     "idempotency_key": f"{lead['id']}:{step}:{lead['attempt_no']}"})
    attempt_of_lead = dict((lead_id, attempt_id) for attempt_id, lead_id in
                           _insert_sending_attempts(conn, campaign_id, run, rows, now))
    by_lead = {lead["id"]: dict(lead) for lead in claimed}
    return [ClaimedAttempt(attempt_of_lead[r["lead_id"]], by_lead[r["lead_id"]], r["step"], r["integration_id"],
                           r["idempotency_key"]) for r in rows]


def _insert_sending_attempts(conn: Connection, campaign_id: str, run: int, rows: list[dict], now: datetime):
    """(attempt id, lead id) for each new `sending` attempt."""
    if conn.dialect.name == "postgresql":
        return conn.execute(queries("postgresql")["insert_sending_attempts"], {
            "campaign_id": campaign_id, "run": run, "now": now, **_columns(rows, {
                "lead_ids": "lead_id", "steps": "step", "channels": "channel",
                "integration_ids": "integration_id", "keys": "idempotency_key"})}).all()
    values = [{**r, "campaign_id": campaign_id, "run": run, "status": AttemptStatus.SENDING,
               "created_at": now, "updated_at": now} for r in rows]
    return conn.execute(insert(attempts).returning(attempts.c.id, attempts.c.lead_id), values).all()


_ATTEMPT_OUTCOME = (update(attempts).where(attempts.c.id == bindparam("a_id"))
                    .values(status=bindparam("a_status"), provider_message_id=bindparam("a_provider_message_id"),
                            error_code=bindparam("a_error_code"), error_class=bindparam("a_error_class"),
                            error_message=bindparam("a_error_message"),
                            counted_failure=bindparam("a_counted_failure"), updated_at=bindparam("a_now")))

_WORKABLE_SQL = text("leads.state IN ('not_contacted', 'in_progress')")  # literal: executemany allows no IN list
_LEAD_OUTCOME = (update(leads).where(leads.c.id == bindparam("l_id"), leads.c.lease_owner == bindparam("l_owner"),
                                     _WORKABLE_SQL)
                 .values(state=bindparam("l_state"), current_step=bindparam("l_current_step"),
                         next_action_at=bindparam("l_next_action_at"), retries=bindparam("l_retries"),
                         attempt_no=bindparam("l_attempt_no"), last_error=bindparam("l_last_error"),
                         awaiting=bindparam("l_awaiting"),
                         lease_owner=None, lease_expires_at=None, updated_at=bindparam("l_now")))


def write_outcomes(conn: Connection, attempt_rows: list[dict], lead_rows: list[dict], *, owner: str,
                   now: datetime) -> None:
    """Batch-write attempt outcomes and the leads they move.

    A lead is only changed while this worker still holds its lease and the lead is still
    workable: if the lease was taken away (expired and recovered as in doubt) or a reply
    ended the lead meanwhile, the attempt record still gets the provider's answer but the
    lead is left as it is."""
    if conn.dialect.name == "postgresql":  # one statement per table instead of one per row
        sql = queries("postgresql")
        if attempt_rows:
            conn.execute(sql["write_attempt_outcomes"], {"now": now, **_columns(attempt_rows, {
                "ids": "id", "statuses": "status", "message_ids": "provider_message_id", "codes": "error_code",
                "classes": "error_class", "texts": "error_message", "counted": "counted_failure"})})
        if lead_rows:
            conn.execute(sql["write_lead_outcomes"], {"now": now, "owner": owner, **_columns(lead_rows, {
                "ids": "id", "states": "state", "steps": "current_step", "next_at": "next_action_at",
                "retries": "retries", "attempt_nos": "attempt_no", "errors": "last_error", "awaiting": "awaiting"})})
        return
    if attempt_rows:
        conn.execute(_ATTEMPT_OUTCOME, [{f"a_{k}": v for k, v in r.items()} | {"a_now": now} for r in attempt_rows])
    if lead_rows:
        conn.execute(_LEAD_OUTCOME, [{f"l_{k}": v for k, v in r.items()} | {"l_now": now, "l_owner": owner}
                                     for r in lead_rows])


def _columns(rows: list[dict], names: dict[str, str]) -> dict[str, list]:
    return {param: [r[key] for r in rows] for param, key in names.items()}


def release_leads(conn: Connection, lead_ids: list[int]) -> None:
    if lead_ids:
        conn.execute(update(leads).where(leads.c.id.in_(lead_ids)).values(lease_owner=None, lease_expires_at=None))


def expired_leases(conn: Connection, now: datetime, limit: int = 1000) -> list[dict]:
    """Leads whose worker died (lease expired), with their unfinished attempt if any."""
    rows = conn.execute(
        select(leads.c.id, leads.c.campaign_id, attempts.c.id.label("attempt_id"))
        .outerjoin(attempts, (attempts.c.lead_id == leads.c.id) & (attempts.c.status == AttemptStatus.SENDING))
        .where(leads.c.lease_owner.is_not(None), leads.c.lease_expires_at < now)
        .limit(limit).with_for_update(of=leads, skip_locked=True)
    ).mappings().all()
    return [dict(r) for r in rows]


def mark_in_doubt(conn: Connection, lead_ids: list[int], attempt_ids: list[int], now: datetime) -> None:
    if attempt_ids:
        conn.execute(update(attempts).where(attempts.c.id.in_(attempt_ids), attempts.c.status == AttemptStatus.SENDING)
                     .values(status=AttemptStatus.IN_DOUBT, updated_at=now))
    if lead_ids:
        conn.execute(update(leads).where(leads.c.id.in_(lead_ids))
                     .values(state=LeadState.IN_DOUBT, lease_owner=None, lease_expires_at=None, updated_at=now))


def expire_acceptance_waits(conn: Connection, now: datetime) -> int:
    """Invitations not accepted in time: the lead's sequence cannot go on."""
    result = conn.execute(update(leads).where(leads.c.awaiting == "acceptance", leads.c.next_action_at <= now,
                                              leads.c.state.in_(WORKABLE_LEAD_STATES))
                          .values(state=LeadState.FAILED, awaiting=None, last_error="linkedin:invitation_not_accepted",
                                  updated_at=now))
    return result.rowcount
