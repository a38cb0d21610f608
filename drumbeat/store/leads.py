"""Lead rows: per-campaign queries that services and the engine share, lead import,
attempts of a lead, and the workspace's suppression list."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    Connection,
    Text,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

from drumbeat.domain.consent import address_hash
from drumbeat.domain.leads import UNFINISHED_LEAD_STATES, WORKABLE_LEAD_STATES
from drumbeat.store import counts
from drumbeat.store.secrets import address_key
from drumbeat.store.tables import attempts, campaigns, leads, suppressions

SEARCHED = (leads.c.phone, leads.c.email, leads.c.linkedin_url, leads.c.first_name, leads.c.last_name)


def current_steps(conn: Connection, campaign_id: str) -> set[int]:
    """The steps that the campaign's workable leads are waiting to do."""
    return counts.steps_with(conn, campaign_id, WORKABLE_LEAD_STATES)


def copy_leads(conn: Connection, source_id: str, target_id: str, now) -> None:
    """Duplicate with leads: fresh copies, not yet contacted (opted-out stay opted out)."""
    cols = ["phone", "email", "linkedin_url", "first_name", "last_name", "timezone", "attributes"]
    src = select(
        literal(target_id), *[leads.c[c] for c in cols],
        case((leads.c.state == "opted_out", "opted_out"), else_="not_contacted"),
        literal(0), literal(now, type_=leads.c.next_action_at.type), literal(0), literal(0),
        literal(now, type_=leads.c.created_at.type), literal(now, type_=leads.c.updated_at.type),
    ).where(leads.c.campaign_id == source_id)
    conn.execute(insert(leads).from_select(
        ["campaign_id", *cols, "state", "current_step", "next_action_at", "retries", "attempt_no",
         "created_at", "updated_at"], src))


# --- import -----------------------------------------------------------------------------

NEW_LEAD_FIELDS = ("phone", "email", "linkedin_url", "first_name", "last_name", "timezone", "attributes", "state")


def insert_new_leads(conn: Connection, campaign_id: str, new_leads: list[dict], now: datetime) -> int:
    """Insert leads (dicts of NEW_LEAD_FIELDS), skipping any whose phone, email or LinkedIn
    URL the campaign already has: the unique partial indexes decide (ON CONFLICT DO
    NOTHING), so racing imports cannot both win. Returns how many were inserted."""
    if not new_leads:
        return 0
    fresh = {"campaign_id": campaign_id, "current_step": 0, "next_action_at": now, "retries": 0,
             "attempt_no": 0, "created_at": now, "updated_at": now}
    if conn.dialect.name == "postgresql":
        return _insert_unnest(conn, new_leads, fresh)
    stmt = sqlite.insert(leads).on_conflict_do_nothing().returning(leads.c.id)
    # executemany + RETURNING: SQLAlchemy sends multi-row VALUES pages ("insertmanyvalues")
    # and returns only the rows that were inserted.
    return len(conn.execute(stmt, [{**fresh, **lead} for lead in new_leads]).all())


def _insert_unnest(conn: Connection, new_leads: list[dict], fresh: dict) -> int:
    """PostgreSQL: one array per column, unnested into rows by the server. A VALUES list
    of ~10,000 placeholders costs psycopg more to parse than PostgreSQL takes to insert."""
    arrays = [bindparam(f"new_{name}", [json.dumps(lead[name]) if name == "attributes" else lead[name]
                                        for lead in new_leads], type_=ARRAY(Text))
              for name in NEW_LEAD_FIELDS]
    src = func.unnest(*arrays).table_valued(*NEW_LEAD_FIELDS).render_derived(name="src")
    values = [cast(src.c.attributes, JSONB) if name == "attributes" else src.c[name] for name in NEW_LEAD_FIELDS]
    constants = [literal(value, type_=leads.c[name].type) for name, value in fresh.items()]
    stmt = (postgresql.insert(leads)
            .from_select([*NEW_LEAD_FIELDS, *fresh], select(*values, *constants))
            .on_conflict_do_nothing().returning(leads.c.id))
    return len(conn.execute(stmt).all())


