"""The one consent path (services.suppressions.suppress and lift_stop_keyword), on both
databases: idempotent, workspace-wide, counts kept, matching by the keyed hash."""

from __future__ import annotations

from sqlalchemy import func, select, update

from drumbeat.services.suppressions import lift_stop_keyword, suppress
from drumbeat.services.workspaces import init_workspace
from drumbeat.store import counts
from drumbeat.store.tables import leads, suppressions
from tests.api.test_leads import EMAIL, WHATSAPP, new_campaign, post_json

PHONE = "+4915123456701"


def _enrol_twice(client, ctx, owner):
    first = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL], name="First")
    second = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL], name="Second")
    people = [{"phone": PHONE, "email": "a@example.com"}, {"phone": "+4915123456702", "email": "b@example.com"}]
    post_json(client, owner, first, people)
    post_json(client, owner, second, people)
    return first, second


def _states(ctx, campaign_id):
    with ctx.db.begin() as conn:
        return dict(conn.execute(select(leads.c.phone, leads.c.state).where(leads.c.campaign_id == campaign_id)).all())


def test_suppress_is_idempotent_and_opts_out_every_unfinished_lead_with_the_address(client, ctx, owner):
    first, second = _enrol_twice(client, ctx, owner)
    with ctx.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.campaign_id == second, leads.c.phone == PHONE)
                     .values(state="replied"))
    source = {"campaign_id": first, "lead_id": 1, "channel": "sms"}
    with ctx.db.begin() as conn:
        row, opted_out = suppress(conn, owner["workspace_id"], phone="0049 151 23456701", reason="stop_keyword",
                                  source=source, now=ctx.clock())
    assert opted_out == 1 and row["phone"] == PHONE and row["reason"] == "stop_keyword"
    assert row["source_campaign_id"] == first and row["source_channel"] == "sms" and row["address_hash"]
    assert _states(ctx, first) == {PHONE: "opted_out", "+4915123456702": "not_contacted"}
    assert _states(ctx, second) == {PHONE: "replied", "+4915123456702": "not_contacted"}  # terminal: kept

    with ctx.db.begin() as conn:  # again, for another reason: the first entry stands
        again, opted_out = suppress(conn, owner["workspace_id"], phone=PHONE, reason="provider_opt_out",
                                    now=ctx.clock())
        n = conn.execute(select(func.count()).select_from(suppressions)).scalar_one()
    assert again["id"] == row["id"] and again["reason"] == "stop_keyword" and opted_out == 0 and n == 1

    with ctx.db.begin() as conn:  # the maintained counts followed the state changes
        states = counts.lead_states(conn, [first, second])
    assert states[first] == {"opted_out": 1, "not_contacted": 1}
    assert states[second] == {"replied": 1, "not_contacted": 1}


def test_suppress_stays_inside_its_workspace(client, ctx, owner):
    first, _ = _enrol_twice(client, ctx, owner)
    other = init_workspace(ctx, "Other", "owner@other.test")
    with ctx.db.begin() as conn:
        _, opted_out = suppress(conn, other["workspace_id"], email="A@Example.com", reason="bounce",
                                now=ctx.clock())
        mine = conn.execute(select(suppressions.c.id).where(
            suppressions.c.workspace_id == owner["workspace_id"])).all()
    assert opted_out == 0 and mine == []
    assert _states(ctx, first)[PHONE] == "not_contacted"


def test_start_lifts_only_a_stop_keyword_entry(ctx, owner):
    ws = owner["workspace_id"]
    with ctx.db.begin() as conn:
        suppress(conn, ws, phone=PHONE, reason="stop_keyword", now=ctx.clock())
        suppress(conn, ws, phone="+4915123456702", reason="manual", now=ctx.clock())
        suppress(conn, ws, email="b@example.com", reason="bounce", now=ctx.clock())
    with ctx.db.begin() as conn:
        assert lift_stop_keyword(conn, ws, phone=PHONE, now=ctx.clock()) is True
        assert lift_stop_keyword(conn, ws, phone=PHONE, now=ctx.clock()) is False
        assert lift_stop_keyword(conn, ws, phone="+4915123456702", now=ctx.clock()) is False
        assert lift_stop_keyword(conn, ws, email="B@example.com", now=ctx.clock()) is False
        left = conn.execute(select(suppressions.c.phone, suppressions.c.email, suppressions.c.reason)
                            .order_by(suppressions.c.id)).all()
    assert [tuple(r) for r in left] == [("+4915123456702", None, "manual"), (None, "b@example.com", "bounce")]


def test_an_entry_whose_address_was_blanked_still_enrols_the_person_as_opted_out(client, ctx, owner):
    ws = owner["workspace_id"]
    with ctx.db.begin() as conn:
        suppress(conn, ws, phone=PHONE, reason="manual", now=ctx.clock())
        suppress(conn, ws, email="b@example.com", reason="unsubscribe_link", now=ctx.clock())
        conn.execute(update(suppressions).values(phone=None, email=None))  # as an erasure leaves it
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL], name="Later")
    r = post_json(client, owner, campaign, [{"phone": PHONE, "email": "a@example.com"},
                                            {"phone": "+4915123456702", "email": "B@example.com"},
                                            {"phone": "+4915123456703", "email": "c@example.com"}])
    assert r.json()["accepted"] == 3
    assert _states(ctx, campaign) == {PHONE: "opted_out", "+4915123456702": "opted_out",
                                      "+4915123456703": "not_contacted"}
    with ctx.db.begin() as conn:  # and suppressing it again finds the blanked entry
        row, _ = suppress(conn, ws, phone=PHONE, reason="manual", now=ctx.clock())
        n = conn.execute(select(func.count()).select_from(suppressions)).scalar_one()
    assert n == 2 and row["phone"] is None


def test_the_api_shows_each_entry_with_its_reason_and_source(client, ctx, owner):
    campaign = new_campaign(ctx, owner)
    with ctx.db.begin() as conn:
        suppress(conn, owner["workspace_id"], phone=PHONE, reason="stop_keyword",
                 source={"campaign_id": campaign, "lead_id": 7, "channel": "sms"}, now=ctx.clock())
    added = client.post("/api/v1/suppressions", json={"email": "a@example.com"}, headers=owner["headers"]).json()
    assert added["reason"] == "manual" and added["source"] == {}
    items = client.get("/api/v1/suppressions", headers=owner["headers"]).json()["items"]
    assert [(i["reason"], i["source"]) for i in items] == [
        ("stop_keyword", {"campaign_id": campaign, "lead_id": "7", "channel": "sms"}), ("manual", {})]
