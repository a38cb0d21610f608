"""Erasure (issue 20, API.md v1.1 Consent): `POST /api/v1/erasures` forgets a person in
every campaign of the workspace, keeps the counts right, and leaves only a keyed hash on
the suppression list, which still keeps them from ever being contacted. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from drumbeat.domain.erasure import ERASED
from drumbeat.services.workspaces import init_workspace
from drumbeat.store.tables import attempts, consent_events, leads, suppressions
from tests.api.test_campaigns import API, act, create_campaign, create_sandbox
from tests.api.test_leads import headers_for, post_json
from tests.factory import maintained, recount
from tests.fakes.providers import QUIET_SMTP

pytestmark = pytest.mark.filterwarnings(QUIET_SMTP)

EMAIL_STEP = {"channel": "email", "template": {"subject": "Hi {{first_name|there}}", "body": "Hello"}}
ADA = {"email": "ada@example.com", "phone": "+4915112345678", "first_name": "Ada", "last_name": "Lovelace",
       "attributes": {"company": "Analytical Engines"}}
BOB = {"email": "bob@example.com", "phone": "+4915112345679", "first_name": "Bob"}


def campaign_with(client, owner, people: list[dict], name: str = "Spring") -> str:
    campaign = create_campaign(client, owner["headers"], name=name, steps=[EMAIL_STEP])
    response = post_json(client, owner, campaign["id"], people)
    assert response.json()["accepted"] == len(people), response.text
    return campaign["id"]


def erase(client, owner, **address):
    return client.post(f"{API}/erasures", json=address, headers=owner["headers"])


def lead_rows(ctx) -> dict[int, dict]:
    with ctx.db.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(leads)).mappings()}


def everything_said(client, owner, campaign_ids: list[str]) -> str:
    """Every answer of the API that lists people, as one text."""
    h = owner["headers"]
    texts = [client.get(f"{API}/suppressions", headers=h).text]
    for cid in campaign_ids:
        page = client.get(f"{API}/campaigns/{cid}/leads", headers=h).json()
        texts.append(str(page))
        texts += [client.get(f"{API}/campaigns/{cid}/leads/{lead['id']}", headers=h).text for lead in page["items"]]
    return "\n".join(texts)


def test_an_erased_person_is_forgotten_in_every_campaign_and_counts_stay_right(ctx, client, owner):
    first = campaign_with(client, owner, [ADA, BOB], "First")
    second = campaign_with(client, owner, [{**ADA, "first_name": "Augusta"}], "Second")
    now = datetime.now(UTC)
    ada_ids = [i for i, r in lead_rows(ctx).items() if r["email"] == ADA["email"]]
    with ctx.db.begin() as conn:  # one of Ada's leads finished with an attempt whose refusal quotes her
        conn.execute(leads.update().where(leads.c.id == ada_ids[0]).values(state="failed", last_error="smtp:550"))
        conn.execute(insert(attempts).values(
            lead_id=ada_ids[0], campaign_id=first, step=0, channel="email", run=1, idempotency_key="k-ada",
            status="failed", error_code="smtp:550", error_message="550 <ada@example.com> unknown",
            created_at=now, updated_at=now))
        conn.execute(insert(consent_events).values(workspace_id=owner["workspace_id"], kind="opt_out",
                                                   channel="sms", address=ADA["phone"], lead_id=ada_ids[1],
                                                   text="STOP, Ada here", at=now))
    before = {cid: client.get(f"{API}/campaigns/{cid}", headers=owner["headers"]).json()["progress"]
              for cid in (first, second)}

    response = erase(client, owner, email=" ADA@Example.com ")

    assert response.status_code == 200 and response.json() == {"leads_erased": 2}
    rows = lead_rows(ctx)
    for lead_id in ada_ids:
        row = rows[lead_id]
        assert (row["first_name"], row["last_name"], row["phone"], row["email"], row["linkedin_url"],
                row["attributes"]) == (ERASED, ERASED, None, None, None, {})
    assert rows[ada_ids[0]]["state"] == "failed"  # finished: its outcome stays
    assert rows[ada_ids[1]]["state"] == "opted_out"  # unfinished: never contacted now
    bob = next(r for r in rows.values() if r["email"] == BOB["email"])
    assert (bob["first_name"], bob["phone"], bob["state"]) == ("Bob", BOB["phone"], "not_contacted")
    with ctx.db.connect() as conn:
        assert conn.execute(select(attempts.c.error_code, attempts.c.error_message)).all() == [("smtp:550", None)]
        assert conn.execute(select(consent_events.c.kind, consent_events.c.address, consent_events.c.text)).all() \
            == [("opt_out", None, None)]
        (entry,) = conn.execute(select(suppressions)).mappings().all()
        assert (entry["phone"], entry["email"], entry["reason"]) == (None, None, "manual")
        assert entry["address_hash"]
        for cid in (first, second):
            assert maintained(conn, cid) == recount(conn, cid)
    after = {cid: client.get(f"{API}/campaigns/{cid}", headers=owner["headers"]).json()["progress"]
             for cid in (first, second)}
    assert after[first]["total"] == before[first]["total"] == 2 and after[first]["failed"] == 1
    assert (after[second]["opted_out"], after[second]["not_contacted"]) == (1, 0)

    said = everything_said(client, owner, [first, second])
    for trace in ("ada@example.com", "Lovelace", "Ada", "Augusta", ADA["phone"], "Analytical"):
        assert trace not in said
    for q in ("ada", "Lovelace", "5112345678"):
        for cid in (first, second):
            assert client.get(f"{API}/campaigns/{cid}/leads", params={"q": q},
                              headers=owner["headers"]).json()["items"] == []


def test_an_erased_person_imported_again_is_enrolled_opted_out_and_never_contacted(ctx, client, owner, smtp_server):
    client.post(f"{API}/integrations", headers=owner["headers"], json={
        "channel": "email", "provider": "smtp", "config": smtp_server.config(),
        "credentials": {"username": "mailer", "password": "s3cret-pass"}})
    campaign_with(client, owner, [ADA])
    assert erase(client, owner, email=ADA["email"]).json() == {"leads_erased": 1}

    again = campaign_with(client, owner, [ADA, BOB], "Again")
    states = {lead["email"]: lead["state"] for lead in
              client.get(f"{API}/campaigns/{again}/leads", headers=owner["headers"]).json()["items"]}
    assert states == {"ada@example.com": "opted_out", "bob@example.com": "not_contacted"}
    assert act(client, owner["headers"], again, "start").status_code == 200
    from tests.engine.test_message_content import run_worker

    run_worker(ctx)

    assert smtp_server.contacts("ada@example.com") == 0 and smtp_server.contacts("bob@example.com") == 1
    suppress_again = client.post(f"{API}/suppressions", json={"email": ADA["email"]}, headers=owner["headers"])
    assert suppress_again.status_code == 201
    assert len(client.get(f"{API}/suppressions", headers=owner["headers"]).json()["items"]) == 1  # the same entry


def test_erasing_an_unknown_address_touches_no_lead_and_still_suppresses_its_hash(ctx, client, owner):
    campaign_with(client, owner, [BOB])

    response = erase(client, owner, phone="0049 151 99999999")

    assert response.status_code == 200 and response.json() == {"leads_erased": 0}
    with ctx.db.connect() as conn:
        (entry,) = conn.execute(select(suppressions.c.phone, suppressions.c.email, suppressions.c.address_hash)).all()
    assert entry[:2] == (None, None) and entry[2]
    later = campaign_with(client, owner, [{"phone": "+4915199999999", "email": "new@example.com"}], "Later")
    (lead,) = client.get(f"{API}/campaigns/{later}/leads", headers=owner["headers"]).json()["items"]
    assert lead["state"] == "opted_out"


def test_an_erasure_leaves_another_workspace_alone(ctx, client, owner):
    other = init_workspace(ctx, "Other", "owner@other.test")
    theirs = {**other, "headers": {"Authorization": f"Bearer {other['token']}"}}
    create_sandbox(client, theirs["headers"], "email")
    their_campaign = campaign_with(client, theirs, [ADA])

    assert erase(client, owner, email=ADA["email"]).json() == {"leads_erased": 0}

    (lead,) = client.get(f"{API}/campaigns/{their_campaign}/leads", headers=theirs["headers"]).json()["items"]
    assert (lead["email"], lead["first_name"], lead["state"]) == (ADA["email"], "Ada", "not_contacted")
    assert client.get(f"{API}/suppressions", headers=theirs["headers"]).json()["items"] == []


@pytest.mark.parametrize("body, field", [
    ({}, "phone"), ({"phone": "+4915112345678", "email": "ada@example.com"}, "phone"),
    ({"phone": "12"}, "phone"), ({"email": "not an address"}, "email"), ({"name": "Ada"}, "name")])
def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(ctx, client, owner, body, field):
    campaign_with(client, owner, [ADA])
    before = lead_rows(ctx)

    response = client.post(f"{API}/erasures", json=body, headers=owner["headers"])

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert field in [f["field"] for f in response.json()["error"]["details"]["fields"]]
    assert lead_rows(ctx) == before
    with ctx.db.connect() as conn:
        assert conn.execute(select(suppressions)).all() == []


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_only_an_owner_may_erase(ctx, client, owner, role):
    campaign_with(client, owner, [ADA])
    before = lead_rows(ctx)

    response = client.post(f"{API}/erasures", json={"email": ADA["email"]}, headers=headers_for(ctx, owner, role))

    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert lead_rows(ctx) == before
