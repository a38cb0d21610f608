"""Leads routes (API.md, Campaigns): import JSON and CSV, list, detail, resolve."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from drumbeat.services import campaigns as campaign_service
from drumbeat.services import leads as lead_service
from drumbeat.services.context import Principal
from drumbeat.services.workspaces import init_workspace
from drumbeat.store import workspaces as workspace_store
from drumbeat.store.tables import attempts, leads, timeline

ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WHATSAPP = {"channel": "whatsapp", "template": {"name": "promo", "language": "en", "body": "Hi"}, "delay_seconds": 0}
EMAIL = {"channel": "email", "template": {"subject": "Hello", "body": "Hi {{first_name}}"}, "delay_seconds": 3600}


def new_campaign(ctx, owner, steps=None, name="Spring promo") -> str:
    principal = Principal(owner["user_id"], owner["workspace_id"], "owner")
    data = {"name": name, "steps": steps or [WHATSAPP],
            "schedule": {"timezone": "UTC", "days": ALL_DAYS, "window_start": "00:00", "window_end": "24:00",
                         "randomize_within_window": False, "start_at": None},
            "limits": {"daily_cap": None, "weekly_cap": None, "rate_per_second": None, "ramp": None},
            "failure_policy": {"window": 50, "threshold": 0.5, "min_samples": 20}, "integration_ids": None}
    return campaign_service.create_campaign(ctx, principal, data)["id"]


def headers_for(ctx, owner, role: str) -> dict:
    with ctx.db.begin() as conn:
        _, token = workspace_store.insert_user(conn, owner["workspace_id"], f"{role}@acme.test", role, None,
                                               ctx.clock())
    return {"Authorization": f"Bearer {token}"}


def post_csv(client, owner, campaign_id, text: str | bytes, content_type="text/csv"):
    body = text.encode() if isinstance(text, str) else text
    return client.post(f"/api/v1/campaigns/{campaign_id}/leads/import", content=body,
                       headers={**owner["headers"], "Content-Type": content_type})


def counts(body: dict) -> dict:
    """An import's answer less its import_id (new each time)."""
    assert len(body.pop("import_id")) == 32
    return body


def post_json(client, owner, campaign_id, lead_list):
    return client.post(f"/api/v1/campaigns/{campaign_id}/leads", json={"leads": lead_list}, headers=owner["headers"])


def all_leads(ctx, campaign_id):
    with ctx.db.begin() as conn:
        return [dict(r) for r in conn.execute(select(leads).where(leads.c.campaign_id == campaign_id)
                                              .order_by(leads.c.id)).mappings()]


@pytest.fixture
def campaign(ctx, owner):
    return new_campaign(ctx, owner)


# --- CSV import ---------------------------------------------------------------------------

def test_csv_good_rows_import_and_bad_rows_are_reported_by_row_number(client, ctx, owner, campaign):
    csv_text = (
        "phone,first_name,timezone,company\n"
        "+4915123456701,Ann,Europe/Berlin,Acme\n"        # row 1 ok
        "12345,Bob,,Acme\n"                             # row 2 bad phone
        "+4915123456703,Cid\n"                          # row 3 too few cells
        '+4915123456704,"Dee"x,UTC,Acme\n'               # row 4 stray quote
        "+4915123456705,Eve,Mars/Base,Acme\n"           # row 5 bad zone
        ",Fay,,Acme\n"                                  # row 6 no phone for the whatsapp step
        "+4915123456707,Gus,UTC,Acme\n"                 # row 7 ok
    )
    r = post_csv(client, owner, campaign, csv_text)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0 and body["rejected_count"] == 5
    by_row = {x["row"]: x["errors"] for x in body["rejected"]}
    assert sorted(by_row) == [2, 3, 4, 5, 6]
    assert by_row[2][0]["field"] == "phone"
    assert by_row[3] == [{"field": "row", "message": "has 2 cells; the header has 4"}]
    assert "malformed CSV" in by_row[4][0]["message"]
    assert by_row[5][0]["field"] == "timezone"
    assert by_row[6] == [{"field": "phone", "message": "is required: a whatsapp step sends to it"}]
    rows = all_leads(ctx, campaign)
    assert [(r["phone"], r["first_name"], r["attributes"]) for r in rows] == [
        ("+4915123456701", "Ann", {"company": "Acme"}), ("+4915123456707", "Gus", {"company": "Acme"})]
    lead = rows[0]
    assert lead["state"] == "not_contacted" and lead["current_step"] == 0
    assert lead["next_action_at"] == lead["created_at"] == lead["updated_at"]


