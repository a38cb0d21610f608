"""A provider status that names an attempt (its key echoed back) settles it, before or after
its lease expired; another integration's status is ignored; the worker's answer and the
status never overwrite each other; the same delivery twice changes nothing (issue 21)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from drumbeat.channels.inbound import sign_sha256, sign_twilio
from drumbeat.domain.errors import ErrorClass
from drumbeat.store import claims
from drumbeat.store.tables import attempts, consent_events, leads, timeline
from tests.api.test_callbacks import integration
from tests.factory import new_campaign, workspace

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TWO_STEPS = [{"channel": "whatsapp", "template": {"name": "promo", "language": "en", "body": "Hi"}, "delay_seconds": 0},
             {"channel": "whatsapp", "template": {"name": "promo", "language": "en", "body": "Again"},
              "delay_seconds": 3600}]


def doubtful_lead(ctx, campaign_id, integration_id, *, state="in_doubt", status="in_doubt", lease_owner=None,
                  phone="+14155550100") -> tuple[int, int, str]:
    """A lead whose first step's attempt is `sending` (leased) or `in_doubt`: (lead, attempt, key)."""
    with ctx.db.begin() as conn:
        lead_id = conn.execute(insert(leads).values(
            campaign_id=campaign_id, phone=phone, attributes={}, state=state, current_step=0, attempt_no=1,
            next_action_at=T0, created_at=T0, updated_at=T0, lease_owner=lease_owner,
            lease_expires_at=T0 + timedelta(minutes=2) if lease_owner else None)).inserted_primary_key[0]
        key = f"{lead_id}:0:1"
        attempt_id = conn.execute(insert(attempts).values(
            lead_id=lead_id, campaign_id=campaign_id, step=0, channel="whatsapp", integration_id=integration_id,
            run=1, idempotency_key=key, status=status, created_at=T0, updated_at=T0,
            lease_expires_at=None if lease_owner else T0 + timedelta(minutes=2))).inserted_primary_key[0]
    return lead_id, attempt_id, key


def status_payload(message_id, status, key=None, error=None):
    s = {"id": message_id, "status": status, "timestamp": "1700000000", "recipient_id": "14155550100"}
    if key:
        s["biz_opaque_callback_data"] = key
    if error:
        s["errors"] = [error]
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "42"},
        "statuses": [s]}}]}]}


