"""The engine's hot path: claim due leads with a lease and start their attempts in one
transaction, then write outcomes in batches.

Claim and attempt insert share one transaction that first takes a share lock on the
campaign row, so a pause (which updates that row) and a claim serialise: once a pause
has committed, no new attempt starts. On PostgreSQL due leads are taken with
FOR UPDATE SKIP LOCKED so workers never wait on each other; on SQLite every write
transaction is BEGIN IMMEDIATE, which makes the same code single-writer and correct.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache

from sqlalchemy import (
    Connection,
    TextClause,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    union,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from drumbeat.domain.consent import address_hash
from drumbeat.domain.contact_cap import COUNTED_ATTEMPT_STATUSES, ContactCap, contact_cap_wait
from drumbeat.domain.leads import AttemptStatus, LeadState
from drumbeat.domain.messages import Composition, OutboundMessage
from drumbeat.domain.schedule import week_of
from drumbeat.store import counts
from drumbeat.store.secrets import address_key
from drumbeat.store.sql import queries
from drumbeat.store.tables import (
    WORKABLE_LEADS,
    UTCDateTime,
    attempts,
    campaigns,
    holds,
    leads,
    provider_messages,
    send_counters,
    steps,
)

LEAD_FIELDS = (leads.c.id, leads.c.state, leads.c.current_step, leads.c.next_action_at, leads.c.retries,
               leads.c.attempt_no, leads.c.phone, leads.c.email, leads.c.linkedin_url, leads.c.first_name,
               leads.c.last_name, leads.c.timezone, leads.c.attributes, leads.c.last_error)

# Leads a claim examines per pass once it has moved some to their own window (claim_due_leads).
DEFER_PASS = 256


@dataclass
class ClaimedAttempt:
    attempt_id: int
    lead: dict
    step: int
    integration_id: str
    idempotency_key: str
    message: OutboundMessage | None = None  # composed in the claim (None: compose when sending)


# compose(lead, idempotency key) -> the lead's message of its current step (domain.messages).
Composer = Callable[[dict, str], Composition]


def lock_sending_campaign(conn: Connection, campaign_id: str, run: int):
    """Share-lock the campaign row; None unless it is still sending in the same run."""
    row = conn.execute(select(campaigns.c.status, campaigns.c.run, campaigns.c.parked_before,
                              campaigns.c.workspace_id)
                       .where(campaigns.c.id == campaign_id)
                       .with_for_update(read=True)).first()
    if row is None or row.status != "sending" or row.run != run:
        return None
    return row


def due_now(campaign_id, now: datetime) -> tuple:
    """A campaign's workable leads whose time has come, free to take (not leased, not
    waiting for an acceptance): what a claim takes, a re-clamp places and the queue-depth
    metric counts. `campaign_id`: an id, or a joined campaigns.id column."""
    return (leads.c.campaign_id == campaign_id, WORKABLE_LEADS, leads.c.next_action_at <= now,
            leads.c.lease_owner.is_(None), leads.c.awaiting.is_(None))


def claimable(now: datetime) -> tuple:
    """The leads a claim of the campaigns row joined beside them would take now: due_now,
    less the campaign's parked leads (the queue-depth metric; which campaigns to claim)."""
    return (*due_now(campaigns.c.id, now),
            or_(campaigns.c.parked_before.is_(None), leads.c.next_action_at >= campaigns.c.parked_before))


def campaigns_with_claimable_leads(conn: Connection, campaign_ids: list[str], now: datetime) -> set[str]:
    """Of these campaigns, those with a lead a claim could take now: one probe of the due
    index each, so campaigns waiting for a window, a cap or a later step cost a worker's
    round nothing (a claim of each costs a transaction of several statements)."""
    has_due = select(leads.c.id).where(*claimable(now)).exists()
    return set(conn.execute(select(campaigns.c.id).where(campaigns.c.id.in_(campaign_ids), has_due)).scalars())