def test_csv_bom_embedded_newline_and_formula_cells(client, ctx, owner, campaign):
    csv_text = ("\ufeffphone,first_name,note,score\n"
                '+4915123456701,"Ann","first line\nsecond line",=1+1\n'
                "+4915123456702,@SUM(A1),-2,+cmd|' /C calc'!A0\n")
    r = post_csv(client, owner, campaign, csv_text)
    assert counts(r.json()) == {"accepted": 2, "duplicates": 0, "rejected": [],
                                       "rejected_count": 0, "rejected_total": 0}
    first, second = all_leads(ctx, campaign)
    assert first["attributes"] == {"note": "first line\nsecond line", "score": "=1+1"}
    assert second["first_name"] == "@SUM(A1)"
    assert second["attributes"] == {"note": "-2", "score": "+cmd|' /C calc'!A0"}


def test_csv_duplicates_within_a_file_and_across_imports(client, ctx, owner):
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL])
    first = ("phone,email\n"
             "+4915123456701,a@example.com\n"
             "0049 151 23456701,other@example.com\n"   # same phone, written differently
             "+4915123456702,A@EXAMPLE.com\n"          # same email, other case
             "+4915123456703,c@example.com\n")
    assert post_csv(client, owner, campaign, first).json()["accepted"] == 2
    again = ("phone,email\n"
             "+4915123456703,new@example.com\n"        # phone known from the first import
             "+4915123456704,d@example.com\n")
    body = post_csv(client, owner, campaign, again).json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert len(all_leads(ctx, campaign)) == 3
    # The same addresses go into another campaign without trouble.
    other = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL], name="Other")
    assert post_csv(client, owner, other, first).json()["accepted"] == 2


def test_csv_spanning_several_batches_streams_in_chunks(client, ctx, owner, campaign, monkeypatch):
    monkeypatch.setattr(lead_service, "BATCH_SIZE", 100)
    lines = ["phone,first_name"] + [f"+1650253{i:04d},N{i}" for i in range(1, 351)] + ["+16502530001,dup"]

    def body():
        data = ("\n".join(lines) + "\n").encode()
        for i in range(0, len(data), 777):  # chunk edges fall mid-line
            yield data[i:i + 777]

    r = client.post(f"/api/v1/campaigns/{campaign}/leads/import", content=body(),
                    headers={**owner["headers"], "Content-Type": "text/csv; charset=utf-8"})
    assert counts(r.json()) == {"accepted": 350, "duplicates": 1, "rejected": [],
                                       "rejected_count": 0, "rejected_total": 0}


def test_rejected_list_is_capped_but_counted(client, ctx, owner, campaign, monkeypatch):
    monkeypatch.setattr(lead_service, "MAX_REJECTED_KEPT", 5)
    r = post_csv(client, owner, campaign, "phone\n" + "bad\n" * 12)
    body = r.json()
    assert body["rejected_count"] == 12 and [x["row"] for x in body["rejected"]] == [1, 2, 3, 4, 5]


def test_csv_invalid_utf8_rejects_only_its_row(client, ctx, owner, campaign):
    r = post_csv(client, owner, campaign, b"phone,first_name\n+4915123456701,Ann\n+4915123456702,B\xffb\n")
    body = r.json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"row": 2, "errors": [{"field": "first_name",
                                                       "message": "contains a NUL character or invalid UTF-8"}]}]


@pytest.mark.parametrize(("body", "content_type"), [
    ("", "text/csv"),                                # no header row
    ("phone,phone\n+4915123456701,x\n", "text/csv"),  # duplicate column
    ('{"leads": []}', "application/json"),           # not CSV
    ("phone\n", "text/csv; charset=klingon"),
])
def test_csv_bodies_that_cannot_be_read_are_422(client, owner, campaign, body, content_type):
    r = post_csv(client, owner, campaign, body, content_type)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"


