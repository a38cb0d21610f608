"""The maintained campaign counts equal a recount from the rows after every kind of write:
import, suppression, claims and outcomes, receipts, replies, lease recovery, in-doubt
resolution, cancel, duplicate, raw SQL, and folding (on SQLite and PostgreSQL)."""

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from drumbeat.channels.inbound import ReplyEvent, StatusEvent
from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import leads as lead_service
from drumbeat.services import receipts
from drumbeat.services.suppressions import add_suppression
from drumbeat.store import counts
from drumbeat.store.tables import attempts, campaign_counts, leads
from tests.factory import add_leads, maintained, new_campaign, recount, sandbox_key, workspace


def assert_counts_match(ctx, *campaign_ids) -> dict[str, int]:
    with ctx.db.connect() as conn:
        for cid in campaign_ids:
            assert maintained(conn, cid) == recount(conn, cid)
        return maintained(conn, campaign_ids[0])


def test_counts_follow_every_write_path_and_equal_a_recount(clocked_ctx, clock):
    ctx = clocked_ctx
    p = workspace(ctx)
    key = sandbox_key(ctx, p, fail="lead", fail_after=40)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 60)
    imported = lead_service.import_json(ctx, p, cid, [{"phone": "+4915112345678"}, {"phone": "+4915112345679"}])
    assert imported["accepted"] == 2
    add_suppression(ctx, p, {"phone": "+4915112345679"})
    got = assert_counts_match(ctx, cid)
    assert got == {"lead:not_contacted": 61, "lead:opted_out": 1, "step:0:not_contacted": 61}

    svc.start(ctx, p, cid)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=8).drain())
    got = assert_counts_match(ctx, cid)
    assert got["lead:completed"] == 40 and got["lead:failed"] == 21
    assert got["attempt:sent"] == 40 and got["counted_failure"] == 21 == got["error:sandbox:lead"]

    # Receipts move attempts forward; a failed receipt fails a lead; a reply ends one.
    with ctx.db.connect() as conn:
        sent = conn.execute(select(attempts.c.provider_message_id, leads.c.phone)
                            .join(leads, leads.c.id == attempts.c.lead_id)
                            .where(attempts.c.status == "sent").order_by(attempts.c.id).limit(3)).all()
    integration = receipts.integration_for_callback(ctx, key, "sandbox")
    receipts.apply_events(ctx, integration, [StatusEvent(sent[0][0], "delivered"), StatusEvent(sent[1][0], "read"),
                                             StatusEvent(sent[1][0], "read"), StatusEvent(sent[2][0], "failed")])
    receipts.apply_events(ctx, integration, [ReplyEvent("phone", sent[0][1])])
    got = assert_counts_match(ctx, cid)
    assert got["attempt:delivered"] == 1 and got["attempt:read"] == 1 and got["attempt:failed"] >= 1
    assert got["lead:replied"] == 1

    # A dead worker's lead: recovered in doubt, then resolved by a person.
    cid2 = new_campaign(ctx, p, name="Second")
    add_leads(ctx, cid2, 5, start=1000)
    svc.start(ctx, p, cid2)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, lease_seconds=30)
    with ctx.db.begin() as conn:
        claimed = worker._claim_in(conn, dict(svc.store.get_campaign_by_id(conn, cid2)), 2, clock())[0]
    assert len(claimed) == 2
    clock.advance(seconds=60)
    worker.recover_expired_leases()
    assert assert_counts_match(ctx, cid2)["lead:in_doubt"] == 2
    lead_service.resolve(ctx, p, cid2, str(claimed[0].lead["id"]), "mark_sent")
    lead_service.resolve(ctx, p, cid2, str(claimed[1].lead["id"]), "retry")
    got = assert_counts_match(ctx, cid2)
    assert got["lead:completed"] == 1 and got["lead:not_contacted"] == 4

    # Cancel, duplicate with leads, and a write that bypasses the code entirely.
    svc.cancel(ctx, p, cid2, "Second")
    copy = svc.duplicate(ctx, p, cid, include_leads=True)["id"]
    with ctx.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.campaign_id == copy, leads.c.id % 2 == 0).values(state="canceled"))
    assert assert_counts_match(ctx, cid2)["lead:canceled"] == 4
    got = assert_counts_match(ctx, copy)
    assert sum(n for m, n in got.items() if m.startswith("lead:")) == 62