def claim_due_leads(conn: Connection, *, campaign_id: str, run: int, steps_open: list[int], now: datetime,
                    limit: int, owner: str, lease: timedelta, pick_integration,
                    channel_of_step, defer: Callable[[dict], datetime | None] | None = None,
                    compose: Composer | None = None,
                    contact_cap: ContactCap | None = None,
                    variant_of: Callable[[dict], int | None] | None = None) -> list[ClaimedAttempt] | None:
    """Lease up to `limit` due leads whose current step is on an open channel and commit
    a `sending` attempt for each (the caller commits). `pick_integration(step)` returns
    the key to use, round robin over the channel's usable pool. None means the campaign
    is no longer sending in this run (the caller's view of it is stale). `variant_of(lead)`
    names the variant of its current step each attempt records (domain.variants).

    `defer(lead)` may move a claimed lead to a later time instead (its window is closed
    now): it is released at once with that next action time, no attempt starts, and it
    takes none of the `limit` (the claim goes on to the next due leads).

    `compose` renders each lead's message before its attempt starts: a lead whose message
    may not leave (a variable without value, a rendered content the provider would
    refuse) ends `failed` with the problem's code here, with no attempt and taking none
    of the `limit` either; it was never sent, so neither caps nor the failure-rate
    detector see it. The others carry their message to the send.

    A lead any of whose addresses the workspace has suppressed ends `opted_out` here
    instead (opt_out_suppressed), whatever path enrolled it: no attempt, none of the
    `limit`. With the workspace's `contact_cap`, a lead whose person has had all the
    contacts the cap allows waits, moved like a deferred lead to when one more fits
    (hold_to_contact_cap); one whose person another claim is contacting right now is
    released as it was, for a later claim."""
    campaign = lock_sending_campaign(conn, campaign_id, run)
    if campaign is None:
        return None
    if not steps_open or limit <= 0:
        return []
    # Read in this transaction, so a hold placed by any process is honoured at once.
    held_steps = (select(steps.c.position).join(holds, (holds.c.campaign_id == steps.c.campaign_id)
                                                & (holds.c.channel == steps.c.channel))
                  .where(steps.c.campaign_id == campaign_id))
    due = (select(leads.c.id)
           .where(*due_now(campaign_id, now), *not_parked(campaign.parked_before),
                  leads.c.current_step.in_(steps_open), leads.c.current_step.not_in(held_steps))
           .order_by(leads.c.next_action_at).limit(bindparam("room"))
           .with_for_update(skip_locked=True))
    take = (update(leads).where(leads.c.id.in_(due.scalar_subquery()))
            .values(lease_owner=owner, lease_expires_at=now + lease, attempt_no=leads.c.attempt_no + 1,
                    updated_at=now)
            .returning(*LEAD_FIELDS))
    claimed: list[dict] = []
    messages: dict[int, OutboundMessage] = {}
    held: dict[int, datetime] = {}
    room = limit
    while len(claimed) < limit:
        result = conn.execute(take, {"room": room})
        names = tuple(result.keys())
        batch = [dict(zip(names, row, strict=True)) for row in result.all()]  # plain dicts: RowMapping costs per field
        if not batch:
            break
        barred = opt_out_suppressed(conn, campaign.workspace_id, batch, now)
        if barred:
            batch = [lead for lead in batch if lead["id"] not in barred]
        moved: dict[int, datetime] = {}
        if defer is not None:
            later = [(lead["id"], defer(lead)) for lead in batch]
            moved = {lead_id: at for lead_id, at in later if at is not None}
        candidates: list[dict] = []
        kept: list[dict] = []
        handed_back: dict[int, datetime] = {}
        failed: dict[int, str] = {}
        for lead in batch:
            if lead["id"] in moved:
                continue
            if len(claimed) + len(candidates) >= limit:
                handed_back[lead["id"]] = lead["next_action_at"]
                continue
            candidates.append(lead)
        if contact_cap is not None and candidates:
            busy, waits = hold_to_contact_cap(conn, campaign.workspace_id, candidates, contact_cap, now)
            held.update(busy)  # kept leased until the claim ends, so no later pass takes them again
            moved.update(waits)
            candidates = [lead for lead in candidates if lead["id"] not in busy and lead["id"] not in waits]
        for lead in candidates:
            if compose is not None:
                composition = compose(lead, _idempotency_key(lead))
                if composition.problem is not None:
                    failed[lead["id"]] = composition.problem[0]
                    continue
                messages[lead["id"]] = composition.message
            kept.append(lead)
        if moved or handed_back:
            # Moved past `now`, they are not due again: the next pass takes the room they
            # leave (a capped claim's budget is for leads it may send now). Leads a wide
            # pass took beyond that room go back as they were.
            _defer_leads(conn, {**moved, **handed_back}, now)
        if failed:
            fail_unsendable(conn, campaign_id, failed, now)
        claimed.extend(kept)
        if not moved and not failed and not barred:
            break  # every due lead the query could take is taken
        # The next passes look further at once: a small cap behind thousands of leads of
        # closed zones is a few passes, not one per cap's worth.
        room = max(limit - len(claimed), DEFER_PASS)
    if held:  # another claim is contacting the same person: due again as they were
        _defer_leads(conn, held, now)
    if not claimed:
        return []
    rows = []
    for lead in claimed:
        step = lead["current_step"]
        rows.append({"lead_id": lead["id"], "step": step, "channel": channel_of_step(step),
                     "integration_id": pick_integration(step), "idempotency_key": _idempotency_key(lead),
                     "variant": variant_of(lead) if variant_of is not None else None})
    attempt_of_lead = dict((lead_id, attempt_id) for attempt_id, lead_id in
                           _insert_sending_attempts(conn, campaign_id, run, rows, now))
    by_lead = {lead["id"]: lead for lead in claimed}
    return [ClaimedAttempt(attempt_of_lead[r["lead_id"]], by_lead[r["lead_id"]], r["step"], r["integration_id"],
                           r["idempotency_key"], messages.get(r["lead_id"])) for r in rows]