def test_header_only_csv_imports_nothing(client, owner, campaign):
    assert post_csv(client, owner, campaign, "phone,email\n").json()["accepted"] == 0


def test_suppressed_addresses_are_enrolled_opted_out(client, ctx, owner):
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL])
    for body in ({"phone": "+49 151 23456701"}, {"email": "Gone@Example.com"}):
        assert client.post("/api/v1/suppressions", json=body, headers=owner["headers"]).status_code == 201
    csv_text = ("phone,email\n+4915123456701,a@example.com\n+4915123456702,gone@example.com\n"
                "+4915123456703,c@example.com\n")
    body = post_csv(client, owner, campaign, csv_text).json()
    assert body["accepted"] == 3
    assert [r["state"] for r in all_leads(ctx, campaign)] == ["opted_out", "opted_out", "not_contacted"]


# --- JSON import ----------------------------------------------------------------------------

def test_json_import_validates_each_lead(client, ctx, owner, campaign):
    r = post_json(client, owner, campaign, [
        {"phone": "+4915123456701", "first_name": "Ann", "attributes": {"plan": "pro", "seats": 3, "vip": True}},
        {"phone": "+4915123456702", "favourite_colour": "red"},
        {"phone": "015123456703"},
        {"phone": "+44 20 7946 0", "timezone": "Europe/London"},
        {"phone": "+4915123456705", "timezone": "Europe/Atlantis"},
        {"email": "a@example.com"},
        "+4915123456707",
        {"phone": "+4915123456708", "attributes": {"address": {"city": "Berlin"}}},
        {"phone": "+16502530000"},
    ])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2
    errors = {x["index"]: x["errors"] for x in body["rejected"]}
    assert "row" not in body["rejected"][0]
    assert errors[1] == [{"field": "favourite_colour", "message": "unknown field"}]
    assert [e["field"] for e in errors[2]] == ["phone"]
    assert [e["field"] for e in errors[3]] == ["phone"]
    assert [e["field"] for e in errors[4]] == ["timezone"]
    assert [e["field"] for e in errors[5]] == ["phone"]
    assert errors[6] == [{"field": "lead", "message": "must be an object"}]
    assert [e["field"] for e in errors[7]] == ["attributes.address"]
    assert all_leads(ctx, campaign)[0]["attributes"] == {"plan": "pro", "seats": 3, "vip": True}


def test_json_import_of_10001_leads_is_refused(client, ctx, owner, campaign):
    r = post_json(client, owner, campaign, [{"phone": f"+1650253{i:04d}"} for i in range(10_001)])
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "leads"
    assert all_leads(ctx, campaign) == []


def test_json_import_of_10000_leads_is_accepted(client, ctx, owner, campaign):
    lead_list = [{"phone": f"+1650253{i:04d}"} for i in range(10_000)]
    assert post_json(client, owner, campaign, lead_list).json()["accepted"] == 10_000


