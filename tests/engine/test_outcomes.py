"""What the engine does with each class of provider answer, and with a dead worker's leases."""

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.domain.leads import retry_not_before
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import leads as lead_service
from drumbeat.store.tables import attempts, integrations, leads
from tests.factory import add_leads, new_campaign, sandbox_key, started_campaign, workspace


def states(ctx) -> dict[str, int]:
    with ctx.db.connect() as conn:
        return dict(conn.execute(select(leads.c.state, func.count()).group_by(leads.c.state)).all())


def run(ctx, **kw) -> Worker:
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, **kw)
    asyncio.run(worker.drain())
    return worker


def test_when_every_key_fails_the_campaign_pauses_with_all_keys_failed_and_no_lead_is_charged(ctx):
    p = workspace(ctx)
    keys = [sandbox_key(ctx, p, label=f"k{i}", fail="key") for i in range(3)]
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 200)
    svc.start(ctx, p, cid)
    run(ctx, concurrency=8)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "all_keys_failed"
    assert view["paused_by"] == {"type": "system", "id": "all_keys_failed"}
    assert sorted(k["integration_id"] for k in view["pause_details"]["keys"]) == sorted(keys)
    assert all(k["code"] == "sandbox:key" for k in view["pause_details"]["keys"])
    assert states(ctx) == {"not_contacted": 200}
    with ctx.db.connect() as conn:
        wasted = conn.execute(select(func.count()).select_from(attempts)).scalar_one()
    assert 3 <= wasted <= 3 + 8  # one per key, plus what was already in flight
    assert view["breakdown"]["failed"] == 0


def test_after_rotating_a_key_resume_starts_a_new_run_and_finishes_without_contacting_anyone_twice(ctx):
    p = workspace(ctx)
    key = sandbox_key(ctx, p, fail="key")
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 50)
    svc.start(ctx, p, cid)
    run(ctx, concurrency=4)
    assert svc.get_campaign(ctx, p, cid)["paused_reason"] == "all_keys_failed"
    with ctx.db.begin() as conn:  # the operator fixes the key
        conn.execute(update(integrations).where(integrations.c.id == key).values(config={}))
    svc.resume(ctx, p, cid)
    run(ctx, concurrency=4)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed" and view["progress"]["completed"] == 50
    assert view["breakdown"]["sent"] == 50


def test_lead_level_errors_fail_only_those_leads_and_the_campaign_completes(ctx):
    p, cid = started_campaign(ctx, 40, fail="lead", fail_after=30)
    run(ctx, concurrency=1)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed"
    assert view["progress"]["completed"] == 30 and view["progress"]["failed"] == 10
    assert view["breakdown"]["failed"] == 10
    assert view["errors"][0]["code"] == "sandbox:lead" and view["errors"][0]["count"] == 10
    assert len(view["errors"][0]["sample_lead_ids"]) == 5


def test_a_campaign_where_nobody_could_be_contacted_fails(ctx):
    p, cid = started_campaign(ctx, 5, fail="lead")
    run(ctx)
    assert svc.get_campaign(ctx, p, cid)["status"] == "failed"


def test_a_rejected_template_before_any_contact_fails_the_campaign_and_charges_no_lead(ctx):
    p, cid = started_campaign(ctx, 20, fail="campaign")
    run(ctx, concurrency=4)
    assert svc.get_campaign(ctx, p, cid)["status"] == "failed"
    assert states(ctx) == {"not_contacted": 20}


def test_a_rejected_template_after_contacts_holds_the_channel_and_pauses(ctx):
    p, cid = started_campaign(ctx, 20, fail="campaign", fail_after=5)
    run(ctx, concurrency=1)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "template_rejected"
    assert view["pause_details"]["channel"] == "whatsapp"
    assert states(ctx) == {"completed": 5, "not_contacted": 15}


def test_transient_errors_are_retried_with_backoff_then_fail_the_lead(clocked_ctx, clock):
    ctx = clocked_ctx
    p, cid = started_campaign(ctx, 3, fail="transient")
    for _ in range(3):  # the first try and two retries, each waiting out its backoff
        run(ctx)
        assert states(ctx) == {"not_contacted": 3}
        clock.advance(minutes=10)
    run(ctx)  # the third retry fails too: the lead fails
    assert states(ctx) == {"failed": 3}
    with ctx.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(attempts)).scalar_one() == 3 * 4
    assert svc.get_campaign(ctx, p, cid)["breakdown"]["failed"] == 3


def test_a_dead_workers_leads_become_in_doubt_and_are_never_resent_automatically(clocked_ctx, clock):
    ctx = clocked_ctx
    p, cid = started_campaign(ctx, 10)
    dead = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=4, lease_seconds=60)
    assert len(dead.claim()) == 4  # attempts committed, then the process "dies" before any answer
    clock.advance(seconds=61)
    run(ctx, concurrency=8)
    view = svc.get_campaign(ctx, p, cid)
    assert view["progress"]["in_doubt"] == 4 and view["progress"]["completed"] == 6
    assert view["status"] == "sending"  # it does not complete while leads are in doubt
    with ctx.db.connect() as conn:
        statuses = dict(conn.execute(select(attempts.c.status, func.count()).group_by(attempts.c.status)).all())
    assert statuses == {"in_doubt": 4, "sent": 6}
    clock.advance(seconds=timedelta(hours=1).total_seconds())
    run(ctx, concurrency=8)
    assert svc.get_campaign(ctx, p, cid)["progress"]["in_doubt"] == 4  # still waiting for a person