def _idempotency_key(lead: dict) -> str:
    return f"{lead['id']}:{lead['current_step']}:{lead['attempt_no']}"


# Consent at the claim (DESIGN.md §9). A suppression and a claim cannot both win: adding
# one (services.suppressions) updates every unfinished lead with that address, which takes
# their row locks, and a claim takes its leads' row locks (FOR UPDATE SKIP LOCKED) before
# this check, holding them until it commits. On PostgreSQL READ COMMITTED:
# - the suppression's UPDATE reached a lead first: the claim skips the locked row, and once
#   the suppression commits the lead is opted_out, no longer workable, never taken again;
# - the claim locked the lead first: the suppression's UPDATE waits on that row until the
#   claim commits, so the claim's `sending` attempt commits before the suppression does
#   (it came first and may be sent); the UPDATE then re-reads the row and opts it out.
# So no `sending` attempt for an address commits after its suppression has committed. This
# statement, run after the leads are locked with a snapshot of its own, catches what the
# lead update could not reach: a suppression written without it (imported, inserted
# directly) or a lead enrolled by another path after the suppression. (Left open: a lead
# whose enrolling transaction commits while a suppression of its address is being written
# and is claimed before that suppression commits; neither saw the other.) On SQLite every
# write transaction is BEGIN IMMEDIATE: claim and suppression simply take turns.
def opt_out_suppressed(conn: Connection, workspace_id: str, batch: list[dict], now: datetime) -> set[int]:
    """Of these leads just claimed (LEAD_FIELDS), those with an address on the workspace's
    suppression list (by address, or by its keyed hash: an erased entry keeps only that)
    become `opted_out`, released, their attempt number given back: one statement; the
    counts follow by trigger. Returns their ids."""
    if not batch:
        return set()
    key = address_key(conn)
    rows = [(lead["id"], lead["phone"] and address_hash(key, phone=lead["phone"]),
             lead["email"] and address_hash(key, email=lead["email"])) for lead in batch]
    params = {"workspace_id": workspace_id, "now": now}
    if conn.dialect.name == "postgresql":
        params.update(ids=[r[0] for r in rows], phone_hashes=[r[1] for r in rows], email_hashes=[r[2] for r in rows])
    else:
        params["batch"] = json.dumps(rows)
    return set(conn.execute(_opt_out_suppressed(conn.dialect.name), params).scalars())


@cache
def _opt_out_suppressed(dialect: str) -> TextClause:
    return queries(dialect)["opt_out_suppressed_leads"].bindparams(bindparam("now", type_=UTCDateTime()))


# The workspace contact cap (DESIGN.md §9): exact across workers because a claim contacts a
# person only while holding a transaction lock on each of the person's addresses, and counts
# their contacts after taking it. On PostgreSQL that lock is an advisory transaction lock per
# address (workspace and address hashed to 32 bits, in a key space of its own), taken with
# pg_try_advisory_xact_lock: a claim that finds one held by another claim releases that
# lead for later instead of waiting, so it never waits while holding lead rows or counters
# (no lock-order deadlock). The lock is released only after the holder's commit is visible,
# and READ COMMITTED gives the count that follows a fresh snapshot, so the count sees every
# contact a previous holder started. This is the cheapest exact way: counter rows per
# address and day (as the campaign caps keep) would write and keep a row per person per
# day, and could only say "n today", not "n in the last d days"; the attempts themselves
# are the count. (A hash collision only makes two people take turns.) On SQLite every
# claim is BEGIN IMMEDIATE: one at a time, nothing to lock.
ADDRESS_FIELDS = ("phone", "email", "linkedin_url")  # how a person is known
ADDRESS_LOCK_SPACE = 0x44524D43  # "DRMC": the first key of the two-key advisory lock form


