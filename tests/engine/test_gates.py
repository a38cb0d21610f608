"""Each stop reason: how it is raised, what the gate check answers, who may lift it
(the sweeper or a person), the timeline entries and the outbox (DESIGN.md §4, §5, §8)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import insert, select, update

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.domain.exceptions import ResumeBlocked
from drumbeat.domain.reasons import PauseReason
from drumbeat.engine.sweeper import Sweeper
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import integrations as integration_service
from drumbeat.services import notifications
from drumbeat.services.context import Actor, Context
from drumbeat.services.holds import pause_if_nothing_can_run, place_hold
from drumbeat.services.workspaces import set_subscription
from drumbeat.store import campaigns as campaign_store
from drumbeat.store.db import make_engine
from drumbeat.store.secrets import SecretBox
from drumbeat.store.tables import attempts, integrations, leads, webhook_deliveries
from tests.conftest import PUBLIC_URL, FakeClock
from tests.factory import add_leads, new_campaign, sandbox_key, workspace

EMAIL_STEP = {"channel": "email", "template": {"subject": "Hi", "body": "Hi {{first_name|there}}"}, "delay_seconds": 0}
LINKEDIN_STEP = {"channel": "linkedin", "template": {"action": "message", "body": "Hi"}, "delay_seconds": 0}


@pytest.fixture
def clocked(db_url, secret_key):
    clock = FakeClock()
    ctx = Context(db=make_engine(db_url), box=SecretBox(secret_key), clock=clock, public_url=PUBLIC_URL)
    yield ctx, clock
    ctx.db.dispose()


def add_people(ctx, campaign_id: str, n: int, start: int = 0) -> None:
    """Leads with an email and a LinkedIn profile."""
    now = ctx.clock()
    with ctx.db.begin() as conn:
        conn.execute(insert(leads), [
            {"campaign_id": campaign_id, "email": f"p{i}@example.com", "linkedin_url": f"https://linkedin.com/in/p{i}",
             "attributes": {}, "state": "not_contacted", "current_step": 0, "next_action_at": now,
             "created_at": now, "updated_at": now} for i in range(start, start + n)])


def drain(ctx) -> None:
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=8, tick_seconds=0.01).drain())


def sent(ctx, channel: str) -> int:
    with ctx.db.connect() as conn:
        return len(conn.execute(select(attempts.c.id).where(attempts.c.channel == channel,
                                                            attempts.c.status == "sent")).all())


def actions(ctx, p, cid) -> list[tuple]:
    return [(e["action"], e["reason"], e["actor_type"], e["actor_id"]) for e in svc.get_timeline(ctx, p, cid)]


def outbox(ctx) -> list[str]:
    with ctx.db.connect() as conn:
        return list(conn.execute(select(webhook_deliveries.c.event).order_by(webhook_deliveries.c.id)).scalars())


def test_a_disconnected_linkedin_account_holds_only_linkedin_email_goes_on_and_the_sweeper_lifts_it(clocked):
    ctx, clock = clocked
    p = workspace(ctx)
    notifications.create_webhook(ctx, p, "http://127.0.0.1:9/hook", "s3cret-s3cret", ["campaign.hold_placed",
                                                                                     "campaign.hold_lifted"])
    sandbox_key(ctx, p, "email")
    li = sandbox_key(ctx, p, "linkedin")
    mixed = new_campaign(ctx, p, name="mixed", steps=[EMAIL_STEP, LINKEDIN_STEP])
    email_only = new_campaign(ctx, p, name="email only", steps=[EMAIL_STEP])
    add_people(ctx, mixed, 10)
    add_people(ctx, email_only, 5, start=100)
    svc.start(ctx, p, mixed)
    svc.start(ctx, p, email_only)

    integration_service.record_health_event(ctx, p, li, "disconnected")
    # held in the same transaction as the health change, only where LinkedIn is still due
    view = svc.get_campaign(ctx, p, mixed)
    assert [(h["channel"], h["reason"]) for h in view["holds"]] == [("linkedin", "account_disconnected")]
    assert view["holds"][0]["details"]["integration_id"] == li
    assert svc.get_campaign(ctx, p, email_only)["holds"] == []

    drain(ctx)
    view = svc.get_campaign(ctx, p, mixed)
    assert sent(ctx, "email") == 15 and sent(ctx, "linkedin") == 0
    assert view["status"] == "paused" and view["paused_reason"] == "account_disconnected"
    assert "reconnected" in view["paused_reason_text"]
    assert view["pause_details"]["channel"] == "linkedin"

    sweeper = Sweeper(ctx)
    sweeper.sweep_once()  # clearing nothing: nothing changes
    assert svc.get_campaign(ctx, p, mixed)["status"] == "paused"
    integration_service.record_health_event(ctx, p, li, "reconnected")
    assert svc.get_campaign(ctx, p, mixed)["status"] == "paused"  # clearing a cause changes nothing by itself
    report = sweeper.sweep_once()
    assert report.resumed == [mixed]
    view = svc.get_campaign(ctx, p, mixed)
    assert view["status"] == "sending" and view["holds"] == []
    entries = actions(ctx, p, mixed)
    assert ("resume", None, "system", "sweeper") in entries
    assert ("hold_lifted", "account_disconnected", "system", "sweeper") in entries
    drain(ctx)
    assert sent(ctx, "linkedin") == 10
    assert svc.get_campaign(ctx, p, mixed)["status"] == "completed"
    assert outbox(ctx) == ["campaign.hold_placed", "campaign.hold_lifted"]


def test_a_disconnect_holds_nothing_while_another_key_of_the_channel_is_active(clocked):
    ctx, _ = clocked
    p = workspace(ctx)
    a = sandbox_key(ctx, p, "linkedin", label="a")
    sandbox_key(ctx, p, "linkedin", label="b")
    cid = new_campaign(ctx, p, steps=[LINKEDIN_STEP])
    add_people(ctx, cid, 3)
    svc.start(ctx, p, cid)
    integration_service.record_health_event(ctx, p, a, "disconnected")
    assert svc.get_campaign(ctx, p, cid)["holds"] == []


def test_a_restriction_pauses_and_only_a_person_resumes(clocked):
    ctx, _ = clocked
    p = workspace(ctx)
    li = sandbox_key(ctx, p, "linkedin")
    cid = new_campaign(ctx, p, steps=[LINKEDIN_STEP])
    add_people(ctx, cid, 3)
    svc.start(ctx, p, cid)
    integration_service.record_health_event(ctx, p, li, "restricted")
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "account_restricted"
    assert view["pause_details"]["integration_id"] == li and view["pause_details"]["channel"] == "linkedin"
    with pytest.raises(ResumeBlocked) as blocked:
        svc.resume(ctx, p, cid)
    gates = blocked.value.details["gates"]
    assert {"gate": "integration_health", "ok": False, "reason": "the account is restricted by the provider",
            "channel": "linkedin", "integration_id": li} in gates
    integration_service.record_health_event(ctx, p, li, "restriction_lifted")
    Sweeper(ctx).sweep_once()
    assert svc.get_campaign(ctx, p, cid)["paused_reason"] == "account_restricted"  # never lifted by the sweeper
    assert svc.resume(ctx, p, cid)["status"] == "sending"


def test_a_canceled_subscription_pauses_every_sending_campaign_and_the_sweeper_resumes_on_renewal(clocked):
    ctx, _ = clocked
    p = workspace(ctx)
    sandbox_key(ctx, p, "email")
    sandbox_key(ctx, p, "linkedin")
    cid = new_campaign(ctx, p, steps=[EMAIL_STEP, LINKEDIN_STEP])
    draft = new_campaign(ctx, p, name="later", steps=[EMAIL_STEP])
    add_people(ctx, cid, 4)
    add_people(ctx, draft, 2, start=50)
    svc.start(ctx, p, cid)

    set_subscription(ctx, p, "canceled")
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "subscription_canceled"
    assert [(h["channel"], h["reason"]) for h in view["holds"]] == [("email", "subscription_canceled"),
                                                                     ("linkedin", "subscription_canceled")]
    drain(ctx)
    assert sent(ctx, "email") == 0
    with pytest.raises(ResumeBlocked) as blocked:
        svc.start(ctx, p, draft)
    assert {"gate": "subscription", "ok": False, "reason": "the workspace subscription is not active"} \
        in blocked.value.details["gates"]
    with pytest.raises(ResumeBlocked):
        svc.resume(ctx, p, cid)
    assert Sweeper(ctx).sweep_once().resumed == []

    set_subscription(ctx, p, "active")
    assert svc.get_campaign(ctx, p, cid)["status"] == "paused"
    assert Sweeper(ctx).sweep_once().resumed == [cid]
    drain(ctx)
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "completed" and view["progress"]["completed"] == 4


def test_a_manual_pause_is_never_lifted_by_the_sweeper(clocked):
    ctx, _ = clocked
    p = workspace(ctx)
    li = sandbox_key(ctx, p, "linkedin")
    cid = new_campaign(ctx, p, steps=[LINKEDIN_STEP])
    add_people(ctx, cid, 2)
    svc.start(ctx, p, cid)
    integration_service.record_health_event(ctx, p, li, "disconnected")
    svc.pause(ctx, p, cid)  # a person takes over
    assert svc.get_campaign(ctx, p, cid)["paused_reason"] == "manual"
    integration_service.record_health_event(ctx, p, li, "reconnected")
    Sweeper(ctx).sweep_once()
    assert svc.get_campaign(ctx, p, cid)["paused_reason"] == "manual"


def test_all_keys_failed_and_high_failure_rate_are_never_lifted_by_the_sweeper(clocked):
    """Each raised by its detector, then its cause cleared (the keys work, the list is
    clean): the sweeper still leaves both to a person."""
    ctx, _ = clocked
    dead = workspace(ctx, "Dead keys")
    dead_key = sandbox_key(ctx, dead, "whatsapp", fail="key")
    keys_failed = new_campaign(ctx, dead)
    add_leads(ctx, keys_failed, 5)
    svc.start(ctx, dead, keys_failed)
    bad = workspace(ctx, "Bad list")
    bad_key = sandbox_key(ctx, bad, "whatsapp", fail="lead")
    failing = new_campaign(ctx, bad, failure_policy={"window": 50, "threshold": 0.5, "min_samples": 20})
    add_leads(ctx, failing, 60, start=100)
    svc.start(ctx, bad, failing)
    drain(ctx)
    assert svc.get_campaign(ctx, dead, keys_failed)["paused_reason"] == "all_keys_failed"
    assert svc.get_campaign(ctx, bad, failing)["paused_reason"] == "high_failure_rate"
    with ctx.db.begin() as conn:
        conn.execute(update(integrations).where(integrations.c.id.in_((dead_key, bad_key))).values(config={}))

    assert Sweeper(ctx).sweep_once().resumed == []

    view = svc.get_campaign(ctx, dead, keys_failed)
    assert view["status"] == "paused" and view["paused_reason"] == "all_keys_failed"
    assert view["pause_details"]["keys"][0]["code"] == "sandbox:key"
    view = svc.get_campaign(ctx, bad, failing)
    assert view["status"] == "paused" and view["paused_reason"] == "high_failure_rate"
    assert [(h["channel"], h["reason"]) for h in view["holds"]] == [("whatsapp", "high_failure_rate")]


# DESIGN.md §5: the sweeper lifts only these, once their cause is cleared; every other
# reason waits for a person. Written out here rather than read from domain.reasons, so
# that a change there shows up here.
SWEEPER_LIFTS = {"account_disconnected", "subscription_canceled"}
SWEEPER_NEVER_LIFTS = {"manual", "all_keys_failed", "high_failure_rate", "template_rejected", "account_restricted"}


def test_the_sweeper_lifts_only_the_reasons_it_may_even_when_every_cause_looks_cleared(clocked):
    assert SWEEPER_LIFTS | SWEEPER_NEVER_LIFTS == {r.value for r in PauseReason}  # every reason has its answer
    assert not SWEEPER_LIFTS & SWEEPER_NEVER_LIFTS
    ctx, _ = clocked
    p = workspace(ctx)
    sandbox_key(ctx, p, "email")
    sandbox_key(ctx, p, "linkedin")  # every key active and the subscription too: each gate passes
    test = Actor.system("test")
    paused, held = {}, {}
    for n, reason in enumerate(sorted(PauseReason)):
        # Paused: the only due channel (email) held; `manual` is a person's pause over a hold.
        cid = new_campaign(ctx, p, name=f"paused {reason}", steps=[EMAIL_STEP, LINKEDIN_STEP])
        add_people(ctx, cid, 2, start=10 * n)
        svc.start(ctx, p, cid)
        hold_for = PauseReason.ACCOUNT_DISCONNECTED if reason is PauseReason.MANUAL else reason
        with ctx.db.begin() as conn:
            place_hold(conn, cid, "email", hold_for, {"channel": "email"}, ctx.clock(), test)
            assert pause_if_nothing_can_run(conn, cid, campaign_store.get_steps(conn, cid), ctx.clock(), test)
        if reason is PauseReason.MANUAL:
            svc.pause(ctx, p, cid)
        assert svc.get_campaign(ctx, p, cid)["paused_reason"] == reason
        paused[reason] = cid
        if reason is PauseReason.MANUAL:
            continue  # a person pauses a campaign, never a channel
        # Sending: a channel not due yet (linkedin) held, the leads still at their email step.
        cid = new_campaign(ctx, p, name=f"held {reason}", steps=[EMAIL_STEP, LINKEDIN_STEP])
        add_people(ctx, cid, 2, start=10 * n + 5)
        svc.start(ctx, p, cid)
        with ctx.db.begin() as conn:
            place_hold(conn, cid, "linkedin", reason, {"channel": "linkedin"}, ctx.clock(), test)
        held[reason] = cid

    report = Sweeper(ctx).sweep_once()

    assert sorted(report.resumed) == sorted(paused[r] for r in SWEEPER_LIFTS)
    for reason, cid in paused.items():
        view = svc.get_campaign(ctx, p, cid)
        if reason in SWEEPER_LIFTS:
            assert (view["status"], view["holds"]) == ("sending", []), reason
        else:
            assert (view["status"], view["paused_reason"]) == ("paused", reason), reason
    for reason, cid in held.items():
        view = svc.get_campaign(ctx, p, cid)
        assert view["status"] == "sending", reason
        assert [h["reason"] for h in view["holds"]] == ([] if reason in SWEEPER_LIFTS else [reason]), reason


def test_a_flapping_account_is_left_to_a_person_after_three_automatic_lifts_in_a_day(clocked):
    ctx, clock = clocked
    p = workspace(ctx)
    li = sandbox_key(ctx, p, "linkedin")
    cid = new_campaign(ctx, p, steps=[LINKEDIN_STEP])
    add_people(ctx, cid, 3)
    svc.start(ctx, p, cid)
    sweeper = Sweeper(ctx)
    for _ in range(3):
        integration_service.record_health_event(ctx, p, li, "disconnected")
        assert svc.get_campaign(ctx, p, cid)["paused_reason"] == "account_disconnected"
        integration_service.record_health_event(ctx, p, li, "reconnected")
        clock.advance(minutes=10)
        assert sweeper.sweep_once().resumed == [cid]
    integration_service.record_health_event(ctx, p, li, "disconnected")
    integration_service.record_health_event(ctx, p, li, "reconnected")
    clock.advance(minutes=10)
    assert sweeper.sweep_once().resumed == []
    view = svc.get_campaign(ctx, p, cid)
    assert view["status"] == "paused" and view["paused_reason"] == "manual"
    assert view["pause_details"]["previous_reason"] == "account_disconnected"
    assert ("auto_lift_stopped", "account_disconnected", "system", "sweeper") in actions(ctx, p, cid)
    sweeper.sweep_once()
    assert [a for a in actions(ctx, p, cid) if a[0] == "auto_lift_stopped"] == \
        [("auto_lift_stopped", "account_disconnected", "system", "sweeper")]


def test_a_provider_signal_holds_every_campaign_using_the_account(clocked):
    """An account-status webhook (receipts) holds in the same transaction, like the API."""
    from drumbeat.channels.inbound import AccountEvent
    from drumbeat.services.receipts import CallbackIntegration, apply_events

    ctx, _ = clocked
    p = workspace(ctx)
    li = sandbox_key(ctx, p, "linkedin")
    first = new_campaign(ctx, p, name="one", steps=[LINKEDIN_STEP])
    second = new_campaign(ctx, p, name="two", steps=[LINKEDIN_STEP])
    add_people(ctx, first, 2)
    add_people(ctx, second, 2, start=10)
    svc.start(ctx, p, first)
    svc.start(ctx, p, second)
    apply_events(ctx, CallbackIntegration(li, "sandbox", "linkedin", {}), [AccountEvent("disconnected")])
    for cid in (first, second):
        assert svc.get_campaign(ctx, p, cid)["paused_reason"] == "account_disconnected"
