"""The replies inbox and the conversation in the dashboard (issues 22 and 23): newest
first with filters, the selected lead's conversation beside, opt-outs shown as such, reply
text escaped; operators mark a reply handled, a viewer sees no such button (the server's
refusal is in test_viewer_refusals.py); the leads page exports its leads as CSV."""

from __future__ import annotations

import csv
import io
import json
import re

from sqlalchemy import select

from drumbeat.channels.inbound import sign_sha256
from drumbeat.store.tables import audit_events, replies
from tests.api.test_callbacks import integration, sent_lead
from tests.api.test_replies import text_message
from tests.factory import new_campaign, workspace
from tests.web.conftest import page_csrf, sign_in


class Inbox:
    """A WhatsApp key with an app secret in the users' workspace, and leads it wrote to."""

    def __init__(self, ctx, client, owner):
        self.ctx, self.client = ctx, client
        self.key = integration(ctx, owner, "whatsapp_cloud", "whatsapp", {"access_token": "EAAG-token",
                               "app_secret": "meta-secret"}, {"phone_number_id": "42"})
        self.spring = new_campaign(ctx, owner, name="Spring promo")
        self.autumn = new_campaign(ctx, owner, name="Autumn promo")

    def lead(self, campaign, phone, message_id):
        return sent_lead(self.ctx, campaign, self.key, message_id=message_id, phone=phone)

    def receive(self, text, phone, message_id):
        body = json.dumps(text_message(text, sender=phone.lstrip("+"), message_id=message_id)).encode()
        answer = self.client.post(f"/webhooks/whatsapp/{self.key}", content=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": sign_sha256(body, "meta-secret")})
        assert answer.status_code == 200 and answer.json()["changed"] == 1


def setup_inbox(ctx, client, users):
    inbox = Inbox(ctx, client, users["owner"]["principal"])
    first = inbox.lead(inbox.spring, "+14155550101", "wamid.o1")
    second = inbox.lead(inbox.autumn, "+14155550102", "wamid.o2")
    inbox.receive("<script>alert(1)</script> call me", "+14155550101", "wamid.r1")
    inbox.receive("STOP", "+14155550102", "wamid.r2")
    return inbox, first, second


def reply_rows(html):
    return re.findall(r'data-testid="reply-text">(.*?)</span>', html, re.S)


def test_the_inbox_lists_replies_newest_first_escaped_with_opt_outs_shown_and_the_conversation_beside(
        ctx, client, users):
    inbox, first, _ = setup_inbox(ctx, client, users)
    sign_in(client, "viewer@acme.test")
    page = client.get("/replies")
    assert page.status_code == 200
    assert reply_rows(page.text) == ["STOP", "&lt;script&gt;alert(1)&lt;/script&gt; call me"]
    assert "<script>alert(1)</script>" not in page.text
    assert page.text.count('data-testid="opt-out-chip"') >= 1
    assert "Mark handled" not in page.text and 'action="/replies/' not in page.text  # a viewer sees no action
    chosen = client.get("/replies", params={"reply": _reply_id(ctx, first)})
    conversation = chosen.text.split('data-testid="conversation"')[1]
    assert 'data-direction="out"' in conversation and "&lt;script&gt;alert(1)&lt;/script&gt; call me" in conversation
    assert f'/campaigns/{inbox.spring}/leads/{first}' in chosen.text


def test_the_inbox_filters_by_campaign_channel_and_handled(ctx, client, users):
    inbox, first, _ = setup_inbox(ctx, client, users)
    sign_in(client, "operator@acme.test")
    assert reply_rows(client.get("/replies", params={"campaign": inbox.spring}).text) == [
        "&lt;script&gt;alert(1)&lt;/script&gt; call me"]
    assert reply_rows(client.get("/replies", params={"channel": "sms"}).text) == []
    assert len(reply_rows(client.get("/replies", params={"channel": "whatsapp"}).text)) == 2
    assert client.get("/replies", params={"campaign": "f" * 32}).status_code == 404
    reply_id = _reply_id(ctx, first)
    form = {"csrf": page_csrf(client), "back": "/replies?handled=false"}
    done = client.post(f"/replies/{reply_id}/handled", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/replies?handled=false&done=reply-handled"
    assert reply_rows(client.get("/replies", params={"handled": "false"}).text) == ["STOP"]
    assert reply_rows(client.get("/replies", params={"handled": "true"}).text) == [
        "&lt;script&gt;alert(1)&lt;/script&gt; call me"]
    with ctx.db.connect() as conn:
        entry = conn.execute(select(audit_events).where(audit_events.c.object_type == "reply")).mappings().one()
    assert entry["object_id"] == reply_id and entry["actor_type"] == "user"
    assert entry["user_id"] == users["operator"]["principal"].user_id


def test_a_mark_handled_post_from_elsewhere_is_refused(ctx, client, users):
    _, first, _ = setup_inbox(ctx, client, users)
    sign_in(client, "operator@acme.test")
    forged = client.post(f"/replies/{_reply_id(ctx, first)}/handled", data={"csrf": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    with ctx.db.connect() as conn:
        assert conn.execute(select(replies.c.handled)).scalars().all() == [False, False]


def test_the_lead_page_shows_the_conversation(ctx, client, users):
    inbox, first, second = setup_inbox(ctx, client, users)
    sign_in(client, "viewer@acme.test")
    page = client.get(f"/campaigns/{inbox.spring}/leads/{first}").text
    talk = page.split('data-testid="conversation"')[1].split("</section>")[0]
    assert talk.index('data-direction="out"') < talk.index('data-direction="in"')
    assert "&lt;script&gt;alert(1)&lt;/script&gt; call me" in talk and "<script>alert" not in page
    stop = client.get(f"/campaigns/{inbox.autumn}/leads/{second}").text.split('data-testid="conversation"')[1]
    assert 'data-testid="opt-out-chip"' in stop


def test_the_nav_links_the_inbox_and_the_leads_page_exports_its_leads(ctx, client, users):
    inbox, first, _ = setup_inbox(ctx, client, users)
    sign_in(client, "viewer@acme.test")
    assert 'href="/replies"' in client.get("/campaigns").text
    leads_page = client.get(f"/campaigns/{inbox.spring}/leads").text
    assert f'href="/campaigns/{inbox.spring}/leads.csv"' in leads_page
    export = client.get(f"/campaigns/{inbox.spring}/leads.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0][0] == "lead_id" and [r[0] for r in rows[1:]] == [str(first)]
    other = new_campaign(ctx, workspace(ctx, "Globex"), name="Theirs")
    assert client.get(f"/campaigns/{other}/leads.csv").status_code == 404


def _reply_id(ctx, lead_id) -> str:
    with ctx.db.connect() as conn:
        return str(conn.execute(select(replies.c.id).where(replies.c.lead_id == lead_id)).scalar_one())
