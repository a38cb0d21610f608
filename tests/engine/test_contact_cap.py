"""The workspace contact cap (DESIGN.md §9): no person, by address, is contacted more than
`max` times in `days` days across every campaign; a lead over the cap waits, never fails."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from drumbeat.domain.contact_cap import ContactCap
from drumbeat.services import campaigns as svc
from drumbeat.services.workspaces import update_settings
from drumbeat.store import claims
from drumbeat.store.tables import attempts, campaigns, leads
from tests.conftest import postgresql_only
from tests.engine.harness import Fleet, whatsapp_key
from tests.engine.test_consent_at_claim import people_in_two_campaigns
from tests.engine.test_windows_caps import clocked, drain
from tests.engine.test_worker import TWO_STEPS
from tests.factory import add_leads, new_campaign, sandbox_key, workspace

WEEK = timedelta(days=7)


def contacts(ctx) -> dict[str, list]:
    """phone -> start times of its attempts, every campaign."""
    out: dict[str, list] = {}
    with ctx.db.connect() as conn:
        for phone, at in conn.execute(select(leads.c.phone, attempts.c.created_at)
                                      .join(attempts, attempts.c.lead_id == leads.c.id).order_by(attempts.c.id)):
            out.setdefault(phone, []).append(at)
    return out


def states(ctx, campaign_id: str) -> Counter:
    with ctx.db.connect() as conn:
        return Counter(conn.execute(select(leads.c.state).where(leads.c.campaign_id == campaign_id)).scalars())


def test_with_one_contact_a_week_two_campaigns_contact_each_person_once_and_the_rest_wait_a_week(ctx):
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p)
    update_settings(c, p, {"contact_cap": {"max": 1, "days": 7}})
    first, second = new_campaign(c, p, name="First"), new_campaign(c, p, name="Second")
    add_leads(c, first, 30)
    add_leads(c, second, 30)  # the same thirty people
    add_leads(c, second, 10, start=100)  # and ten only the second campaign has
    svc.start(c, p, first)
    svc.start(c, p, second)
    drain(c)

    seen = contacts(c)
    assert len(seen) == 40 and {len(times) for times in seen.values()} == {1}
    waiting = states(c, first) + states(c, second)
    assert waiting == {"completed": 40, "not_contacted": 30}  # none failed
    with c.db.connect() as conn:
        due = dict(conn.execute(select(leads.c.phone, leads.c.next_action_at)
                                .where(leads.c.state == "not_contacted")).all())
    assert due == {phone: seen[phone][0] + WEEK for phone in due}  # when the one contact leaves the window
    held = [svc.get_campaign(c, p, cid) for cid in (first, second)]
    held = [view for view in held if view["status"] == "sending"]
    assert len(held) == 1 and held[0]["next_send_reason"] == "contact_cap"
    assert held[0]["next_send_at"] == min(due.values())

    clock.advance(days=6, hours=23)
    drain(c)
    assert {len(times) for times in contacts(c).values()} == {1}  # a day short of the week: still waiting
    clock.advance(hours=1)
    drain(c)
    seen = contacts(c)
    assert sorted(len(times) for times in seen.values()) == [1] * 10 + [2] * 30
    assert all(times[1] - times[0] >= WEEK for times in seen.values() if len(times) == 2)
    assert [svc.get_campaign(c, p, cid)["status"] for cid in (first, second)] == ["completed", "completed"]


def test_the_cap_counts_a_persons_contacts_on_every_channel_and_step_of_a_campaign(ctx):
    """Two a week: a two-step campaign's second step (email) waits for the week to pass
    when another campaign already used one of the person's two contacts (WhatsApp)."""
    c, clock = clocked(ctx)
    p = workspace(c)
    sandbox_key(c, p, "whatsapp")
    sandbox_key(c, p, "email")
    update_settings(c, p, {"contact_cap": {"max": 2, "days": 7}})
    other = new_campaign(c, p, name="Other")
    add_leads(c, other, 5)
    svc.start(c, p, other)
    drain(c)
    clock.advance(hours=1)
    both = new_campaign(c, p, name="Both", steps=TWO_STEPS)
    add_leads(c, both, 5)
    svc.start(c, p, both)
    drain(c)

    seen = contacts(c)
    assert {len(times) for times in seen.values()} == {2}  # the other campaign's and the first step
    with c.db.connect() as conn:
        waiting = conn.execute(select(leads.c.current_step, leads.c.next_action_at)
                               .where(leads.c.campaign_id == both)).all()
    assert {step for step, _ in waiting} == {1}
    assert {at for _, at in waiting} == {times[0] + WEEK for times in seen.values()}
    clock.now = max(at for _, at in waiting)
    drain(c)
    assert {len(times) for times in contacts(c).values()} == {3}
    assert states(c, both) == {"completed": 5}