class Meta:
    def __init__(self, ctx, client, name="Acme", secret="meta-secret"):
        self.ctx, self.client, self.secret = ctx, client, secret
        self.p = workspace(ctx, name)
        self.key = integration(ctx, self.p, "whatsapp_cloud", "whatsapp",
                               {"access_token": "EAAG-token", "app_secret": secret}, {"phone_number_id": "42"})
        self.campaign = new_campaign(ctx, self.p, steps=TWO_STEPS)

    def post(self, payload) -> dict:
        body = json.dumps(payload).encode()
        answer = self.client.post(f"/webhooks/whatsapp/{self.key}", content=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": sign_sha256(body, self.secret)})
        assert answer.status_code == 200, answer.text
        return answer.json()


def row(ctx, table, id_):
    with ctx.db.connect() as conn:
        return conn.execute(select(table).where(table.c.id == id_)).mappings().one()


def test_a_status_after_the_lease_expired_settles_the_in_doubt_lead_which_goes_on_to_its_next_step(ctx, client):
    meta = Meta(ctx, client)
    lead_id, attempt_id, key = doubtful_lead(ctx, meta.campaign, meta.key)
    assert meta.post(status_payload("wamid.A", "sent", key))["changed"] == 1
    lead, attempt = row(ctx, leads, lead_id), row(ctx, attempts, attempt_id)
    assert attempt["status"] == "sent" and attempt["provider_message_id"] == "wamid.A"
    assert attempt["doubt_resolution"] == "provider_status"
    # exactly as if the answer had come: the next step, an hour after now (its delay)
    assert lead["state"] == "in_progress" and lead["current_step"] == 1 and lead["lease_owner"] is None
    assert lead["next_action_at"] > datetime.now(UTC) + timedelta(minutes=59)
    with ctx.db.connect() as conn:
        entry = conn.execute(select(timeline).where(timeline.c.campaign_id == meta.campaign,
                                                    timeline.c.action == "in_doubt_settled")).mappings().one()
    assert (entry["actor_type"], entry["actor_id"]) == ("system", "provider_status")
    assert entry["details"]["outcome"] == "settled" and entry["details"]["lead_ids"] == [str(lead_id)]
    # the same status again, and a later one naming the key: receipts forward only
    assert meta.post(status_payload("wamid.A", "sent", key))["changed"] == 0
    assert meta.post(status_payload("wamid.A", "delivered", key))["changed"] == 1
    assert row(ctx, attempts, attempt_id)["status"] == "delivered" and row(ctx, leads, lead_id)["current_step"] == 1


def test_a_status_before_the_lease_expired_settles_the_send_and_the_worker_answer_after_it_changes_nothing(
        ctx, client):
    meta = Meta(ctx, client)
    lead_id, attempt_id, key = doubtful_lead(ctx, meta.campaign, meta.key, state="not_contacted",
                                             status="sending", lease_owner="worker-1")
    assert meta.post(status_payload("wamid.B", "sent", key))["changed"] == 1
    settled_lead = row(ctx, leads, lead_id)
    assert settled_lead["current_step"] == 1 and settled_lead["lease_owner"] is None
    attempt = row(ctx, attempts, attempt_id)
    assert attempt["status"] == "sent" and attempt["doubt_resolution"] is None  # never in doubt
    # The worker, still alive, records what it saw (a timeout): neither row changes.
    with ctx.db.begin() as conn:
        claims.write_outcomes(conn, [{"id": attempt_id, "status": "failed", "provider_message_id": None,
                                      "error_code": "whatsapp:timeout", "error_class": ErrorClass.TRANSIENT,
                                      "error_message": "ReadTimeout", "counted_failure": False}],
                              [{"id": lead_id, "state": "not_contacted", "current_step": 0, "next_action_at": T0,
                                "retries": 1, "attempt_no": 1, "last_error": "whatsapp:timeout", "awaiting": None}],
                              owner="worker-1", now=T0, claimed={lead_id: (0, attempt_id)})
    assert row(ctx, attempts, attempt_id)["status"] == "sent"
    assert row(ctx, attempts, attempt_id)["provider_message_id"] == "wamid.B"
    assert dict(row(ctx, leads, lead_id)) == dict(settled_lead)


def test_the_worker_answer_first_then_the_status_changes_nothing_but_moves_the_receipt_forward(ctx, client):
    meta = Meta(ctx, client)
    lead_id, attempt_id, key = doubtful_lead(ctx, meta.campaign, meta.key, state="not_contacted",
                                             status="sending", lease_owner="worker-1")
    with ctx.db.begin() as conn:
        claims.write_outcomes(conn, [{"id": attempt_id, "status": "sent", "provider_message_id": "wamid.C",
                                      "error_code": None, "error_class": None, "error_message": None,
                                      "counted_failure": False}],
                              [{"id": lead_id, "state": "in_progress", "current_step": 1,
                                "next_action_at": T0 + timedelta(hours=1), "retries": 0, "attempt_no": 0,
                                "last_error": None, "awaiting": None}],
                              owner="worker-1", now=T0, claimed={lead_id: (0, attempt_id)})
    before = dict(row(ctx, leads, lead_id))
    assert meta.post(status_payload("wamid.C", "sent", key))["changed"] == 0
    assert dict(row(ctx, leads, lead_id)) == before
    assert meta.post(status_payload("wamid.C", "read", key))["changed"] == 1
    assert row(ctx, attempts, attempt_id)["status"] == "read" and dict(row(ctx, leads, lead_id)) == before


def test_a_status_naming_an_attempt_of_another_workspace_is_ignored(ctx, client):
    ours = Meta(ctx, client)
    theirs = Meta(ctx, client, name="Other", secret="other-secret")
    lead_id, attempt_id, key = doubtful_lead(ctx, ours.campaign, ours.key)
    assert theirs.post(status_payload("wamid.D", "sent", key))["changed"] == 0
    assert row(ctx, attempts, attempt_id)["status"] == "in_doubt"
    assert row(ctx, leads, lead_id)["state"] == "in_doubt"


def test_a_failed_status_settles_the_in_doubt_lead_by_its_error_class(ctx, client):
    meta = Meta(ctx, client)
    lead_id, attempt_id, key = doubtful_lead(ctx, meta.campaign, meta.key)
    undeliverable = {"code": 131026, "title": "Message undeliverable"}
    assert meta.post(status_payload("wamid.E", "failed", key, undeliverable))["changed"] == 1
    assert row(ctx, attempts, attempt_id)["status"] == "failed"
    lead = row(ctx, leads, lead_id)
    assert lead["state"] == "failed" and lead["last_error"] == "whatsapp:131026"


def test_twilio_status_callback_names_the_attempt_in_its_signed_url(ctx, client):
    p = workspace(ctx)
    key = integration(ctx, p, "twilio", "sms", {"account_sid": "AC123", "auth_token": "tw-token"},
                      {"from": "+14155550000"})
    cid = new_campaign(ctx, p, steps=[{"channel": "sms", "template": {"body": "Hi"}, "delay_seconds": 0}])
    lead_id, attempt_id, attempt_key = doubtful_lead(ctx, cid, key)
    url = f"http://testserver/webhooks/twilio/{key}?attempt={attempt_key.replace(':', '%3A')}"
    form = {"MessageSid": "SM7", "MessageStatus": "sent", "AccountSid": "AC123"}
    signed_without_query = sign_twilio(url.split("?")[0], form, "tw-token")
    assert client.post(url, data=form, headers={"X-Twilio-Signature": signed_without_query}).status_code == 401
    assert client.post(url, data=form, headers={"X-Twilio-Signature": sign_twilio(url, form, "tw-token")}
                       ).status_code == 200
    assert row(ctx, attempts, attempt_id)["status"] == "sent"
    assert row(ctx, leads, lead_id)["state"] == "completed"  # its only step


def test_the_same_inbound_stop_delivered_twice_changes_nothing_the_second_time(ctx, client):
    meta = Meta(ctx, client)
    stop = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "42"},
        "messages": [{"from": "14155550177", "id": "wamid.in-stop", "timestamp": "1700000001", "type": "text",
                      "text": {"body": "STOP"}}]}}]}]}

    def consent_rows():
        with ctx.db.connect() as conn:
            return conn.execute(select(func.count()).select_from(consent_events)).scalar_one()

    assert meta.post(stop)["changed"] == 1
    once = consent_rows()
    assert meta.post(stop)["changed"] == 0
    assert consent_rows() == once