def suppressed_among(conn: Connection, workspace_id: str, phones: Iterable[str],
                     emails: Iterable[str]) -> tuple[set[str], set[str]]:
    """Which of these addresses are on the workspace's suppression list: matched by keyed
    hash, so an entry whose address an erasure blanked still matches, and by address, for
    an entry made before migration 0013 that bootstrap has not hashed yet."""
    key = address_key(conn)
    wanted = {("phone", p) for p in phones} | {("email", e) for e in emails}
    by_hash = {address_hash(key, **{kind: address}): (kind, address) for kind, address in wanted}
    found: set[tuple[str, str]] = set()
    s = suppressions.c
    hashes = list(by_hash)
    for start in range(0, len(hashes), 1000):  # bounded IN lists
        chunk = [by_hash[h] for h in hashes[start:start + 1000]]
        rows = conn.execute(select(s.address_hash, s.phone, s.email).where(
            s.workspace_id == workspace_id,
            or_(s.address_hash.in_(hashes[start:start + 1000]),
                s.phone.in_([a for k, a in chunk if k == "phone"]),
                s.email.in_([a for k, a in chunk if k == "email"]))))
        for row in rows:
            found.update(m for m in (by_hash.get(row.address_hash), ("phone", row.phone), ("email", row.email))
                         if m in wanted)
    return {a for k, a in found if k == "phone"}, {a for k, a in found if k == "email"}


# --- reading ----------------------------------------------------------------------------

def list_leads(conn: Connection, campaign_id: str, *, states: list[str] | None, q: str | None,
               after_id: int | None, limit: int) -> list[dict]:
    """Keyset page by id: stable while leads are added or change state."""
    query = select(leads).where(leads.c.campaign_id == campaign_id)
    if states:
        query = query.where(leads.c.state.in_(states))
    if q:
        needle = q.lower()
        query = query.where(or_(*[func.lower(col).contains(needle, autoescape=True) for col in SEARCHED]))
    if after_id is not None:
        query = query.where(leads.c.id > after_id)
    return [dict(r) for r in conn.execute(query.order_by(leads.c.id).limit(limit)).mappings()]


def get_lead(conn: Connection, campaign_id: str, lead_id: int, *, for_update: bool = False) -> dict | None:
    query = select(leads).where(leads.c.id == lead_id, leads.c.campaign_id == campaign_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def lead_anywhere(conn: Connection, lead_id: int) -> dict | None:
    """A lead by id alone, with its campaign's workspace and the channel it was last sent
    on (`last_channel`, None before any attempt): the lead an unsubscribe token names."""
    last_channel = (select(attempts.c.channel).where(attempts.c.lead_id == leads.c.id)
                    .order_by(attempts.c.id.desc()).limit(1).scalar_subquery())
    row = conn.execute(select(leads, campaigns.c.workspace_id, last_channel.label("last_channel"))
                       .join(campaigns, campaigns.c.id == leads.c.campaign_id)
                       .where(leads.c.id == lead_id)).mappings().first()
    return dict(row) if row else None


def lead_attempts(conn: Connection, lead_id: int) -> list[dict]:
    rows = conn.execute(select(attempts).where(attempts.c.lead_id == lead_id).order_by(attempts.c.id))
    return [dict(r) for r in rows.mappings()]


# --- resolving in-doubt leads -------------------------------------------------------------

def update_lead(conn: Connection, lead_id: int, **values) -> None:
    conn.execute(update(leads).where(leads.c.id == lead_id).values(**values))


def doubted_attempt_started_at(conn: Connection, lead_id: int, step: int) -> datetime | None:
    """When the latest in-doubt attempt of a lead's step was committed (just before its call)."""
    return conn.execute(select(func.max(attempts.c.created_at)).where(
        attempts.c.lead_id == lead_id, attempts.c.step == step, attempts.c.status == "in_doubt")).scalar_one()


def mark_in_doubt_attempts(conn: Connection, lead_id: int, step: int, status: str, now: datetime) -> int:
    """The operator's verdict on the in-doubt attempt(s) of a lead's step."""
    result = conn.execute(update(attempts).where(
        attempts.c.lead_id == lead_id, attempts.c.step == step, attempts.c.status == "in_doubt",
    ).values(status=status, updated_at=now))
    return result.rowcount


# --- suppression list ---------------------------------------------------------------------

def suppression_hash(conn: Connection, *, phone: str | None, email: str | None) -> str:
    """The keyed hash of a normalized address (domain.consent.address_hash)."""
    return address_hash(address_key(conn), phone=phone, email=email)


def _matching(workspace_id: str, phone: str | None, email: str | None, hashed: str):
    s = suppressions.c
    return (s.workspace_id == workspace_id) & or_(s.address_hash == hashed,
                                                  s.phone == phone if phone else s.email == email)


def find_suppression(conn: Connection, workspace_id: str, *, phone: str | None, email: str | None) -> dict | None:
    hashed = suppression_hash(conn, phone=phone, email=email)
    row = conn.execute(select(suppressions).where(_matching(workspace_id, phone, email, hashed))
                       .order_by(suppressions.c.id).limit(1)).mappings().first()
    return dict(row) if row else None


def suppressions_of(conn: Connection, workspace_id: str, *, phone: str | None, email: str | None) -> list[dict]:
    """The entries that suppress a lead's phone or email (by address or hash), oldest first."""
    found: dict[int, dict] = {}
    for kind, address in (("phone", phone), ("email", email)):
        if not address:
            continue
        hashed = suppression_hash(conn, **{"phone": None, "email": None, kind: address})
        pair = (address, None) if kind == "phone" else (None, address)
        for row in conn.execute(select(suppressions).where(_matching(workspace_id, *pair, hashed))).mappings():
            found[row["id"]] = dict(row)
    return [found[k] for k in sorted(found)]


def insert_suppression(conn: Connection, workspace_id: str, *, phone: str | None, email: str | None,
                       now: datetime, reason: str = "manual", source: dict | None = None) -> dict | None:
    """Insert an entry unless one with the same address hash exists (then None): the unique
    index decides, so two racing suppressions of one address keep one entry."""
    source = source or {}
    values = {"workspace_id": workspace_id, "phone": phone, "email": email, "created_at": now, "reason": reason,
              "source_campaign_id": source.get("campaign_id"), "source_lead_id": source.get("lead_id"),
              "source_channel": source.get("channel"),
              "address_hash": suppression_hash(conn, phone=phone, email=email)}
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(suppressions).values(**values)
            .on_conflict_do_nothing(index_elements=["workspace_id", "address_hash"])
            .returning(suppressions.c.id))
    new_id = conn.execute(stmt).scalar_one_or_none()
    return None if new_id is None else {"id": new_id, **values}


