"""The workspace contact cap (DESIGN.md §9): no person, by address, is contacted more than
`max` times in `days` days across every campaign; a lead over the cap waits, never fails."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from drumbeat.services import campaigns as svc
from drumbeat.services.workspaces import update_settings
from drumbeat.store.tables import attempts, leads
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