def test_body_that_is_not_json_is_422(client, owner, campaign):
    r = client.post(f"/api/v1/campaigns/{campaign}/leads", content=b"phone\n+4915123456701\n",
                    headers={**owner["headers"], "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


# --- who and when ---------------------------------------------------------------------------

def test_import_refused_once_the_campaign_is_terminal(client, ctx, owner, campaign):
    principal = Principal(owner["user_id"], owner["workspace_id"], "owner")
    campaign_service.cancel(ctx, principal, campaign, "Spring promo")
    for r in (post_json(client, owner, campaign, [{"phone": "+4915123456701"}]),
              post_csv(client, owner, campaign, "phone\n+4915123456701\n")):
        assert r.status_code == 409
        assert r.json()["error"] == {"code": "invalid_transition", "message": r.json()["error"]["message"],
                                     "details": {"from": "canceled", "action": "import"}}


def test_viewer_reads_but_cannot_import_or_resolve(client, ctx, owner, campaign):
    viewer = headers_for(ctx, owner, "viewer")
    base = f"/api/v1/campaigns/{campaign}/leads"
    assert client.post(base, json={"leads": []}, headers=viewer).status_code == 403
    csv_headers = {**viewer, "Content-Type": "text/csv"}
    assert client.post(f"{base}/import", content=b"phone\n", headers=csv_headers).status_code == 403
    assert client.post(f"{base}/1/resolve", json={"action": "retry"}, headers=viewer).status_code == 403
    assert client.get(base, headers=viewer).status_code == 200
    operator = headers_for(ctx, owner, "operator")
    assert client.post(base, json={"leads": [{"phone": "+4915123456701"}]}, headers=operator).json()["accepted"] == 1
    assert client.get(base).status_code == 401


def test_another_workspaces_campaign_and_leads_are_not_found(client, ctx, owner, campaign):
    post_json(client, owner, campaign, [{"phone": "+4915123456701"}])
    lead_id = all_leads(ctx, campaign)[0]["id"]
    other = init_workspace(ctx, "Other", "owner@other.test")
    stranger = {"Authorization": f"Bearer {other['token']}"}
    base = f"/api/v1/campaigns/{campaign}/leads"
    for r in (client.get(base, headers=stranger), client.get(f"{base}/{lead_id}", headers=stranger),
              client.post(base, json={"leads": []}, headers=stranger),
              client.post(f"{base}/import", content=b"phone\n", headers={**stranger, "Content-Type": "text/csv"}),
              client.post(f"{base}/{lead_id}/resolve", json={"action": "retry"}, headers=stranger)):
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # A lead of another campaign, a non-numeric id and an absurd one are not found either.
    second = new_campaign(ctx, owner, name="Second")
    for bad in (f"/api/v1/campaigns/{second}/leads/{lead_id}", f"{base}/abc", f"{base}/-1",
                f"{base}/99999999999999999999999", f"{base}/{lead_id + 1000}"):
        r = client.get(bad, headers=owner["headers"])
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", bad


# --- listing and detail ---------------------------------------------------------------------

def test_listing_filters_searches_and_pages_by_cursor(client, ctx, owner, campaign):
    post_json(client, owner, campaign, [{"phone": f"+1650253{i:04d}", "first_name": f"Name{i}"} for i in range(7)])
    ids = [r["id"] for r in all_leads(ctx, campaign)]
    with ctx.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id.in_(ids[:3])).values(state="completed"))
    base = f"/api/v1/campaigns/{campaign}/leads"

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(base, params=params, headers=owner["headers"]).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in ids]

    page = client.get(base, params={"state": "completed"}, headers=owner["headers"]).json()
    assert [x["id"] for x in page["items"]] == [str(i) for i in ids[:3]] and page["next_cursor"] is None
    page = client.get(base, params={"state": "completed,not_contacted", "limit": 500}, headers=owner["headers"]).json()
    assert len(page["items"]) == 7
    page = client.get(base, params={"q": "name5"}, headers=owner["headers"]).json()
    assert [x["first_name"] for x in page["items"]] == ["Name5"]

    item = page["items"][0]
    assert set(item) >= {"id", "state", "current_step", "next_action_at", "phone", "email", "linkedin_url",
                         "first_name", "last_name", "timezone", "attributes", "last_error"}
    assert item["phone"] == "+16502530005" and item["attributes"] == {}
    assert item["next_action_at"].endswith(("Z", "+00:00"))

    for params in ({"state": "sleeping"}, {"cursor": "nope"}, {"limit": 501}, {"limit": 0}):
        r = client.get(base, params=params, headers=owner["headers"])
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", params


def insert_attempt(ctx, lead, campaign_id, step, status, n, **extra):
    now = ctx.clock()
    with ctx.db.begin() as conn:
        conn.execute(insert(attempts).values(
            lead_id=lead["id"], campaign_id=campaign_id, step=step, channel=extra.pop("channel", "whatsapp"), run=1,
            idempotency_key=f"{lead['id']}:{step}:{n}", status=status, created_at=now + timedelta(seconds=n),
            updated_at=now + timedelta(seconds=n), **extra))