def address_lock_key(workspace_id: str, kind: str, address: str) -> int:
    digest = hashlib.blake2b(f"{workspace_id}\x00{kind}\x00{address}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def hold_to_contact_cap(conn: Connection, workspace_id: str, claimed: list[dict], cap: ContactCap,
                        now: datetime) -> tuple[dict[int, datetime], dict[int, datetime]]:
    """Of these claimed leads (LEAD_FIELDS), (busy, waiting): lead id -> its own next action
    time for those whose person another transaction is contacting now (PostgreSQL), and
    lead id -> when one more contact fits the cap for those who had all it allows."""
    busy: dict[int, datetime] = {}
    if conn.dialect.name == "postgresql":
        keys = {lead["id"]: [address_lock_key(workspace_id, kind, lead[kind]) for kind in ADDRESS_FIELDS
                             if lead[kind]] for lead in claimed}
        refused = set(conn.execute(queries("postgresql")["lock_contact_addresses"], {
            "space": ADDRESS_LOCK_SPACE, "keys": sorted({k for ks in keys.values() for k in ks})}).scalars())
        if refused:
            busy = {lead["id"]: lead["next_action_at"] for lead in claimed if refused.intersection(keys[lead["id"]])}
    free = [lead["id"] for lead in claimed if lead["id"] not in busy]
    contacts = contacts_since(conn, workspace_id, free, cap.since(now))
    waits = {lead_id: at for lead_id in free if (at := contact_cap_wait(cap, contacts.get(lead_id, []), now))}
    return busy, waits


def contacts_since(conn: Connection, workspace_id: str, lead_ids: list[int],
                   since: datetime) -> dict[int, list[datetime]]:
    """lead id -> start times of the contacts, after `since`, of every lead of the workspace
    that shares an address (phone, email or LinkedIn profile) with it, itself included: one
    statement, each address looked up on its per-campaign unique index."""
    if not lead_ids:
        return {}
    lead, other = leads.alias("lead"), leads.alias("other")
    in_workspace = other.c.campaign_id.in_(select(campaigns.c.id).where(campaigns.c.workspace_id == workspace_id))

    def sharing(address: str):
        return (select(lead.c.id.label("lead_id"), attempts.c.id.label("attempt_id"), attempts.c.created_at)
                .select_from(lead.join(other, other.c[address] == lead.c[address])
                             .join(attempts, attempts.c.lead_id == other.c.id))
                .where(lead.c.id.in_(lead_ids), in_workspace, attempts.c.created_at > since,
                       attempts.c.status.in_(COUNTED_ATTEMPT_STATUSES)))

    out: dict[int, list[datetime]] = {}
    for lead_id, _, at in conn.execute(union(*map(sharing, ADDRESS_FIELDS))):  # UNION: an attempt once
        out.setdefault(lead_id, []).append(at)
    return out


_FAIL_UNSENDABLE = (update(leads).where(leads.c.id == bindparam("f_id"))
                    .values(state=LeadState.FAILED, last_error=bindparam("f_code"), lease_owner=None,
                            lease_expires_at=None, awaiting=None, attempt_no=leads.c.attempt_no - 1,
                            updated_at=bindparam("f_now")))


def fail_unsendable(conn: Connection, campaign_id: str, failed: dict[int, str], now: datetime) -> None:
    """Claimed leads whose message may not leave end `failed` with the lead-level code
    (lead id -> code), released, with no attempt; counted per code for the campaign's
    `errors` (counts.add_content_failures)."""
    conn.execute(_FAIL_UNSENDABLE, [{"f_id": lead_id, "f_code": code, "f_now": now}
                                    for lead_id, code in failed.items()])
    by_code: dict[str, int] = {}
    for code in failed.values():
        by_code[code] = by_code.get(code, 0) + 1
    counts.add_content_failures(conn, campaign_id, by_code)


def _defer_leads(conn: Connection, moved: dict[int, datetime], now: datetime) -> None:
    """Release claimed leads that are not sent now, due again at the given times: the next
    slot of their window, or their own time for leads a claim took beyond its room."""
    if conn.dialect.name == "postgresql":
        conn.execute(queries("postgresql")["defer_claimed_leads"],
                     {"ids": list(moved), "next_at": list(moved.values()), "now": now})
        return
    conn.execute(update(leads).where(leads.c.id == bindparam("d_id"))
                 .values(next_action_at=bindparam("d_at"), lease_owner=None, lease_expires_at=None,
                         attempt_no=leads.c.attempt_no - 1, updated_at=now),
                 [{"d_id": i, "d_at": at} for i, at in moved.items()])


