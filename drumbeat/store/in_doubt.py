"""Queries behind settling in-doubt attempts (domain.in_doubt): an attempt found by the key
a provider echoes, its lead, the writes that settle both, the provider events already
applied, and the in-doubt attempts the sweeper judges."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from drumbeat.domain.leads import AttemptStatus, LeadState
from drumbeat.store.claims import LEAD_FIELDS
from drumbeat.store.tables import attempts, campaigns, integrations, leads, provider_events, provider_messages

# A status may settle an attempt still in these (DESIGN.md §3): the worker's own outcome
# writes only these too, so whichever of the two comes second changes nothing.
UNSETTLED = (AttemptStatus.SENDING, AttemptStatus.IN_DOUBT)


def attempt_by_key(conn: Connection, integration_id: str, key: str) -> dict | None:
    """The attempt with this idempotency key sent through this integration (locked), or
    None: a key of another integration or workspace is not ours to settle."""
    row = conn.execute(
        select(attempts.c.id, attempts.c.lead_id, attempts.c.campaign_id, attempts.c.step, attempts.c.status,
               attempts.c.created_at, attempts.c.lease_expires_at, attempts.c.idempotency_key)
        .where(attempts.c.idempotency_key == key, attempts.c.integration_id == integration_id)
        .with_for_update()).mappings().first()
    return dict(row) if row else None


def lead_for_settling(conn: Connection, lead_id: int) -> dict | None:
    row = conn.execute(select(*LEAD_FIELDS, leads.c.campaign_id, leads.c.lease_owner, leads.c.lease_expires_at,
                              leads.c.awaiting)
                       .where(leads.c.id == lead_id).with_for_update()).mappings().first()
    return dict(row) if row else None


def later_attempt(conn: Connection, lead_id: int, attempt_id: int) -> bool:
    """Whether the lead has an attempt started after this one (a retry already sent)."""
    return conn.execute(select(attempts.c.id).where(attempts.c.lead_id == lead_id, attempts.c.id > attempt_id)
                        .limit(1)).first() is not None


def settle_attempt(conn: Connection, attempt_id: int, *, status: str, now: datetime, resolution: str | None,
                   provider_message_id: str | None = None, error_code: str | None = None,
                   error_class: str | None = None, error_message: str | None = None,
                   counted_failure: bool = False) -> bool:
    """Write the settled outcome of an attempt still unsettled; False when it was settled
    meanwhile (by the worker's answer or another status)."""
    values = {"status": status, "updated_at": now, "error_code": error_code, "error_class": error_class,
              "error_message": error_message, "counted_failure": counted_failure}
    if resolution is not None:
        values["doubt_resolution"] = resolution
    if provider_message_id is not None:
        values["provider_message_id"] = provider_message_id
    done = conn.execute(update(attempts).where(attempts.c.id == attempt_id, attempts.c.status.in_(UNSETTLED))
                        .values(**values)).rowcount
    if done and provider_message_id is not None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(provider_messages).values(attempt_id=attempt_id,
                                                          provider_message_id=provider_message_id)
        conn.execute(upsert.on_conflict_do_update(index_elements=["attempt_id"], set_={
            "provider_message_id": upsert.excluded.provider_message_id}))
    return bool(done)


def mark_resolution(conn: Connection, attempt_ids: list[int], resolution: str, now: datetime) -> None:
    if attempt_ids:
        conn.execute(update(attempts).where(attempts.c.id.in_(attempt_ids), attempts.c.status == AttemptStatus.IN_DOUBT)
                     .values(doubt_resolution=resolution, updated_at=now))


def move_lead(conn: Connection, lead_id: int, values: dict, now: datetime) -> None:
    conn.execute(update(leads).where(leads.c.id == lead_id)
                 .values(**values, lease_owner=None, lease_expires_at=None, updated_at=now))


# --- provider events already applied ------------------------------------------------------

def seen(conn: Connection, integration_id: str, key: str) -> bool:
    return conn.execute(select(provider_events.c.event_key).where(
        provider_events.c.integration_id == integration_id, provider_events.c.event_key == key)).first() is not None


def remember(conn: Connection, integration_id: str, key: str, now: datetime) -> None:
    """Note the event applied, in the transaction that applied it: a duplicate delivered
    at the same moment fails on the primary key and rolls back whole."""
    conn.execute(insert(provider_events).values(integration_id=integration_id, event_key=key, received_at=now))


def prune_events(conn: Connection, before: datetime) -> int:
    return conn.execute(provider_events.delete().where(provider_events.c.received_at < before)).rowcount


STATUS_TIME_GRAIN = timedelta(minutes=1)


def note_status_received(conn: Connection, integration_id: str, now: datetime) -> None:
    """integrations.last_status_at, written at most once a minute."""
    conn.execute(update(integrations).where(
        integrations.c.id == integration_id,
        or_(integrations.c.last_status_at.is_(None), integrations.c.last_status_at < now - STATUS_TIME_GRAIN))
        .values(last_status_at=now))


# --- what the sweeper judges --------------------------------------------------------------

def unjudged(conn: Connection, limit: int = 500) -> list[dict]:
    """In-doubt attempts not judged yet whose lead still waits on them (in doubt, on the
    attempt's step), oldest first, with what the judgement needs: the campaign's policy,
    the integration's provider, config and last status, and the lead's fields."""
    query = (select(attempts.c.id, attempts.c.lead_id, attempts.c.campaign_id, attempts.c.step,
                    attempts.c.integration_id, attempts.c.idempotency_key, attempts.c.created_at,
                    attempts.c.updated_at, attempts.c.lease_expires_at, campaigns.c.workspace_id,
                    campaigns.c.in_doubt_policy, campaigns.c.in_doubt_silence_seconds,
                    integrations.c.provider, integrations.c.config, integrations.c.credentials_encrypted,
                    integrations.c.last_status_at)
             .select_from(campaigns)
             # in doubt leads by campaign (ix_leads_campaign_state), their attempts by lead
             # (ix_attempts_lead): attempts have no index on status
             .join(leads, and_(leads.c.campaign_id == campaigns.c.id, leads.c.state == LeadState.IN_DOUBT))
             .join(attempts, and_(attempts.c.lead_id == leads.c.id, attempts.c.step == leads.c.current_step))
             .outerjoin(integrations, integrations.c.id == attempts.c.integration_id)
             .where(campaigns.c.status.in_(("sending", "paused")), attempts.c.status == AttemptStatus.IN_DOUBT,
                    attempts.c.doubt_resolution.is_(None))
             .order_by(attempts.c.id).limit(limit))
    return [dict(r) for r in conn.execute(query).mappings()]


def retried_before(conn: Connection, lead_id: int, step: int) -> bool:
    """Whether the policy already retried this step of the lead (it retries once)."""
    return conn.execute(select(attempts.c.id).where(
        attempts.c.lead_id == lead_id, attempts.c.step == step,
        attempts.c.doubt_resolution == "retried").limit(1)).first() is not None


def lead_fields(conn: Connection, lead_ids: list[int]) -> dict[int, dict]:
    if not lead_ids:
        return {}
    rows = conn.execute(select(*LEAD_FIELDS).where(leads.c.id.in_(lead_ids))).mappings()
    return {r["id"]: dict(r) for r in rows}