def test_detail_lists_attempts_oldest_first(client, ctx, owner, campaign):
    post_json(client, owner, campaign, [{"phone": "+4915123456701"}])
    lead = all_leads(ctx, campaign)[0]
    insert_attempt(ctx, lead, campaign, 0, "failed", 1, error_code="sandbox:transient", error_class="transient")
    insert_attempt(ctx, lead, campaign, 0, "delivered", 2, provider_message_id="wamid.1")
    r = client.get(f"/api/v1/campaigns/{campaign}/leads/{lead['id']}", headers=owner["headers"])
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == str(lead["id"]) and body["phone"] == "+4915123456701"
    assert [(a["step"], a["channel"], a["status"], a["error_code"], a["error_class"], a["provider_message_id"])
            for a in body["attempts"]] == [(0, "whatsapp", "failed", "sandbox:transient", "transient", None),
                                           (0, "whatsapp", "delivered", None, None, "wamid.1")]
    assert set(body["attempts"][0]) >= {"step", "channel", "integration_id", "status", "provider_message_id",
                                        "error_code", "error_class", "created_at"}


# --- resolving in-doubt leads ---------------------------------------------------------------

def make_in_doubt(ctx, client, owner, campaign, step=0):
    post_json(client, owner, campaign, [{"phone": "+4915123456701", "email": "a@example.com"}])
    lead = all_leads(ctx, campaign)[0]
    with ctx.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id == lead["id"]).values(
            state="in_doubt", current_step=step, attempt_no=1))
    insert_attempt(ctx, lead, campaign, step, "in_doubt", 1, channel="whatsapp" if step == 0 else "email")
    return lead["id"]


def resolve(client, owner, campaign, lead_id, action):
    return client.post(f"/api/v1/campaigns/{campaign}/leads/{lead_id}/resolve", json={"action": action},
                       headers=owner["headers"])


def test_resolve_retry_makes_the_lead_due_again(client, ctx, owner):
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL])
    lead_id = make_in_doubt(ctx, client, owner, campaign)
    ctx_now = ctx.clock()
    r = resolve(client, owner, campaign, lead_id, "retry")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "not_contacted" and r.json()["current_step"] == 0
    assert [a["status"] for a in r.json()["attempts"]] == ["in_doubt"]  # the record stays
    lead = all_leads(ctx, campaign)[0]
    assert lead["next_action_at"] >= ctx_now - timedelta(seconds=5)
    with ctx.db.begin() as conn:
        entry = conn.execute(select(timeline).where(timeline.c.action == "lead_resolved")).mappings().one()
    assert entry["actor_type"] == "user" and entry["actor_id"] == owner["user_id"]
    assert entry["details"]["resolution"] == "retry" and entry["details"]["lead_id"] == str(lead_id)
    # Resolved once; a second answer is refused.
    r = resolve(client, owner, campaign, lead_id, "retry")
    assert r.status_code == 409
    assert r.json()["error"]["details"] == {"from": "not_contacted", "action": "resolve"}


def test_resolve_retry_on_a_later_step_keeps_the_lead_in_progress(client, ctx, owner):
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL])
    lead_id = make_in_doubt(ctx, client, owner, campaign, step=1)
    body = resolve(client, owner, campaign, lead_id, "retry").json()
    assert (body["state"], body["current_step"]) == ("in_progress", 1)


def test_resolve_mark_sent_advances_like_an_accepted_send(client, ctx, owner):
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL])
    lead_id = make_in_doubt(ctx, client, owner, campaign)
    before = ctx.clock()
    body = resolve(client, owner, campaign, lead_id, "mark_sent").json()
    assert (body["state"], body["current_step"]) == ("in_progress", 1)
    assert [a["status"] for a in body["attempts"]] == ["sent"]
    lead = all_leads(ctx, campaign)[0]
    # The next step waits its delay_seconds (3600) after the resolution.
    assert timedelta(seconds=3590) <= lead["next_action_at"] - before <= timedelta(seconds=3700)
    # Marking the last step sent completes the lead.
    with ctx.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id == lead_id).values(state="in_doubt"))
    insert_attempt(ctx, lead, campaign, 1, "in_doubt", 2, channel="email")
    body = resolve(client, owner, campaign, lead_id, "mark_sent").json()
    assert (body["state"], body["current_step"]) == ("completed", 2)
    assert [a["status"] for a in body["attempts"]] == ["sent", "sent"]