CAP_PEOPLE = 300


def nothing_left_to_send_now(ctx) -> bool:
    """No lead leased, no call waiting for its outcome, and no lead due before tomorrow:
    what is left waits for the cap's week."""
    with ctx.db.connect() as conn:
        leased = conn.execute(select(func.count()).select_from(leads).where(leads.c.lease_owner.is_not(None)))
        sending = conn.execute(select(func.count()).select_from(attempts).where(attempts.c.status == "sending"))
        due = conn.execute(select(func.count()).select_from(leads).where(  # a retry's backoff is minutes
            leads.c.state.in_(("not_contacted", "in_progress")),
            leads.c.next_action_at <= datetime.now(UTC) + timedelta(days=1)))
        return leased.scalar_one() == 0 and sending.scalar_one() == 0 and due.scalar_one() == 0


@postgresql_only
def test_three_worker_processes_contact_each_person_of_two_campaigns_at_most_once_a_week(
        ctx, db_url, secret_key, tmp_path, whatsapp_server):
    """Two paced campaigns with the same people, due in the same order, so each person's two
    leads come up at about the same time in different `drumbeat worker` processes; a cap of one
    contact in seven days. Counted where the provider sees them: the fake WhatsApp received
    exactly one message per person, and every other lead waits for the week."""
    whatsapp_server.latency = 0.02
    p = workspace(ctx)
    whatsapp_key(ctx, p, whatsapp_server)
    update_settings(ctx, p, {"contact_cap": {"max": 1, "days": 7}})
    # Each campaign paced, so neither takes every slot: both claim person i at about the same time.
    both = people_in_two_campaigns(ctx, p, CAP_PEOPLE, limits={"daily_cap": None, "weekly_cap": None,
                                                               "rate_per_second": 80, "ramp": None})
    for cid in both:
        svc.start(ctx, p, cid)
    with Fleet(db_url, secret_key, tmp_path, 3, concurrency=8) as fleet:
        deadline = time.monotonic() + 180
        fleet.wait_started(deadline)
        fleet.wait_while(lambda: not nothing_left_to_send_now(ctx), deadline)
    assert fleet.stop() == [0, 0, 0]

    with ctx.db.connect() as conn:
        outcomes = Counter(conn.execute(select(attempts.c.status, attempts.c.error_code)).all())
    received = Counter(call.to for call in whatsapp_server.calls())
    assert set(outcomes) == {("sent", None)}, outcomes  # no retry: one call per contact
    assert len(received) == CAP_PEOPLE and set(received.values()) == {1}, received.most_common(3)
    assert (states(ctx, both[0]) + states(ctx, both[1])) == {"completed": CAP_PEOPLE, "not_contacted": CAP_PEOPLE}
    seen = contacts(ctx)
    with ctx.db.connect() as conn:
        due = dict(conn.execute(select(leads.c.phone, leads.c.next_action_at)
                                .where(leads.c.state == "not_contacted")).all())
    assert due == {phone: seen[phone][0] + WEEK for phone in due}


