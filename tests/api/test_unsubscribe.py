"""One-click unsubscribe links (issue 20, API.md v1.1 Consent): the gate `unsubscribe`,
the public page `GET /u/{token}` that changes nothing, and bad tokens."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from drumbeat.app import create_app
from drumbeat.domain.unsubscribe import VALID_DAYS
from drumbeat.services import campaigns as campaign_service
from drumbeat.store.tables import leads, suppressions
from tests.api.test_campaigns import API, act, create_campaign, create_sandbox, enroll, get
from tests.conftest import PUBLIC_URL

EMAIL_STEP = {"channel": "email", "template": {"subject": "Hi {{first_name|there}}",
                                               "body": "Hello. Unsubscribe: {{unsubscribe_url}}"}}
SMS_STEP = {"channel": "sms", "template": {"body": "Hi"}}


@pytest.fixture
def unset_client(ctx):
    """The same deployment without DRUMBEAT_PUBLIC_URL."""
    with TestClient(create_app(dataclasses.replace(ctx, public_url=None))) as c:
        yield c


def email_campaign(client, ctx, headers, *, email="ada@example.com", steps=None) -> dict:
    create_sandbox(client, headers, "email")
    campaign = create_campaign(client, headers, steps=steps or [SMS_STEP, EMAIL_STEP])
    create_sandbox(client, headers, "sms")
    enroll(ctx, campaign["id"], email=email)
    return campaign


def lead_id_of(ctx, campaign_id: str) -> int:
    with ctx.db.connect() as conn:
        return conn.execute(select(leads.c.id).where(leads.c.campaign_id == campaign_id)).scalar_one()


def link_for(ctx, owner, lead_id: int, days_ago: int = 0) -> str:
    links = ctx.unsubscribe_links()
    return links.url(owner["workspace_id"], lead_id, (ctx.clock() - timedelta(days=days_ago)).date())


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC_URL + "/u/")
    return url[len(PUBLIC_URL):]


def state(ctx) -> tuple:
    """Everything an unsubscribe could change."""
    with ctx.db.connect() as conn:
        return (conn.execute(select(func.count()).select_from(suppressions)).scalar_one(),
                sorted(conn.execute(select(leads.c.id, leads.c.state)).all()))


# --- gate `unsubscribe` ---------------------------------------------------------------------

def test_a_campaign_with_an_email_step_is_refused_at_start_without_a_public_url(ctx, client, unset_client, owner):
    headers = owner["headers"]
    campaign = email_campaign(client, ctx, headers)

    refused = act(unset_client, headers, campaign["id"], "start")

    assert refused.status_code == 409 and refused.json()["error"]["code"] == "resume_blocked"
    gates = {g["gate"]: g for g in refused.json()["error"]["details"]["gates"]}
    assert gates["unsubscribe"]["ok"] is False and "DRUMBEAT_PUBLIC_URL" in gates["unsubscribe"]["reason"]
    assert "channel" not in gates["unsubscribe"]  # the whole campaign, not a channel
    assert all(g["ok"] for name, g in gates.items() if name != "unsubscribe")
    assert get(client, headers, campaign["id"])["status"] == "draft"

    started = act(client, headers, campaign["id"], "start")  # with the URL set it starts
    assert started.status_code == 200, started.text
    assert {"gate": "unsubscribe", "ok": True, "reason": None} in \
        next(e for e in client.get(f"{API}/campaigns/{campaign['id']}/timeline", headers=headers).json()["items"]
             if e["action"] == "start")["details"]["gates"]


def test_a_paused_email_campaign_is_refused_at_resume_without_a_public_url(ctx, client, unset_client, owner):
    headers = owner["headers"]
    campaign = email_campaign(client, ctx, headers)
    assert act(client, headers, campaign["id"], "start").status_code == 200
    assert act(client, headers, campaign["id"], "pause").status_code == 200

    refused = act(unset_client, headers, campaign["id"], "resume")

    assert refused.status_code == 409 and refused.json()["error"]["code"] == "resume_blocked"
    assert [g["gate"] for g in refused.json()["error"]["details"]["gates"] if not g["ok"]] == ["unsubscribe"]
    view = get(client, headers, campaign["id"])
    assert (view["status"], view["paused_reason"], view["holds"]) == ("paused", "manual", [])


def test_a_campaign_without_an_email_step_starts_without_a_public_url(ctx, client, unset_client, owner):
    headers = owner["headers"]
    create_sandbox(client, headers, "sms")
    campaign = create_campaign(client, headers, steps=[SMS_STEP])
    enroll(ctx, campaign["id"])

    started = act(unset_client, headers, campaign["id"], "start")

    assert started.status_code == 200, started.text
    assert "unsubscribe" not in [g["gate"] for g in
                                 client.get(f"{API}/campaigns/{campaign['id']}/timeline", headers=headers)
                                 .json()["items"][-1]["details"]["gates"]]


def test_a_due_start_without_a_public_url_pauses_and_says_to_set_it(ctx, client, owner):
    headers = owner["headers"]
    campaign = email_campaign(client, ctx, headers)
    start_at = (ctx.clock() + timedelta(minutes=5)).isoformat()
    assert act(client, headers, campaign["id"], "schedule", {"start_at": start_at}).status_code == 200
    later = dataclasses.replace(ctx, public_url=None, clock=lambda: ctx.clock() + timedelta(minutes=10))

    assert campaign_service.start_due_campaigns(later) == 1

    view = get(client, headers, campaign["id"])
    assert view["status"] == "paused" and view["paused_by"] == {"type": "system", "id": "scheduler"}
    assert view["pause_explanation"]["fix"]["action"] == "set_public_url"
    assert "DRUMBEAT_PUBLIC_URL" in view["pause_explanation"]["text"]
    assert act(client, headers, campaign["id"], "resume").status_code == 200  # configured: it goes on


# --- the public page --------------------------------------------------------------------------

def test_the_page_of_a_link_asks_to_confirm_and_changes_nothing(ctx, client, owner):
    campaign = email_campaign(client, ctx, owner["headers"])
    before = state(ctx)

    page = client.get(path_of(link_for(ctx, owner, lead_id_of(ctx, campaign["id"]))))

    assert page.status_code == 200
    assert "a***@example.com" in page.text and "ada@example.com" not in page.text
    assert "Acme" in page.text  # who would stop writing
    assert page.text.count("<button") == 1 and 'method="post"' in page.text
    assert "<script" not in page.text and "set-cookie" not in page.headers
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert state(ctx) == before


def test_the_link_of_a_test_send_unsubscribes_nobody(ctx, client, owner):
    email_campaign(client, ctx, owner["headers"])
    before = state(ctx)
    path = path_of(ctx.unsubscribe_links().test_url(ctx.clock().date()))

    page = client.get(path)
    clicked = client.post(path, data={"List-Unsubscribe": "One-Click"})

    assert page.status_code == 200 and "test message" in page.text and "<button" not in page.text
    assert clicked.status_code == 200 and "test message" in clicked.text
    assert state(ctx) == before


def tampered(token: str) -> list[str]:
    flip = {c: "B" if c == "A" else "A" for c in set(token)}
    return [token[:i] + flip[token[i]] + token[i + 1:] for i in (0, 9, 12, len(token) - 1)]


def test_a_forged_tampered_or_expired_link_is_404_and_changes_nothing(ctx, client, owner):
    campaign = email_campaign(client, ctx, owner["headers"])
    lead_id = lead_id_of(ctx, campaign["id"])
    good = path_of(link_for(ctx, owner, lead_id)).removeprefix("/u/")
    other_key = dataclasses.replace(ctx, box=type(ctx.box)(__import__("cryptography.fernet").fernet.Fernet
                                                         .generate_key()))
    forged = path_of(link_for(other_key, owner, lead_id)).removeprefix("/u/")
    expired = path_of(link_for(ctx, owner, lead_id, days_ago=VALID_DAYS + 1)).removeprefix("/u/")
    other_workspace = path_of(ctx.unsubscribe_links().url("f" * 32, lead_id, ctx.clock().date())).removeprefix("/u/")
    unknown_lead = path_of(link_for(ctx, owner, lead_id + 1000)).removeprefix("/u/")
    before = state(ctx)

    for token in [forged, expired, other_workspace, unknown_lead, "nonsense", "A" * 36, *tampered(good)]:
        page = client.get(f"/u/{token}")
        assert page.status_code == 404, token
        assert "not valid" in page.text and "<button" not in page.text
        assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 404, token

    assert state(ctx) == before
    assert client.get(f"/u/{good}").status_code == 200


def test_without_a_public_url_no_link_is_valid(ctx, owner, client, unset_client):
    campaign = email_campaign(client, ctx, owner["headers"])

    assert unset_client.get(path_of(link_for(ctx, owner, lead_id_of(ctx, campaign["id"])))).status_code == 404


# --- the one click ------------------------------------------------------------------------------

def suppressions_of(client, owner) -> list[dict]:
    return client.get(f"{API}/suppressions", headers=owner["headers"]).json()["items"]


def test_the_button_suppresses_the_address_with_its_source_and_a_second_click_changes_nothing(ctx, client, owner):
    campaign = email_campaign(client, ctx, owner["headers"])
    lead_id = lead_id_of(ctx, campaign["id"])
    path = path_of(link_for(ctx, owner, lead_id))

    done = client.post(path, data={"List-Unsubscribe": "One-Click"})

    assert done.status_code == 200 and "a***@example.com" in done.text and "<button" not in done.text
    (entry,) = suppressions_of(client, owner)
    assert (entry["email"], entry["phone"], entry["reason"]) == ("ada@example.com", None, "unsubscribe_link")
    assert entry["source"] == {"campaign_id": campaign["id"], "lead_id": str(lead_id), "channel": "email"}
    assert state(ctx)[1] == [(lead_id, "opted_out")]
    again = client.post(path)  # a mail client may send no body at all
    assert again.status_code == 200 and len(suppressions_of(client, owner)) == 1


def test_an_unsubscribe_in_one_workspace_leaves_the_same_person_in_another_alone(ctx, client, owner):
    from drumbeat.services.workspaces import init_workspace

    campaign = email_campaign(client, ctx, owner["headers"])
    other = init_workspace(ctx, "Other", "owner@other.test")
    theirs = {"Authorization": f"Bearer {other['token']}"}
    other_campaign = email_campaign(client, ctx, theirs)

    assert client.post(path_of(link_for(ctx, owner, lead_id_of(ctx, campaign["id"])))).status_code == 200

    assert client.get(f"{API}/suppressions", headers=theirs).json()["items"] == []
    with ctx.db.connect() as conn:
        assert conn.execute(select(leads.c.state).where(leads.c.campaign_id == other_campaign["id"])).scalar_one() \
            == "not_contacted"