def test_a_spike_of_failed_recipients_pauses_with_high_failure_rate_and_its_figures(ctx):
    p = workspace(ctx)
    key = sandbox_key(ctx, p, fail="lead")
    cid = new_campaign(ctx, p, failure_policy={"window": 50, "threshold": 0.5, "min_samples": 20})
    add_leads(ctx, cid, 300)
    svc.start(ctx, p, cid)
    run(ctx, concurrency=4)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "high_failure_rate"
    details = view["pause_details"]
    assert details["channel"] == "whatsapp" and details["min_samples"] == 20 and details["threshold"] == 0.5
    assert details["counted"] >= 20 and details["failed_share"] == 1.0
    failed = view["progress"]["failed"]
    assert 20 <= failed <= 20 + 4  # stopped at min_samples, plus what was in flight
    assert view["progress"]["not_contacted"] == 300 - failed
    with ctx.db.begin() as conn:  # the list is cleaned: the remaining recipients are fine
        conn.execute(update(integrations).where(integrations.c.id == key).values(config={}))
    svc.resume(ctx, p, cid)
    run(ctx, concurrency=4)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed" and view["progress"]["completed"] == 300 - failed


def test_failures_below_the_threshold_do_not_pause(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p, fail="lead", fail_after=80)  # 80 good sends, then 20 failures: 40% of the last 50
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 100)
    svc.start(ctx, p, cid)
    run(ctx, concurrency=1)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed" and view["progress"]["failed"] == 20


def test_a_rate_limited_key_rests_for_its_retry_after_and_nothing_is_counted_as_failed(clocked_ctx, clock):
    ctx = clocked_ctx
    p = workspace(ctx)
    key = sandbox_key(ctx, p, fail="rate")
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 10)
    svc.start(ctx, p, cid)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=2)
    asyncio.run(worker.drain())
    with ctx.db.connect() as conn:
        tried = conn.execute(select(func.count()).select_from(attempts)).scalar_one()
    assert tried == 2  # the first answers said "slow down": the key rests, no more calls
    assert states(ctx) == {"not_contacted": 10}
    with ctx.db.begin() as conn:
        conn.execute(update(integrations).where(integrations.c.id == key).values(config={}))
    clock.advance(seconds=2)  # past the sandbox's Retry-After of 1 s
    asyncio.run(worker.drain())
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed" and view["breakdown"]["failed"] == 0


def _stall_then_recover_in_doubt(ctx, clock):
    """A worker sends and stalls past its lease with the answer in hand; lease recovery puts
    the lead in doubt. Returns the campaign and the stalled worker."""
    p, cid = started_campaign(ctx, 1)
    stalled = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=1, lease_seconds=60)
    asyncio.run(stalled.step())  # sent; the answer is held, not yet recorded
    clock.advance(seconds=61)
    assert Worker(ctx, {"sandbox": SandboxAdapter()}, lease_seconds=60).recover_expired_leases() == []
    assert states(ctx) == {"in_doubt": 1}
    return p, cid, stalled


def _stall_recover_and_retry(ctx, clock):
    """As above, then the operator presses Retry."""
    p, cid, stalled = _stall_then_recover_in_doubt(ctx, clock)
    with ctx.db.connect() as conn:
        lead_id = conn.execute(select(leads.c.id)).scalar_one()
    lead_service.resolve(ctx, p, cid, str(lead_id), "retry")
    return p, cid, stalled


def test_a_late_answer_for_a_lead_recovered_in_doubt_settles_it_instead_of_leaving_a_sent_lead_in_doubt(
        clocked_ctx, clock):
    """Found by the model test (issue 8): a stalled worker's lease expires, another worker
    recovers the lead as in doubt, then the stalled worker records the provider's answer.
    The attempt said `sent` while the lead stayed in doubt, so "retry" would contact twice."""
    ctx = clocked_ctx
    p, cid, stalled = _stall_then_recover_in_doubt(ctx, clock)
    asyncio.run(stalled.step())  # the answer is recorded after all
    with ctx.db.connect() as conn:
        assert conn.execute(select(attempts.c.status)).scalars().all() == ["sent"]
    assert states(ctx) == {"completed": 1}
    view = svc.get_campaign(ctx, p, cid)
    assert view["progress"]["in_doubt"] == 0




def test_retry_pressed_before_a_late_answer_arrives_does_not_contact_the_person_twice(clocked_ctx, clock):
    """Issue 8: Retry made the lead due at once, another worker sent again, then the stalled
    worker's answer said the first send had been accepted: contacted twice."""
    ctx = clocked_ctx
    p, cid, stalled = _stall_recover_and_retry(ctx, clock)
    other = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=1, lease_seconds=60)
    asyncio.run(other.step())  # the retry is not due while the first call may still be running
    asyncio.run(stalled.step())  # the late answer: accepted
    clock.advance(hours=1)
    asyncio.run(other.drain())
    with ctx.db.connect() as conn:
        assert conn.execute(select(attempts.c.status)).scalars().all() == ["sent"]  # one provider call
    assert states(ctx) == {"completed": 1}
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed" and view["breakdown"]["sent"] == 1


def test_a_retry_with_no_late_answer_sends_once_the_doubted_call_must_have_ended(clocked_ctx, clock):
    ctx = clocked_ctx
    p, cid, _ = _stall_recover_and_retry(ctx, clock)  # the stalled worker never comes back
    with ctx.db.connect() as conn:
        doubted_at, due = conn.execute(select(attempts.c.created_at, leads.c.next_action_at)
                                       .join(leads, leads.c.id == attempts.c.lead_id)).one()
    assert due == retry_not_before(doubted_at, ctx.clock()) > ctx.clock()
    clock.advance(seconds=(due - ctx.clock()).total_seconds())
    run(ctx)
    with ctx.db.connect() as conn:
        assert conn.execute(select(attempts.c.status).order_by(attempts.c.id)).scalars().all() == ["in_doubt", "sent"]
    assert states(ctx) == {"completed": 1}