def test_the_campaign_view_reads_the_maintained_counts(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p, fail="lead", fail_after=7)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 10)
    svc.start(ctx, p, cid)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=4).drain())
    view = svc.get_campaign(ctx, p, cid)
    assert view["progress"]["completed"] == 7 and view["progress"]["failed"] == 3
    assert view["progress"]["total"] == 10 and view["progress"]["percent"] == 100.0
    assert view["breakdown"]["sent"] == 7 and view["breakdown"]["failed"] == 3
    assert [(e["code"], e["count"], len(e["sample_lead_ids"])) for e in view["errors"]] == [("sandbox:lead", 3, 3)]
    assert view["errors"][0]["message"]
    assert view["caps"]["today"] == 7 and view["caps"]["this_week"] == 7
    # The view follows the counts, not a recount: skewing the counts shows in it.
    with ctx.db.begin() as conn:
        conn.execute(campaign_counts.insert().values(campaign_id=cid, metric="lead:completed", n=100)
                     if ctx.db.dialect.name == "postgresql" else
                     update(campaign_counts).where(campaign_counts.c.campaign_id == cid,
                                                   campaign_counts.c.metric == "lead:completed")
                     .values(n=campaign_counts.c.n + 100))
    assert svc.get_campaign(ctx, p, cid)["progress"]["completed"] == 107


def test_folding_keeps_every_total_and_leaves_one_row_per_metric(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p)
    cid = new_campaign(ctx, p)
    for i in range(30):  # many small statements: many delta rows on PostgreSQL
        add_leads(ctx, cid, 3, start=3 * i)
    svc.start(ctx, p, cid)
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=4).drain())
    with ctx.db.begin() as conn:
        before = maintained(conn, cid)
        rows_before = conn.execute(select(campaign_counts.c.metric).where(campaign_counts.c.campaign_id == cid)).all()
        folded = counts.fold(conn, min_rows=2)
    with ctx.db.connect() as conn:
        rows_after = conn.execute(select(campaign_counts.c.metric).where(campaign_counts.c.campaign_id == cid)).all()
        assert maintained(conn, cid) == before == recount(conn, cid)
    assert len(rows_after) == len({m for (m,) in rows_after})  # one row per metric
    if ctx.db.dialect.name == "postgresql":
        assert folded == 1 and len(rows_before) > len(rows_after)
    else:
        assert folded == 0 and len(rows_before) == len(rows_after)


def test_accepted_sends_are_counted_by_the_quarter_hour_they_started(clocked_ctx, clock):
    ctx = clocked_ctx
    p = workspace(ctx)
    sandbox_key(ctx, p)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 4)
    svc.start(ctx, p, cid)
    clock.now = clock.now.replace(hour=23, minute=46)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=2)
    asyncio.run(worker.step())  # two sends start at 23:46
    clock.advance(minutes=20)  # 00:06 the next day: two more
    asyncio.run(worker.drain())
    midnight = clock.now.replace(hour=0, minute=0)
    other = new_campaign(ctx, p, name="nothing sent")
    with ctx.db.connect() as conn:
        assert counts.accepted_since(conn, {cid: (midnight, midnight - timedelta(minutes=15)), other: (
            midnight, midnight - timedelta(minutes=15))}) == {cid: (2, 4), other: (0, 0)}
        # rounds up to a bucket
        assert counts.accepted_since(conn, {cid: (midnight - timedelta(minutes=10), midnight)}) == {cid: (2, 2)}