# --- the campaign's in_doubt_policy -------------------------------------------------------------

def campaign_body(**extra) -> dict:
    return {"name": "Doubts", "steps": [{"channel": "whatsapp", "template": {"body": "Hi"}}], **extra}


def test_in_doubt_policy_is_a_campaign_field_and_a_silence_below_one_second_is_refused(client, owner):
    headers = owner["headers"]
    created = client.post("/api/v1/campaigns", json=campaign_body(), headers=headers).json()
    assert (created["in_doubt_policy"], created["in_doubt_silence_seconds"]) == ("ask", 900)
    for bad in ({"in_doubt_silence_seconds": 0}, {"in_doubt_policy": "guess"}):
        answer = client.post("/api/v1/campaigns", json=campaign_body(**bad), headers=headers)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "validation_error"
        answer = client.patch(f"/api/v1/campaigns/{created['id']}", json=bad, headers=headers)
        assert answer.status_code == 422
    patched = client.patch(f"/api/v1/campaigns/{created['id']}", headers=headers, json={
        "in_doubt_policy": "retry_after_silence", "in_doubt_silence_seconds": 1}).json()
    assert (patched["in_doubt_policy"], patched["in_doubt_silence_seconds"]) == ("retry_after_silence", 1)
    again = client.get(f"/api/v1/campaigns/{created['id']}", headers=headers).json()
    assert again["in_doubt_policy"] == "retry_after_silence"


