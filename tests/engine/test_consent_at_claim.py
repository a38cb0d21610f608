"""Consent is checked at every claim (DESIGN.md §9): a lead any of whose addresses the
workspace has suppressed is never given a `sending` attempt, however the suppression
arrived and whichever step or channel comes next."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, insert, select, text, update

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services.suppressions import add_suppression
from drumbeat.store import leads as lead_store
from drumbeat.store.tables import attempts, leads, suppressions
from tests.engine.harness import Fleet, commit_ordered_database, quiescent, whatsapp_key
from tests.engine.test_worker import TWO_STEPS
from tests.factory import add_leads, maintained, new_campaign, recount, sandbox_key, workspace


def suppress_directly(ctx, workspace_id: str, *, phone: str | None = None, email: str | None = None) -> None:
    """A suppression row written as an import or another path might, without the update
    that opts the matching leads out: only the claim can stop them now."""
    with ctx.db.begin() as conn:
        conn.execute(insert(suppressions).values(workspace_id=workspace_id, phone=phone, email=email,
                                                 created_at=ctx.clock()))


def lead_rows(ctx, campaign_id: str) -> dict[str, dict]:
    """phone -> the lead's state and attempt count."""
    with ctx.db.connect() as conn:
        tried = (select(attempts.c.lead_id, func.count().label("n")).group_by(attempts.c.lead_id).subquery())
        rows = conn.execute(select(leads.c.phone, leads.c.state, leads.c.attempt_no,
                                   func.coalesce(tried.c.n, 0).label("attempts"))
                            .outerjoin(tried, tried.c.lead_id == leads.c.id)
                            .where(leads.c.campaign_id == campaign_id)).all()
    return {r.phone: {"state": r.state, "attempts": r.attempts, "attempt_no": r.attempt_no} for r in rows}


def drain(ctx) -> None:
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=8).drain())


def test_a_suppression_written_without_opting_leads_out_still_stops_their_claim(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 20)
    suppress_directly(ctx, p.workspace_id, phone="+15550000003")
    suppress_directly(ctx, p.workspace_id, email="lead7@example.com")  # the lead's other address
    other = workspace(ctx, name="Other")  # the same person suppressed elsewhere changes nothing here
    suppress_directly(ctx, other.workspace_id, phone="+15550000011")
    svc.start(ctx, p, cid)
    drain(ctx)

    rows = lead_rows(ctx, cid)
    assert rows["+15550000003"] == {"state": "opted_out", "attempts": 0, "attempt_no": 0}
    assert rows["+15550000007"] == {"state": "opted_out", "attempts": 0, "attempt_no": 0}
    assert rows["+15550000011"]["state"] == "completed" and rows["+15550000011"]["attempts"] == 1
    assert sorted(r["state"] for r in rows.values()).count("completed") == 18
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed"
    assert view["progress"]["opted_out"] == 2 and view["progress"]["completed"] == 18
    assert view["breakdown"]["sent"] == 18
    with ctx.db.connect() as conn:  # the maintained counts equal a recount of the rows
        assert maintained(conn, cid) == recount(conn, cid)


def test_a_suppression_an_erasure_left_as_a_keyed_hash_still_stops_the_claim(ctx):
    """The entry of an erased person keeps only the hash of the address: a lead of that
    address enrolled by a path that did not look (here: inserted directly) is still stopped."""
    p = workspace(ctx)
    sandbox_key(ctx, p)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 5)
    with ctx.db.begin() as conn:
        lead_store.insert_suppression(conn, p.workspace_id, phone="+15550000001", email=None, now=ctx.clock())
        lead_store.insert_suppression(conn, p.workspace_id, phone=None, email="lead3@example.com", now=ctx.clock())
        conn.execute(update(suppressions).values(phone=None, email=None))  # as an erasure leaves them
    svc.start(ctx, p, cid)
    drain(ctx)
    rows = lead_rows(ctx, cid)
    assert {phone: r["state"] for phone, r in rows.items() if r["state"] != "completed"} == {
        "+15550000001": "opted_out", "+15550000003": "opted_out"}
    assert rows["+15550000001"]["attempts"] == rows["+15550000003"]["attempts"] == 0


def test_a_lead_suppressed_after_its_first_step_gets_no_step_on_any_channel(ctx):
    """Suppressing the phone stops the email step too: consent is per person."""
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp")
    sandbox_key(ctx, p, "email")
    cid = new_campaign(ctx, p, steps=[TWO_STEPS[0], {**TWO_STEPS[1], "delay_seconds": 3600}])
    add_leads(ctx, cid, 6)
    svc.start(ctx, p, cid)
    drain(ctx)  # every lead had its WhatsApp step; the email step waits an hour
    assert {r["attempts"] for r in lead_rows(ctx, cid).values()} == {1}
    suppress_directly(ctx, p.workspace_id, phone="+15550000002")
    with ctx.db.begin() as conn:  # the hour has passed
        conn.execute(update(leads).where(leads.c.campaign_id == cid).values(next_action_at=ctx.clock()))
    drain(ctx)

    rows = lead_rows(ctx, cid)
    assert rows["+15550000002"]["state"] == "opted_out" and rows["+15550000002"]["attempts"] == 1
    assert [r["attempts"] for phone, r in sorted(rows.items()) if phone != "+15550000002"] == [2] * 5
    with ctx.db.connect() as conn:
        channels = conn.execute(select(attempts.c.channel).join(leads, leads.c.id == attempts.c.lead_id)
                                .where(leads.c.phone == "+15550000002")).scalars().all()
        assert channels == ["whatsapp"]
        assert maintained(conn, cid) == recount(conn, cid)
    assert svc.get_campaign(ctx, p, cid)["status"] == "completed"