def delete_suppressions(conn: Connection, workspace_id: str, *, phone: str | None, email: str | None,
                        reasons: Iterable[str]) -> int:
    """Delete the address's entries with one of these reasons."""
    hashed = suppression_hash(conn, phone=phone, email=email)
    result = conn.execute(delete(suppressions).where(_matching(workspace_id, phone, email, hashed),
                                                     suppressions.c.reason.in_(list(reasons))))
    return result.rowcount


def hash_unhashed_suppressions(conn: Connection, key: bytes) -> int:
    """Fill in the address hash of entries made before migration 0013 (which had no key to
    compute it). An entry whose hash another entry of its workspace already has is a
    duplicate of it (the older one is kept). Returns the entries hashed."""
    s = suppressions.c
    rows = conn.execute(select(s.id, s.workspace_id, s.phone, s.email).where(s.address_hash.is_(None))
                        .order_by(s.id)).all()
    done = 0
    for row in rows:
        if row.phone is None and row.email is None:
            continue
        hashed = address_hash(key, phone=row.phone) if row.phone else address_hash(key, email=row.email)
        taken = conn.execute(select(s.id).where(s.workspace_id == row.workspace_id, s.address_hash == hashed)).first()
        if taken is not None:
            conn.execute(delete(suppressions).where(s.id == row.id))
            continue
        conn.execute(update(suppressions).where(s.id == row.id).values(address_hash=hashed))
        done += 1
    return done


def list_suppressions(conn: Connection, workspace_id: str, *, after_id: int | None, limit: int,
                      needle: str | None = None, reason: str | None = None) -> list[dict]:
    """Keyset page by id; `needle`: part of the phone or email (as stored, domain.consent.search_needle)."""
    s = suppressions.c
    query = select(suppressions).where(s.workspace_id == workspace_id)
    if needle:
        query = query.where(or_(s.phone.contains(needle, autoescape=True),
                                s.email.contains(needle, autoescape=True)))
    if reason:
        query = query.where(s.reason == reason)
    if after_id is not None:
        query = query.where(s.id > after_id)
    return [dict(r) for r in conn.execute(query.order_by(s.id).limit(limit)).mappings()]


def insert_suppressions(conn: Connection, workspace_id: str, entries: list[dict], now: datetime) -> int:
    """Many entries at once (entries: {"phone"|"email", "reason"}; addresses
    normalized, each once). An address already on the list is skipped by the unique index
    on its hash, as insert_suppression does. Returns how many were inserted."""
    if not entries:
        return 0
    key = address_key(conn)
    rows = [{"workspace_id": workspace_id, "phone": e.get("phone"), "email": e.get("email"), "created_at": now,
             "reason": e["reason"], "address_hash": address_hash(key, phone=e.get("phone"), email=e.get("email"))}
            for e in entries]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # executemany: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues") from one
    # cached statement, where .values(rows) would compile a new one for every batch.
    stmt = (dialect.insert(suppressions)
            .on_conflict_do_nothing(index_elements=["workspace_id", "address_hash"])
            .returning(suppressions.c.id))
    return len(conn.execute(stmt, rows).all())


