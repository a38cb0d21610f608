"""GET /campaigns/{id}/leads.csv (API.md v1.1): every lead of the campaign with the exact
header, cells safe to open in a spreadsheet, the last attempt's status, when the lead
replied and why it opted out; paged by id, so the pages join up to the whole campaign."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from sqlalchemy import insert, update

from drumbeat.services import lead_export
from drumbeat.services.context import Principal
from drumbeat.store.tables import attempts, leads, replies
from tests.api.test_callbacks import NOW, WhatsApp, sent_lead
from tests.api.test_replies import text_message, token
from tests.factory import add_leads, new_campaign, workspace

HEADER = ("lead_id,phone,email,linkedin_url,first_name,last_name,state,step,variant,last_status,last_error,"
          "replied_at,opted_out_reason")


def rows_of(text):
    return list(csv.reader(io.StringIO(text)))


def test_the_export_has_the_exact_header_and_one_row_per_lead_with_what_happened(ctx, client):
    wa = WhatsApp(ctx, client)
    replier = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.o1", phone="+14155550101", status="read")
    stopper = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.o2", phone="+14155550102")
    failed = sent_lead(ctx, wa.campaign, wa.key, message_id="wamid.o3", phone="+14155550103", state="failed",
                       status="failed")
    with ctx.db.begin() as conn:
        conn.execute(update(leads).where(leads.c.id == failed).values(last_error="whatsapp:131026"))
        conn.execute(update(attempts).where(attempts.c.lead_id == failed).values(error_code="whatsapp:131026"))
    wa.post(text_message("yes, call me", sender="14155550101", message_id="wamid.r1"))
    wa.post(text_message("STOP", sender="14155550102", message_id="wamid.r2"))
    with ctx.db.connect() as conn:
        replied_at = conn.execute(replies.select().where(replies.c.lead_id == replier)).mappings().one()["at"]
    viewer = token(ctx, wa.p, "viewer")
    answer = client.get(f"/api/v1/campaigns/{wa.campaign}/leads.csv", headers=viewer)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.text.split("\r\n")[0] == HEADER
    header, *body = rows_of(answer.text)
    by_id = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    assert list(by_id) == [str(replier), str(stopper), str(failed)]
    assert by_id[str(replier)] | {} == {
        "lead_id": str(replier), "phone": "'+14155550101", "email": "", "linkedin_url": "", "first_name": "",
        "last_name": "", "state": "replied", "step": "1", "variant": "", "last_status": "read", "last_error": "",
        "replied_at": replied_at.isoformat().replace("+00:00", "Z"), "opted_out_reason": ""}
    assert (by_id[str(stopper)]["state"], by_id[str(stopper)]["opted_out_reason"],
            by_id[str(stopper)]["replied_at"]) == ("opted_out", "stop_keyword", "")
    assert (by_id[str(failed)]["last_status"], by_id[str(failed)]["last_error"]) == ("failed", "whatsapp:131026")


def test_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted(ctx, client):
    p = workspace(ctx)
    cid = new_campaign(ctx, p)
    names = ["=HYPERLINK(\"http://evil\")", "+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "Plain, \"quoted\""]
    with ctx.db.begin() as conn:
        conn.execute(insert(leads), [{"campaign_id": cid, "phone": None, "email": f"n{i}@example.com",
                                      "first_name": name, "last_name": "O'Brien", "attributes": {},
                                      "state": "not_contacted", "current_step": 0, "next_action_at": NOW,
                                      "created_at": NOW, "updated_at": NOW} for i, name in enumerate(names)])
    text = "".join(lead_export.leads_csv(ctx, p, cid))
    header, *body = rows_of(text)
    assert [r[header.index("first_name")] for r in body] == [
        "'=HYPERLINK(\"http://evil\")", "'+1", "'-2", "'@SUM(A1)", "'\tTab", "'\rCR", "Plain, \"quoted\""]
    assert {r[header.index("last_name")] for r in body} == {"O'Brien"}


def test_pages_join_up_to_the_whole_campaign_in_id_order_and_leave_other_campaigns_out(ctx):
    p = workspace(ctx)
    cid, other = new_campaign(ctx, p), new_campaign(ctx, p, name="Other")
    add_leads(ctx, cid, 4)
    add_leads(ctx, other, 3, start=100)  # interleaved ids: a page must skip them
    add_leads(ctx, cid, 3, start=200)
    whole = "".join(lead_export.leads_csv(ctx, p, cid, page=1000))
    pieces = list(lead_export.leads_csv(ctx, p, cid, page=3))
    assert "".join(pieces) == whole and len(pieces) == 3  # header + 3, 3, then a short page of 1 ends it
    _, *body = rows_of(whole)
    ids = [int(r[0]) for r in body]
    assert len(ids) == 7 and ids == sorted(ids)
    assert {r[4] for r in body} == {f"Lead{i}" for i in (0, 1, 2, 3, 200, 201, 202)}


def test_an_empty_campaign_exports_the_header_alone(ctx):
    p = workspace(ctx)
    assert "".join(lead_export.leads_csv(ctx, p, new_campaign(ctx, p))) == HEADER + "\r\n"


def test_another_workspaces_campaign_is_not_found_and_a_token_is_needed(ctx, client):
    p = workspace(ctx)
    cid = new_campaign(ctx, p)
    stranger = token(ctx, workspace(ctx, "Globex"), "owner", "o@globex.example")
    answer = client.get(f"/api/v1/campaigns/{cid}/leads.csv", headers=stranger)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/campaigns/{cid}/leads.csv").status_code == 401


def test_a_lead_that_replied_before_replies_were_kept_shows_when_it_changed_state(ctx):
    p = workspace(ctx)
    cid = new_campaign(ctx, p)
    then = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    with ctx.db.begin() as conn:
        conn.execute(insert(leads).values(campaign_id=cid, phone="+14155550100", attributes={}, state="replied",
                                          current_step=1, next_action_at=then, created_at=then, updated_at=then))
    _, row = rows_of("".join(lead_export.leads_csv(ctx, Principal(p.user_id, p.workspace_id, "viewer"), cid)))
    assert row[11] == "2026-01-05T09:30:00Z"