def _insert_sending_attempts(conn: Connection, campaign_id: str, run: int, rows: list[dict], now: datetime):
    """(attempt id, lead id) for each new `sending` attempt."""
    if conn.dialect.name == "postgresql":
        return conn.execute(queries("postgresql")["insert_sending_attempts"], {
            "campaign_id": campaign_id, "run": run, "now": now, **_columns(rows, {
                "lead_ids": "lead_id", "steps": "step", "channels": "channel",
                "integration_ids": "integration_id", "keys": "idempotency_key", "variants": "variant"})}).all()
    values = [{**r, "campaign_id": campaign_id, "run": run, "status": AttemptStatus.SENDING,
               "created_at": now, "updated_at": now} for r in rows]
    return conn.execute(insert(attempts).returning(attempts.c.id, attempts.c.lead_id), values).all()


_ATTEMPT_OUTCOME = (update(attempts).where(attempts.c.id == bindparam("a_id"))
                    .values(status=bindparam("a_status"), provider_message_id=bindparam("a_provider_message_id"),
                            error_code=bindparam("a_error_code"), error_class=bindparam("a_error_class"),
                            error_message=bindparam("a_error_message"),
                            counted_failure=bindparam("a_counted_failure"), updated_at=bindparam("a_now")))

_LEAD_OUTCOME = (update(leads).where(leads.c.id == bindparam("l_id"), leads.c.lease_owner == bindparam("l_owner"),
                                     WORKABLE_LEADS)
                 .values(state=bindparam("l_state"), current_step=bindparam("l_current_step"),
                         next_action_at=bindparam("l_next_action_at"), retries=bindparam("l_retries"),
                         attempt_no=bindparam("l_attempt_no"), last_error=bindparam("l_last_error"),
                         awaiting=bindparam("l_awaiting"),
                         lease_owner=None, lease_expires_at=None, updated_at=bindparam("l_now")))


def write_outcomes(conn: Connection, attempt_rows: list[dict], lead_rows: list[dict], *, owner: str,
                   now: datetime, claimed: dict[int, tuple[int, int]] | None = None) -> None:
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
            moved = conn.execute(sql["write_lead_outcomes"], {"now": now, "owner": owner, **_columns(lead_rows, {
                "ids": "id", "states": "state", "steps": "current_step", "next_at": "next_action_at",
                "retries": "retries", "attempt_nos": "attempt_no", "errors": "last_error", "awaiting": "awaiting"})})
            if moved.rowcount < len(lead_rows):
                _settle_doubted(conn, lead_rows, claimed or {}, now)
        return
    if attempt_rows:
        conn.execute(_ATTEMPT_OUTCOME, [{f"a_{k}": v for k, v in r.items()} | {"a_now": now} for r in attempt_rows])
        messages = [{"attempt_id": r["id"], "provider_message_id": r["provider_message_id"]} for r in attempt_rows
                    if r["provider_message_id"] is not None]
        if messages:
            upsert = sqlite.insert(provider_messages)
            conn.execute(upsert.on_conflict_do_update(index_elements=["attempt_id"], set_={
                "provider_message_id": upsert.excluded.provider_message_id}), messages)
    if lead_rows:
        moved = conn.execute(_LEAD_OUTCOME, [{f"l_{k}": v for k, v in r.items()} | {"l_now": now, "l_owner": owner}
                                             for r in lead_rows])
        if moved.rowcount < len(lead_rows):
            _settle_doubted(conn, lead_rows, claimed or {}, now)


# The lead that lease recovery took from the stalled worker, if no one has sent for it
# since: in doubt, or retried by the operator but not claimed yet (claiming inserts an
# attempt, so "no later attempt" means the retry has not started).
_LATER_ATTEMPT = (select(attempts.c.id).where(attempts.c.lead_id == leads.c.id, attempts.c.id > bindparam("l_attempt"))
                  .exists())