def opt_out_addresses(conn: Connection, workspace_id: str, *, phones: list[str], emails: list[str],
                      now: datetime) -> int:
    """opt_out_matching for many addresses in one statement."""
    if not phones and not emails:
        return 0
    match = or_(leads.c.phone.in_(phones), leads.c.email.in_(emails))
    in_workspace = leads.c.campaign_id.in_(select(campaigns.c.id).where(campaigns.c.workspace_id == workspace_id))
    result = conn.execute(update(leads).where(in_workspace, match, leads.c.state.in_(UNFINISHED_LEAD_STATES))
                          .values(state="opted_out", lease_owner=None, lease_expires_at=None, updated_at=now))
    return result.rowcount


def get_suppression(conn: Connection, workspace_id: str, suppression_id: int) -> dict | None:
    s = suppressions.c
    row = conn.execute(select(suppressions).where(s.workspace_id == workspace_id, s.id == suppression_id)
                       ).mappings().first()
    return dict(row) if row else None


def delete_suppression(conn: Connection, workspace_id: str, suppression_id: int) -> dict | None:
    """Delete one entry of the workspace; the entry deleted, or None when there is none."""
    s = suppressions.c
    row = conn.execute(select(suppressions).where(s.workspace_id == workspace_id, s.id == suppression_id)
                       .with_for_update()).mappings().first()
    if row is None:
        return None
    conn.execute(delete(suppressions).where(s.id == suppression_id))
    return dict(row)


def opted_out_by_reason(conn: Connection, workspace_id: str, campaign_id: str) -> dict[str, int]:
    """The campaign's opted-out leads by the reason of the suppression that holds them
    (their phone's entry, else their email's), in one statement; a lead whose entry an
    owner has since deleted counts under None."""
    entry = suppressions.alias("e")

    def reason_of(column, address):
        return (select(entry.c.reason).where(entry.c.workspace_id == workspace_id, entry.c[column] == address)
                .order_by(entry.c.id).limit(1).scalar_subquery())

    per_lead = (select(func.coalesce(reason_of("phone", leads.c.phone), reason_of("email", leads.c.email))
                       .label("reason"))
                .where(leads.c.campaign_id == campaign_id, leads.c.state == "opted_out").subquery())
    rows = conn.execute(select(per_lead.c.reason, func.count()).group_by(per_lead.c.reason))
    return {r: int(n) for r, n in rows}


def opt_out_matching(conn: Connection, workspace_id: str, *, phone: str | None, email: str | None,
                     now: datetime) -> int:
    """Every unfinished lead of the workspace with this address becomes opted_out. A lead
    leased by a worker loses its lease too: it must not be contacted any more."""
    match = leads.c.phone == phone if phone else leads.c.email == email
    in_workspace = leads.c.campaign_id.in_(select(campaigns.c.id).where(campaigns.c.workspace_id == workspace_id))
    result = conn.execute(update(leads).where(in_workspace, match, leads.c.state.in_(UNFINISHED_LEAD_STATES))
                          .values(state="opted_out", lease_owner=None, lease_expires_at=None, updated_at=now))
    return result.rowcount


def release_invitation_wait(conn: Connection, lead_ids: list[int], now) -> int:
    """An accepted invitation makes the waiting message step due now."""
    if not lead_ids:
        return 0
    result = conn.execute(update(leads).where(leads.c.id.in_(lead_ids), leads.c.awaiting == "acceptance")
                          .values(awaiting=None, next_action_at=now, updated_at=now))
    return result.rowcount


# Blank as templates._value judges it (str.strip), for the whitespace a lead's value can hold.
_BLANK = " \t\n\r\f\v"


def leads_missing(conn: Connection, campaign_id: str, variable: str, *, through_step: int,
                  samples: int = 5) -> tuple[int, list[int]]:
    """Unfinished leads that still have to run a step at or before `through_step` and have
    no value (missing or blank) for `variable` (a lead field or `attributes.<name>`), and
    the first few of them by id: one statement, the JSON read in SQL (a campaign of a
    million leads is never loaded)."""
    if variable.startswith("attributes."):
        name = variable[len("attributes."):]
        if conn.dialect.name == "postgresql":
            value = leads.c.attributes.op("->>")(literal(name, Text))
        else:
            value = func.json_extract(leads.c.attributes, f'$."{name}"')
    else:
        value = leads.c[variable]
    trim = func.btrim if conn.dialect.name == "postgresql" else func.trim
    query = (select(leads.c.id, func.count().over().label("n"))
             .where(leads.c.campaign_id == campaign_id, leads.c.state.in_(UNFINISHED_LEAD_STATES),
                    leads.c.current_step <= through_step,
                    or_(value.is_(None), trim(cast(value, Text), _BLANK) == ""))
             .order_by(leads.c.id).limit(samples))
    rows = conn.execute(query).all()
    return (rows[0].n if rows else 0), [r.id for r in rows]
