"""The suppression list (API.md): add, list, and opting out the workspace's leads."""

from __future__ import annotations

from sqlalchemy import select, update

from drumbeat.services.workspaces import init_workspace
from drumbeat.store.tables import leads
from tests.api.test_leads import EMAIL, WHATSAPP, headers_for, new_campaign, post_json


def test_suppressing_opts_out_unfinished_leads_of_the_workspace(client, ctx, owner):
    first = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL], name="First")
    second = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL], name="Second")
    people = [{"phone": "+4915123456701", "email": "a@example.com"},
              {"phone": "+4915123456702", "email": "b@example.com"}]
    post_json(client, owner, first, people)
    post_json(client, owner, second, people)
    with ctx.db.begin() as conn:  # one of the four is already finished: it keeps its state
        conn.execute(update(leads).where(leads.c.campaign_id == second, leads.c.phone == "+4915123456701")
                     .values(state="completed"))
        conn.execute(update(leads).where(leads.c.campaign_id == first, leads.c.phone == "+4915123456701")
                     .values(state="in_doubt"))
    # Another workspace with the same person is not touched.
    other = init_workspace(ctx, "Other", "owner@other.test")
    other_owner = {**other, "headers": {"Authorization": f"Bearer {other['token']}"}}
    other_campaign = new_campaign(ctx, other_owner, name="Theirs")
    post_json(client, other_owner, other_campaign, [{"phone": "+4915123456701"}])

    r = client.post("/api/v1/suppressions", json={"phone": "0049 151 2345 6701"}, headers=owner["headers"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["phone"] == "+4915123456701" and body["email"] is None and body["leads_opted_out"] == 1
    assert isinstance(body["id"], str) and body["created_at"]
    with ctx.db.begin() as conn:
        rows = conn.execute(select(leads.c.campaign_id, leads.c.phone, leads.c.state)).all()
    got = {(c, p): s for c, p, s in rows}
    assert got[(first, "+4915123456701")] == "opted_out"  # was in_doubt
    assert got[(second, "+4915123456701")] == "completed"
    assert got[(first, "+4915123456702")] == "not_contacted"
    assert got[(other_campaign, "+4915123456701")] == "not_contacted"

    r = client.post("/api/v1/suppressions", json={"email": "B@Example.COM"}, headers=owner["headers"])
    assert r.json()["email"] == "b@example.com" and r.json()["leads_opted_out"] == 2


def test_suppressions_are_listed_by_cursor_and_kept_once(client, ctx, owner):
    for phone in ("+4915123456701", "+4915123456702", "+4915123456703"):
        client.post("/api/v1/suppressions", json={"phone": phone}, headers=owner["headers"])
    again = client.post("/api/v1/suppressions", json={"phone": "+49 151 23456701"}, headers=owner["headers"])
    assert again.status_code == 201
    viewer = headers_for(ctx, owner, "viewer")
    page = client.get("/api/v1/suppressions", params={"limit": 2}, headers=viewer).json()
    assert [x["phone"] for x in page["items"]] == ["+4915123456701", "+4915123456702"]
    assert again.json()["id"] == page["items"][0]["id"]
    page = client.get("/api/v1/suppressions", params={"cursor": page["next_cursor"]}, headers=viewer).json()
    assert [x["phone"] for x in page["items"]] == ["+4915123456703"] and page["next_cursor"] is None
    other = init_workspace(ctx, "Other", "owner@other.test")
    theirs = client.get("/api/v1/suppressions", headers={"Authorization": f"Bearer {other['token']}"}).json()
    assert theirs == {"items": [], "next_cursor": None}


def test_suppression_input_is_validated(client, owner):
    for body in ({}, {"phone": "+4915123456701", "email": "a@example.com"}, {"phone": "12345"},
                 {"email": "not-an-email"}, {"fax": "+4915123456701"}, {"phone": 4915123456701}):
        r = client.post("/api/v1/suppressions", json=body, headers=owner["headers"])
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", body


def test_only_operators_suppress(client, ctx, owner):
    viewer = headers_for(ctx, owner, "viewer")
    assert client.post("/api/v1/suppressions", json={"phone": "+4915123456701"}, headers=viewer).status_code == 403
    operator = headers_for(ctx, owner, "operator")
    assert client.post("/api/v1/suppressions", json={"phone": "+4915123456701"}, headers=operator).status_code == 201
    assert client.get("/api/v1/suppressions").status_code == 401