@postgresql_only
def test_a_claim_leaves_a_person_another_uncommitted_claim_is_contacting_and_then_defers_it(ctx):
    """Two transactions at once, as two workers: the first claims the person's lead of one
    campaign and has not committed; the second, claiming the same person's lead of the
    other campaign, cannot count a contact it cannot see yet, so it must not go ahead: it
    leaves the lead due as it was. Once the first has committed, the next claim sees the
    contact and moves the lead to a week after it."""
    p = workspace(ctx)
    key = sandbox_key(ctx, p)
    update_settings(ctx, p, {"contact_cap": {"max": 1, "days": 7}})
    first, second = new_campaign(ctx, p, name="First"), new_campaign(ctx, p, name="Second")
    add_leads(ctx, first, 1)
    add_leads(ctx, second, 1)
    for cid in (first, second):
        svc.start(ctx, p, cid)
    cap = ContactCap(max=1, days=7)

    def claim(conn, campaign_id: str, owner: str):
        run = conn.execute(select(campaigns.c.run).where(campaigns.c.id == campaign_id)).scalar_one()
        return claims.claim_due_leads(
            conn, campaign_id=campaign_id, run=run, steps_open=[0], now=ctx.clock(), limit=8, owner=owner,
            lease=timedelta(minutes=2), pick_integration=lambda step: key, channel_of_step=lambda step: "whatsapp",
            contact_cap=cap)

    def second_lead():
        with ctx.db.connect() as conn:
            return conn.execute(select(leads.c.state, leads.c.lease_owner, leads.c.next_action_at)
                                .where(leads.c.campaign_id == second)).one()

    due_before = second_lead().next_action_at
    with ctx.db.connect() as one, ctx.db.connect() as two:
        with one.begin():
            assert len(claim(one, first, "worker-1")) == 1  # not committed yet
            with two.begin():
                assert claim(two, second, "worker-2") == []
            assert second_lead() == ("not_contacted", None, due_before)  # left as it was
        with two.begin():  # the first claim has committed: its contact counts
            assert claim(two, second, "worker-2") == []
    with ctx.db.connect() as conn:
        started = conn.execute(select(attempts.c.created_at)).scalar_one()
    assert second_lead() == ("not_contacted", None, started + WEEK)


def test_a_person_known_by_any_one_address_counts_the_contacts_of_every_lead_sharing_it(ctx):
    """Counted per person: leads of other campaigns sharing the phone, the email or the
    LinkedIn profile, each contact once even when a lead shares two addresses; attempts
    that reached nobody (failed) and other workspaces' leads do not count."""
    p, other_workspace = workspace(ctx), workspace(ctx, name="Other")
    ids = {}
    now = ctx.clock()
    people = {"me": {"phone": "+15550000001", "email": "me@x.test", "linkedin_url": None},
              "by_phone": {"phone": "+15550000001", "email": None, "linkedin_url": None},
              "by_both": {"phone": "+15550000001", "email": "me@x.test", "linkedin_url": None},
              "by_profile": {"phone": None, "email": None, "linkedin_url": "https://linkedin.com/in/me"},
              "me_on_linkedin": {"phone": None, "email": "me@x.test", "linkedin_url": "https://linkedin.com/in/me"},
              "stranger": {"phone": "+15550000001", "email": None, "linkedin_url": None}}  # another workspace
    campaign_of = {name: new_campaign(ctx, other_workspace if name == "stranger" else p, name=name)
                   for name in people}
    with ctx.db.begin() as conn:
        for name, addresses in people.items():
            ids[name] = conn.execute(insert(leads).values(
                campaign_id=campaign_of[name], attributes={}, state="in_progress", next_action_at=now, created_at=now,
                updated_at=now, **addresses).returning(leads.c.id)).scalar_one()
        for name, status, days_ago in (("by_phone", "sent", 1), ("by_both", "delivered", 2), ("by_both", "failed", 3),
                                       ("by_profile", "in_doubt", 4), ("me", "sending", 0), ("me", "read", 9),
                                       ("stranger", "sent", 5)):
            conn.execute(insert(attempts).values(
                lead_id=ids[name], campaign_id=campaign_of[name], step=0, channel="whatsapp", integration_id="k", run=1,
                idempotency_key=f"{name}{days_ago}", status=status, created_at=now - timedelta(days=days_ago),
                updated_at=now))
        found = claims.contacts_since(conn, p.workspace_id, [ids["me"], ids["me_on_linkedin"]], now - WEEK)
    # "me": its own (now), by phone (1 day), by phone and email (2 days, once); not the failed
    # one, not the one nine days ago, not the stranger's. "me_on_linkedin": by email (now and
    # 2 days) and by profile (4 days).
    assert sorted(now - at for at in found[ids["me"]]) == [timedelta(0), timedelta(days=1), timedelta(days=2)]
    assert sorted(now - at for at in found[ids["me_on_linkedin"]]) == [timedelta(0), timedelta(days=2),
                                                                       timedelta(days=4)]