_DOUBTED_OUTCOME = (update(leads).where(leads.c.id == bindparam("l_id"), leads.c.lease_owner.is_(None),
                                        leads.c.current_step == bindparam("l_step"),
                                        or_(leads.c.state == LeadState.IN_DOUBT,
                                            and_(WORKABLE_LEADS, ~_LATER_ATTEMPT)))
                    .values(state=bindparam("l_state"), current_step=bindparam("l_current_step"),
                            next_action_at=bindparam("l_next_action_at"), retries=bindparam("l_retries"),
                            attempt_no=bindparam("l_attempt_no"), last_error=bindparam("l_last_error"),
                            awaiting=bindparam("l_awaiting"), updated_at=bindparam("l_now")))


def _settle_doubted(conn: Connection, lead_rows: list[dict], claimed: dict[int, tuple[int, int]],
                    now: datetime) -> None:
    """A worker that stalled past its lease records its answers after all: a lead that lease
    recovery took for this very attempt (same step, nobody has sent for it since) takes the
    outcome, since the provider's answer is now known. That holds for a lead still in doubt
    (asking a person whether it was sent would invite a second contact) and for one whose
    Retry is not claimed yet (the retry is cancelled: the first send was answered). `claimed`:
    lead id -> (step, attempt id) of this worker's claims. (Rare: only runs when some lead
    was not moved.)"""
    rows = [{f"l_{k}": v for k, v in r.items()} | {"l_now": now, "l_step": claimed[r["id"]][0],
                                                   "l_attempt": claimed[r["id"]][1]}
            for r in lead_rows if r["id"] in claimed]
    if rows:
        conn.execute(_DOUBTED_OUTCOME, rows)


def _columns(rows: list[dict], names: dict[str, str]) -> dict[str, list]:
    return {param: [r[key] for r in rows] for param, key in names.items()}


def release_leads(conn: Connection, lead_ids: list[int]) -> None:
    if lead_ids:
        conn.execute(update(leads).where(leads.c.id.in_(lead_ids)).values(lease_owner=None, lease_expires_at=None))


def retake_leases(conn: Connection, attempt_leads: dict[int, int], owner: str, until: datetime) -> set[int]:
    """Of these attempts (id -> lead id), those still `sending` on a lead `owner` still
    leases, their leases renewed to `until`: what a claim whose COMMIT got no answer did
    commit after all."""
    if not attempt_leads:
        return set()
    rows = conn.execute(
        select(attempts.c.id, attempts.c.lead_id).join(leads, leads.c.id == attempts.c.lead_id)
        .where(attempts.c.id.in_(list(attempt_leads)), attempts.c.status == AttemptStatus.SENDING,
               leads.c.lease_owner == owner).with_for_update(of=leads)).all()
    held = {r.id for r in rows if attempt_leads[r.id] == r.lead_id}
    if held:
        conn.execute(update(leads).where(leads.c.id.in_([attempt_leads[a] for a in held]), leads.c.lease_owner == owner)
                     .values(lease_expires_at=until))
    return held


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


def expire_acceptance_waits(conn: Connection, campaign_ids: list[str], now: datetime) -> int:
    """Invitations not accepted in time: the lead's sequence cannot go on."""
    if not campaign_ids:
        return 0
    result = conn.execute(update(leads).where(leads.c.campaign_id.in_(campaign_ids), leads.c.awaiting == "acceptance",
                                              leads.c.next_action_at <= now,
                                              WORKABLE_LEADS)
                          .values(state=LeadState.FAILED, awaiting=None, last_error="linkedin:invitation_not_accepted",
                                  updated_at=now))
    return result.rowcount


# --- caps: counters claimed with the leads (DESIGN.md §6) -----------------------------------

CounterKey = tuple[str, str, str]  # kind, scope id, period


def day_period(day: date) -> str:
    return f"day:{day.isoformat()}"


def week_period(monday: date) -> str:
    return f"week:{monday.isoformat()}"


def campaign_cap_keys(campaign_id: str, today: date) -> tuple[CounterKey, CounterKey]:
    """The counter rows a campaign's sends on its local day `today` are charged to: that
    day's and its week's (the caps and the ramp)."""
    return ("campaign", campaign_id, day_period(today)), ("campaign", campaign_id, week_period(week_of(today)))


def campaign_rate_key(campaign_id: str) -> CounterKey:
    """The counter row that paces a campaign's rate_per_second (its `until`)."""
    return ("campaign", campaign_id, "rate")


def counter_untils(conn: Connection, keys: list[CounterKey]) -> dict[CounterKey, datetime | None]:
    """The `until` of several counter rows, without locking (for reading: the campaign
    views), in one query; rows that do not exist are left out."""
    if not keys:
        return {}
    c = send_counters.c
    rows = conn.execute(select(c.kind, c.scope_id, c.period, c.until)
                        .where(tuple_(c.kind, c.scope_id, c.period).in_(keys)))
    return {(r.kind, r.scope_id, r.period): r.until for r in rows}