def test_resolve_mark_sent_of_a_linkedin_invitation_waits_for_acceptance(client, ctx, owner):
    invite = {"channel": "linkedin", "template": {"action": "invite", "body": "Hi"}, "delay_seconds": 0}
    message = {"channel": "linkedin", "template": {"action": "message", "body": "Thanks", "wait_seconds": 600},
               "delay_seconds": 0}
    campaign = new_campaign(ctx, owner, steps=[invite, message])
    post_json(client, owner, campaign, [{"linkedin_url": "https://www.linkedin.com/in/ann"}])
    lead = all_leads(ctx, campaign)[0]
    with ctx.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id == lead["id"]).values(state="in_doubt", attempt_no=1))
    insert_attempt(ctx, lead, campaign, 0, "in_doubt", 1, channel="linkedin")
    before = ctx.clock()
    body = resolve(client, owner, campaign, lead["id"], "mark_sent").json()
    assert (body["state"], body["current_step"]) == ("in_progress", 1)
    lead = all_leads(ctx, campaign)[0]
    assert lead["awaiting"] == "acceptance"
    assert timedelta(seconds=590) <= lead["next_action_at"] - before <= timedelta(seconds=700)


def test_resolve_needs_a_known_action_and_an_in_doubt_lead(client, ctx, owner, campaign):
    post_json(client, owner, campaign, [{"phone": "+4915123456701"}])
    lead_id = all_leads(ctx, campaign)[0]["id"]
    r = resolve(client, owner, campaign, lead_id, "forget")
    assert r.status_code == 422
    r = resolve(client, owner, campaign, lead_id, "mark_sent")
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_transition"


def test_json_that_postgresql_could_not_store_is_rejected_not_a_500(client, ctx, owner, campaign):
    body = b'{"leads": [{"phone": "+4915123456701", "first_name": "A\\u0000", "attributes": {"x": NaN}}]}'
    r = client.post(f"/api/v1/campaigns/{campaign}/leads", content=body,
                    headers={**owner["headers"], "Content-Type": "application/json"})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        assert r.json()["accepted"] == 0
        assert sorted(e["field"] for e in r.json()["rejected"][0]["errors"]) == ["attributes.x", "first_name"]


def test_racing_imports_of_the_same_people_enrol_each_once(ctx, owner, campaign, monkeypatch):
    import threading

    monkeypatch.setattr(lead_service, "BATCH_SIZE", 50)
    principal = Principal(owner["user_id"], owner["workspace_id"], "operator")
    people = [{"phone": f"+1650253{i:04d}", "email": f"p{i}@example.com"} for i in range(600)]
    results = []

    def run(order):
        results.append(lead_service.import_json(ctx, principal, campaign, order))

    threads = [threading.Thread(target=run, args=(people,)), threading.Thread(target=run, args=(people[::-1],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    assert sum(r["accepted"] for r in results) == 600 and sum(r["duplicates"] for r in results) == 600
    assert len(all_leads(ctx, campaign)) == 600


def test_a_batch_rolled_back_by_a_deadlock_is_redone(ctx, owner, campaign, monkeypatch):
    from sqlalchemy.exc import DBAPIError

    class Deadlock(Exception):
        sqlstate = "40P01"

    real, calls = lead_service._Importer._insert_batch, []

    def once_deadlocked(self):
        calls.append(1)
        if len(calls) == 1:
            raise DBAPIError("INSERT", {}, Deadlock())
        return real(self)

    monkeypatch.setattr(lead_service._Importer, "_insert_batch", once_deadlocked)
    principal = Principal(owner["user_id"], owner["workspace_id"], "operator")
    result = lead_service.import_json(ctx, principal, campaign, [{"phone": "+4915123456701"}])
    assert result["accepted"] == 1 and len(calls) == 2