def sweep_setup(ctx, client, policy, *, statuses: bool):
    from sqlalchemy import update

    from drumbeat.store.tables import campaigns, integrations

    meta = Meta(ctx, client)
    with ctx.db.begin() as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == meta.campaign)
                     .values(in_doubt_policy=policy, in_doubt_silence_seconds=60, status="sending"))
        if statuses:
            conn.execute(update(integrations).where(integrations.c.id == meta.key)
                         .values(last_status_at=datetime.now(UTC) - timedelta(minutes=5)))
    return meta


def actions(ctx, campaign_id) -> list[tuple[str, str, dict]]:
    with ctx.db.connect() as conn:
        return [(r.action, r.actor_id, r.details) for r in conn.execute(
            select(timeline).where(timeline.c.campaign_id == campaign_id, timeline.c.action.like("in_doubt_%"))
            .order_by(timeline.c.id))]


def test_retry_after_silence_retries_an_unsettled_attempt_once_where_statuses_arrive(ctx, client):
    from drumbeat.services import in_doubt

    meta = sweep_setup(ctx, client, "retry_after_silence", statuses=True)
    lead_id, attempt_id, _ = doubtful_lead(ctx, meta.campaign, meta.key)  # in doubt since March: silence passed
    report = in_doubt.sweep(ctx)
    assert report.retried == [lead_id]
    lead = row(ctx, leads, lead_id)
    assert lead["state"] == "not_contacted" and lead["next_action_at"] <= datetime.now(UTC)
    assert row(ctx, attempts, attempt_id)["doubt_resolution"] == "retried"  # kept as the record
    assert actions(ctx, meta.campaign)[-1][:2] == ("in_doubt_retried", "in_doubt_policy")
    assert in_doubt.sweep(ctx).retried == []  # judged once
    # The retry went in doubt too: a second retry of the step is not the policy's to make.
    with ctx.db.begin() as conn:
        conn.execute(insert(attempts).values(
            lead_id=lead_id, campaign_id=meta.campaign, step=0, channel="whatsapp", integration_id=meta.key, run=1,
            idempotency_key=f"{lead_id}:0:2", status="in_doubt", created_at=T0, updated_at=T0,
            lease_expires_at=T0 + timedelta(minutes=2)))
        conn.execute(leads.update().where(leads.c.id == lead_id).values(state="in_doubt"))
    report = in_doubt.sweep(ctx)
    assert (report.retried, report.left) == ([], [lead_id])
    assert actions(ctx, meta.campaign)[-1][2]["outcome"] == "left_for_a_person"


def test_without_provider_statuses_or_with_ask_the_attempt_is_left_for_a_person(ctx, client):
    from drumbeat.services import in_doubt

    for policy, statuses in (("retry_after_silence", False), ("ask", True)):
        meta = sweep_setup(ctx, client, policy, statuses=statuses)
        lead_id, _, _ = doubtful_lead(ctx, meta.campaign, meta.key)
        report = in_doubt.sweep(ctx)
        assert (report.retried, report.left) == ([], [lead_id])
        assert row(ctx, leads, lead_id)["state"] == "in_doubt"
        assert actions(ctx, meta.campaign)[-1][0] == "in_doubt_left"


def test_nothing_is_judged_before_the_silence_has_passed(ctx, client):
    from drumbeat.services import in_doubt

    meta = sweep_setup(ctx, client, "retry_after_silence", statuses=True)
    lead_id, attempt_id, _ = doubtful_lead(ctx, meta.campaign, meta.key)
    with ctx.db.begin() as conn:
        conn.execute(attempts.update().where(attempts.c.id == attempt_id)
                     .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=5)))
    report = in_doubt.sweep(ctx)
    assert (report.retried, report.left) == ([], [])
    assert row(ctx, leads, lead_id)["state"] == "in_doubt" and actions(ctx, meta.campaign) == []
