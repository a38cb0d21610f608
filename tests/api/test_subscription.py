"""The subscription over HTTP: canceled holds every sending campaign (nothing is sent,
state kept), nothing starts; renewed, the sweeper resumes what it paused (API.md)."""

from __future__ import annotations

from drumbeat.engine.sweeper import Sweeper
from tests.api.test_campaigns import API, act, create_campaign, create_sandbox, enroll, get, timeline


def subscription(client, headers, status: str):
    return client.put(f"{API}/workspace/subscription", json={"status": status}, headers=headers)


def test_canceling_the_subscription_pauses_sending_campaigns_and_blocks_starts(client, owner, ctx):
    headers = owner["headers"]
    create_sandbox(client, headers, "sms")
    sending = create_campaign(client, headers, name="sending")
    draft = create_campaign(client, headers, name="draft")
    for c in (sending, draft):
        enroll(ctx, c["id"])
    act(client, headers, sending["id"], "start")

    response = subscription(client, headers, "canceled")
    assert response.status_code == 200 and response.json()["subscription_status"] == "canceled"
    view = get(client, headers, sending["id"])
    assert view["status"] == "paused" and view["paused_reason"] == "subscription_canceled"
    assert view["paused_reason_text"].startswith("The workspace subscription is not active")
    assert view["paused_by"] == {"type": "system", "id": "subscription_canceled"}
    assert view["holds"][0]["reason"] == "subscription_canceled" and view["progress"]["not_contacted"] == 1

    blocked = act(client, headers, draft["id"], "start")
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "resume_blocked"
    gates = blocked.json()["error"]["details"]["gates"]
    assert {"gate": "subscription", "ok": False, "reason": "the workspace subscription is not active"} in gates
    assert get(client, headers, draft["id"])["status"] == "draft"  # nothing changed
    assert act(client, headers, sending["id"], "resume").status_code == 409

    assert subscription(client, headers, "active").json()["subscription_status"] == "active"
    assert get(client, headers, sending["id"])["status"] == "paused"  # only the sweeper lifts it
    Sweeper(ctx).sweep_once()
    assert get(client, headers, sending["id"])["status"] == "sending"
    lifted = [e for e in timeline(client, headers, sending["id"]) if e["action"] == "hold_lifted"]
    assert lifted[0]["actor"] == {"type": "system", "id": "sweeper"}


def test_only_the_owner_changes_the_subscription(client, owner):
    operator = client.post(f"{API}/users", json={"email": "op@acme.test", "role": "operator"},
                           headers=owner["headers"]).json()
    response = subscription(client, {"Authorization": f"Bearer {operator['token']}"}, "canceled")
    assert response.status_code == 403
    assert subscription(client, owner["headers"], "paused").status_code == 422