def lock_counters(conn: Connection, keys: list[CounterKey]) -> dict[CounterKey, dict]:
    """Lock (creating them at 0 if needed) the counter rows of `keys`, always in one
    order (kind, scope, period) so that claims drawing on shared budgets (an integration
    used by several campaigns) never deadlock. Returns each row as a dict."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    c = send_counters.c
    query = (select(c.kind, c.scope_id, c.period, c.count, c.until)
             .where(tuple_(c.kind, c.scope_id, c.period).in_(keys))
             .order_by(c.kind, c.scope_id, c.period).with_for_update())
    rows = {(r.kind, r.scope_id, r.period): dict(r._mapping) for r in conn.execute(query)}
    missing = [k for k in keys if k not in rows]
    if missing:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(send_counters).on_conflict_do_nothing(),
                     [{"kind": k, "scope_id": s, "period": p, "count": 0} for k, s, p in missing])
        rows = {(r.kind, r.scope_id, r.period): dict(r._mapping) for r in conn.execute(query)}
    return rows


def add_to_counters(conn: Connection, increments: dict[CounterKey, int]) -> None:
    """count += n for each key (n < 0 gives budget back); rows sorted, like the locks."""
    changes = [{"k_kind": k, "k_scope": s, "k_period": p, "k_n": n}
               for (k, s, p), n in sorted(increments.items()) if n]
    if changes:
        c = send_counters.c
        conn.execute(update(send_counters)
                     .where(c.kind == bindparam("k_kind"), c.scope_id == bindparam("k_scope"),
                            c.period == bindparam("k_period"))
                     .values(count=c.count + bindparam("k_n")), changes)


def set_counter_until(conn: Connection, key: CounterKey, until: datetime) -> None:
    c = send_counters.c
    conn.execute(update(send_counters).where(c.kind == key[0], c.scope_id == key[1], c.period == key[2])
                 .values(until=until))


def counter_values(conn: Connection, keys: list[CounterKey]) -> dict[CounterKey, int]:
    """Counts without locking (for reading: the campaign view, the re-clamp's plan)."""
    if not keys:
        return {}
    c = send_counters.c
    rows = conn.execute(select(c.kind, c.scope_id, c.period, c.count)
                        .where(tuple_(c.kind, c.scope_id, c.period).in_(keys)))
    return {(r.kind, r.scope_id, r.period): r.count for r in rows}


def first_sending_day(conn: Connection, campaign_id: str) -> date | None:
    """The ramp counts from the first local day the campaign sent anything."""
    return first_sending_days(conn, [campaign_id]).get(campaign_id)


def first_sending_days(conn: Connection, campaign_ids: list[str]) -> dict[str, date]:
    """campaign id -> its first sending day, for those that sent anything (one query)."""
    c = send_counters.c
    rows = conn.execute(select(c.scope_id, func.min(c.period)).where(
        c.kind == "campaign", c.scope_id.in_(campaign_ids), c.period.like("day:%"), c.count > 0)
        .group_by(c.scope_id))
    return {cid: date.fromisoformat(first[4:]) for cid, first in rows}


# --- re-clamp on resume (DESIGN.md §5) --------------------------------------------------------

def not_parked(parked_before: datetime | None) -> tuple:
    """The condition that leaves out a campaign's parked leads (those the re-clamp has not
    placed yet wait with their old next action time, before `parked_before`)."""
    return () if parked_before is None else (leads.c.next_action_at >= parked_before,)


@dataclass(frozen=True)
class Placing:
    """The leads a re-clamp places, longest waiting first. On start or resume (`below`
    None): every workable lead whose time has come; those a previous resume placed
    (at or after `prior`, its parking instant) go before those it parked. When the
    sweeper places more (`below`: the campaign's parking instant): the parked ones.
    A lead left parked must wait before the parking instant, `now`: those due exactly
    then are first moved a microsecond back (`park_due_now`)."""

    campaign_id: str
    now: datetime
    below: datetime | None = None
    prior: datetime | None = None

    def booked(self) -> tuple:
        """Leads already planned, which keep their share of each day's cap: on resume those
        planned after now; when placing parked leads, every one placed (due or not)."""
        planned = leads.c.next_action_at > self.now if self.below is None else leads.c.next_action_at >= self.below
        return (leads.c.campaign_id == self.campaign_id, WORKABLE_LEADS,
                leads.c.awaiting.is_(None), planned)

    def where(self) -> tuple:
        due = due_now(self.campaign_id, self.now)
        return due if self.below is None else (*due, leads.c.next_action_at < self.below)

    def order(self) -> tuple:
        by_wait = (leads.c.next_action_at, leads.c.id)
        if self.prior is None:
            return by_wait
        return (case((leads.c.next_action_at < self.prior, 1), else_=0), *by_wait)


def booked_hours(conn: Connection, placing: Placing) -> dict[datetime, int]:
    """Leads already planned (`placing.booked()`), per UTC hour."""
    if conn.dialect.name == "postgresql":
        hour = func.date_trunc("hour", func.timezone("UTC", leads.c.next_action_at))
    else:
        hour = func.strftime("%Y-%m-%d %H:00:00", leads.c.next_action_at)
    rows = conn.execute(select(hour, func.count()).where(*placing.booked()).group_by(hour))
    out: dict[datetime, int] = {}
    for h, n in rows:
        at = (datetime.fromisoformat(h) if isinstance(h, str) else h).replace(tzinfo=UTC)
        out[at] = out.get(at, 0) + n
    return out


def booked_between(conn: Connection, placing: Placing, lo: datetime, hi: datetime) -> int:
    """Leads already planned (`placing.booked()`) due in [lo, hi)."""
    return conn.execute(select(func.count()).where(*placing.booked(), leads.c.next_action_at >= lo,
                                                   leads.c.next_action_at < hi)).scalar_one()

def park_due_now(conn: Connection, placing: Placing) -> None:
    """Move the leads to place that are due exactly at `placing.now` a microsecond back, so
    those left unplaced wait before the parking instant (rows imported and started in
    the same instant; none otherwise)."""
    conn.execute(update(leads).where(*placing.where(), leads.c.next_action_at == placing.now)
                 .values(next_action_at=placing.now - timedelta(microseconds=1)))


def placed_lead_zones(conn: Connection, placing: Placing, limit: int | None) -> dict[str, int]:
    """How many of the first `limit` leads to place (all when None) wait in each lead time
    zone, as stored ('' for none: the campaign's), by zone name."""
    stored = func.coalesce(leads.c.timezone, "").label("zone")
    first = select(stored).where(*placing.where()).order_by(*placing.order()).limit(limit).subquery()
    rows = conn.execute(select(first.c.zone, func.count()).group_by(first.c.zone).order_by(first.c.zone))
    return {tz: n for tz, n in rows}


def reclamp_due_leads(conn: Connection, placing: Placing, *, plan: list[dict], limit: int | None,
                      randomize: bool) -> int:
    """Move the first `limit` leads to place (all when None) to their slots, in one
    statement: each zone's leads are numbered in `placing`'s order and its lead k takes
    the plan row of its zone whose [lo, hi) holds k: at `opens` + (k - lo) * `gap`
    seconds (capped inside the opening), or at a random instant of the opening when
    randomized. A lead beyond its zone's last row stays as it is.

    `plan` rows: zone (the lead's timezone column as stored, '' for none), lo, hi,
    opens and closes (UTC), gap (seconds between sends, 0 for as fast as allowed)."""
    params = {"campaign_id": placing.campaign_id, "now": placing.now, "below": placing.below,
              "prior": placing.prior, "randomize": randomize}
    if conn.dialect.name == "postgresql":
        params.update(zones=[p["zone"] for p in plan], lo=[p["lo"] for p in plan], hi=[p["hi"] for p in plan],
                      opens=[p["opens"] for p in plan], closes=[p["closes"] for p in plan],
                      gaps=[p["gap"] for p in plan], take=limit)
        conn.execute(text("SET LOCAL work_mem = '256MB'"))  # number a million leads in memory
        return conn.execute(queries("postgresql")["reclamp_due_leads"], params).rowcount
    for name in ("now", "below", "prior"):
        if params[name] is not None:
            params[name] = params[name].astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    params["take"] = -1 if limit is None else limit
    params["plan"] = json.dumps([[p["zone"], p["lo"], p["hi"], p["opens"].timestamp(), p["closes"].timestamp(),
                                  p["gap"]] for p in plan])
    conn.execute(queries("sqlite")["reclamp_due_leads"], params)
    return conn.execute(text("SELECT changes()")).scalar_one()  # the driver reports no rowcount after WITH