RACE_PEOPLE = 500


def race_phone(i: int) -> str:
    return f"+491512{i:07d}"  # valid as the suppression service normalizes it


def people_in_two_campaigns(ctx, principal, n: int, **campaign) -> tuple[str, str]:
    """Two campaigns with the same n people, due in the same order (person i before i+1):
    each person's two leads come up for claiming at about the same time, in different
    workers (when a rate keeps either campaign from taking every worker's slots)."""
    first = new_campaign(ctx, principal, name="First", **campaign)
    second = new_campaign(ctx, principal, name="Second", **campaign)
    due = ctx.clock() - timedelta(hours=1)
    with ctx.db.begin() as conn:
        for cid in (first, second):
            conn.execute(insert(leads), [
                {"campaign_id": cid, "phone": race_phone(i), "first_name": f"P{i}", "attributes": {},
                 "state": "not_contacted", "current_step": 0, "next_action_at": due + timedelta(milliseconds=i),
                 "created_at": due, "updated_at": due} for i in range(n)])
    return first, second


def next_in_line(ctx, campaign_ids: tuple[str, ...], n: int, *, untouched: bool = False) -> list[str]:
    """The phones of the next leads a claim would take: racing them is the point. With
    `untouched`, only people neither campaign has claimed yet."""
    waiting = (leads.c.campaign_id.in_(campaign_ids), leads.c.state == "not_contacted",
               leads.c.lease_owner.is_(None))
    query = select(leads.c.phone).where(*waiting).order_by(leads.c.next_action_at)
    if untouched:
        query = (select(leads.c.phone).where(*waiting).group_by(leads.c.phone)
                 .having(func.count() == len(campaign_ids)).order_by(func.min(leads.c.next_action_at)))
    with ctx.db.connect() as conn:
        return list(conn.execute(query.limit(n)).scalars())


def test_no_sending_attempt_for_an_address_commits_after_its_suppression_while_three_workers_send(
        secret_key, tmp_path, whatsapp_server):
    """Five hundred people in two campaigns, three `drumbeat worker` processes sending to the
    fake WhatsApp, and addresses suppressed one after another just ahead of the claims
    (through the service, from the test process). Order is read from PostgreSQL's commit
    timestamps: for every suppressed address, no attempt's inserting transaction committed
    after the suppression's; the fake received exactly the sends whose claim came first."""
    whatsapp_server.latency = 0.05  # each send in flight a while: suppressions land mid-claim
    rng = random.Random(20)
    with commit_ordered_database(secret_key) as (ctx, url):
        p = workspace(ctx)
        whatsapp_key(ctx, p, whatsapp_server)
        both = people_in_two_campaigns(ctx, p, RACE_PEOPLE)
        for cid in both:
            svc.start(ctx, p, cid)
        suppressed: set[str] = set()
        with Fleet(url, secret_key, tmp_path, 3, concurrency=8) as fleet:
            deadline = time.monotonic() + 180
            fleet.wait_started(deadline)
            while line := next_in_line(ctx, both, 64):
                assert time.monotonic() < deadline, "the workers did not finish"
                # At the head of the line (racing claims), and every other time a little
                # further on, among people neither campaign has claimed yet.
                ahead = [x for x in line if x not in suppressed][:16]
                later = [] if len(suppressed) % 2 else next_in_line(ctx, both, 32, untouched=True)[16:]
                if choices := [x for x in later if x not in suppressed] or ahead:
                    phone = rng.choice(choices)
                    add_suppression(ctx, p, {"phone": phone})
                    suppressed.add(phone)
                time.sleep(rng.uniform(0, 0.02))
            fleet.wait_while(lambda: not all(quiescent(ctx, cid) for cid in both), deadline)
        assert fleet.stop() == [0, 0, 0]

        with ctx.db.connect() as conn:
            suppressed_at = dict(conn.execute(text(
                "SELECT phone, pg_xact_commit_timestamp(xmin) FROM suppressions")).all())
            started = conn.execute(text(
                "SELECT l.phone, pg_xact_commit_timestamp(i.xmin) FROM attempt_inserts AS i "
                "JOIN attempts AS a ON a.id = i.attempt_id JOIN leads AS l ON l.id = a.lead_id")).all()
            rows = conn.execute(select(leads.c.phone, attempts.c.id, leads.c.state)
                                .outerjoin(attempts, attempts.c.lead_id == leads.c.id)).all()
    states = Counter((phone in suppressed, tried is not None, state) for phone, tried, state in rows)
    assert set(suppressed_at) == suppressed and len(suppressed) > 50
    late = [(phone, at) for phone, at in started if phone in suppressed_at and at > suppressed_at[phone]]
    assert late == []
    attempts_of = Counter(phone for phone, _ in started)
    received = Counter(call.to for call in whatsapp_server.calls())
    assert {phone: received[whatsapp_server.normalise(phone)] for phone in attempts_of} == dict(attempts_of)
    assert all(attempts_of[race_phone(i)] == 2 for i in range(RACE_PEOPLE) if race_phone(i) not in suppressed)
    # The suppressions raced the claims: some came before either campaign's claim of the
    # person (never contacted), some after one campaign's claim (contacted once, the other
    # lead opted out before any attempt).
    by_person = Counter(attempts_of[phone] for phone in suppressed)
    assert by_person[0] > 0 and by_person[1] > 0, by_person
    # Every lead without an attempt is a suppressed person's, opted out; everyone else's
    # leads completed. (A lead whose claim came first may end either way: a suppression
    # that lands while its send is in flight opts it out.)
    assert {key for key in states if key[0] is False} == {(False, True, "completed")}, states
    assert {key for key in states if key[1] is False} == {(True, False, "opted_out")}, states
