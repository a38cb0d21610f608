"""Outbound webhooks: registered by the owner, fed by a durable outbox written with each
event, delivered signed, retried with backoff while the receiver is down, in order per
campaign, with a delivery log (API.md; DESIGN.md §8); signed the Standard Webhooks way too,
deletable, and given up after their last try (issue 21)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from drumbeat.domain.backoff import MAX_WEBHOOK_TRIES
from drumbeat.engine.notifier import Notifier
from drumbeat.services import integrations as integration_service
from drumbeat.services.context import Principal
from drumbeat.services.workspaces import init_workspace
from tests.api.test_campaigns import API, act, create_campaign, create_sandbox, enroll

SECRET = "whsec-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A real HTTP server that records what it is sent; started only when asked."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[dict, str, bytes]] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []  # path, every header, body
        self.server: ThreadingHTTPServer | None = None

    def up(self, status: int = 204) -> None:
        received, requests = self.received, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((json.loads(body), self.headers["X-Drumbeat-Signature"], body))
                requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def register(client, headers, url: str, events=None, secret: str | None = SECRET):
    return client.post(f"{API}/webhooks", json={"url": url, "events": events or [
        "campaign.paused", "campaign.resumed", "campaign.hold_placed", "campaign.hold_lifted",
        "campaign.completed", "campaign.failed", "lead.in_doubt"], **({"secret": secret} if secret else {})},
        headers=headers)


def notify(ctx, rounds: int) -> None:
    async def main():
        notifier = Notifier(ctx, base_delay=0.02, max_delay=0.1, timeout=2)
        import httpx

        async with httpx.AsyncClient() as notifier.client:
            for _ in range(rounds):
                await notifier.deliver_due()
                await asyncio.sleep(0.03)

    asyncio.run(main())


def test_the_owner_registers_a_webhook_whose_secret_is_never_shown_whole(client, owner):
    response = register(client, owner["headers"], "https://hooks.example.com/drumbeat", ["campaign.paused"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["secret"] == "****6789" and body["events"] == ["campaign.paused"]
    listed = client.get(f"{API}/webhooks", headers=owner["headers"]).json()["items"]
    assert [w["id"] for w in listed] == [body["id"]]
    assert client.get(f"{API}/webhooks/{body['id']}/deliveries", headers=owner["headers"]).json()["items"] == []


def test_only_the_owner_manages_webhooks_and_bad_input_is_refused(client, owner):
    operator = client.post(f"{API}/users", json={"email": "op@acme.test", "role": "operator"},
                           headers=owner["headers"]).json()
    op_headers = {"Authorization": f"Bearer {operator['token']}"}
    assert register(client, op_headers, "https://x.example.com/h").status_code == 403
    assert client.get(f"{API}/webhooks", headers=op_headers).status_code == 403
    bad = client.post(f"{API}/webhooks", json={"url": "ftp://x", "secret": SECRET, "events": ["campaign.bored"]},
                      headers=owner["headers"])
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["error"]["details"]["fields"]} >= {"url", "events.0"}
    assert client.get(f"{API}/webhooks/nope/deliveries", headers=owner["headers"]).status_code == 404


def test_another_workspaces_webhook_deliveries_are_not_found_exactly_like_an_unknown_webhook(client, owner, ctx):
    hook = register(client, owner["headers"], "https://hooks.example.com/drumbeat").json()
    create_sandbox(client, owner["headers"], "sms")
    campaign = create_campaign(client, owner["headers"])
    enroll(ctx, campaign["id"])
    assert act(client, owner["headers"], campaign["id"], "start").status_code == 200
    assert act(client, owner["headers"], campaign["id"], "pause").status_code == 200  # a delivery to hide
    mine = client.get(f"{API}/webhooks/{hook['id']}/deliveries", headers=owner["headers"])
    assert [d["event"] for d in mine.json()["items"]] == ["campaign.paused"]
    rival = init_workspace(ctx, "Rival", "boss@rival.test")
    rival_headers = {"Authorization": f"Bearer {rival['token']}"}

    foreign = client.get(f"{API}/webhooks/{hook['id']}/deliveries", headers=rival_headers)
    unknown = client.get(f"{API}/webhooks/{'0' * 32}/deliveries", headers=rival_headers)

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert set(foreign.json()["error"]) == set(unknown.json()["error"])
    assert client.get(f"{API}/webhooks/{hook['id']}/deliveries", headers=owner["headers"]).json() == mine.json()


def test_events_wait_while_the_receiver_is_down_then_all_arrive_in_order_signed(client, owner, ctx):
    receiver = Receiver(free_port())
    hook = register(client, owner["headers"], f"http://127.0.0.1:{receiver.port}/hook").json()
    headers = owner["headers"]
    integration = create_sandbox(client, headers, "sms")
    campaigns = []
    for name in ("first", "second"):
        campaign = create_campaign(client, headers, name=name)
        enroll(ctx, campaign["id"])
        assert act(client, headers, campaign["id"], "start").status_code == 200
        campaigns.append(campaign["id"])
    principal = Principal(owner["user_id"], owner["workspace_id"], "owner")
    integration_service.record_health_event(ctx, principal, integration["id"], "disconnected")  # hold + pause
    for cid in campaigns:
        act(client, headers, cid, "pause")  # system pause becomes manual: a second paused event
    integration_service.record_health_event(ctx, principal, integration["id"], "reconnected")
    for cid in campaigns:
        assert act(client, headers, cid, "resume").status_code == 200

    notify(ctx, rounds=5)  # the receiver is down: every try fails and is logged
    deliveries = client.get(f"{API}/webhooks/{hook['id']}/deliveries", headers=headers).json()["items"]
    assert deliveries and all(d["state"] == "pending" for d in deliveries)
    heads = [d for d in deliveries if d["attempts"]]
    assert len(heads) == 2  # only the head of each campaign's queue is tried: order is kept
    assert heads[0]["attempts"] >= 2 and heads[0]["log"][0]["status_code"] is None
    assert "ConnectError" in heads[0]["log"][0]["error"]

    receiver.up()
    try:
        deadline = time.monotonic() + 30
        while any(d["state"] == "pending" for d in
                  client.get(f"{API}/webhooks/{hook['id']}/deliveries", headers=headers).json()["items"]):
            assert time.monotonic() < deadline
            notify(ctx, rounds=3)
    finally:
        receiver.down()

    expected = ["campaign.hold_placed", "campaign.paused", "campaign.paused", "campaign.resumed",
                "campaign.hold_lifted"]
    for cid in campaigns:
        got = [body for body, _, _ in receiver.received if body["campaign"]["id"] == cid]
        assert [b["event"] for b in got] == expected
        assert got[1]["campaign"]["paused_reason"] == "account_disconnected"
        assert got[1]["details"]["channel"] == "sms"
        assert got[2]["details"]["actor"]["type"] == "user"
    assert len(receiver.received) == 2 * len(expected)
    for _, sig, raw in receiver.received:
        assert sig == "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    log = client.get(f"{API}/webhooks/{hook['id']}/deliveries", headers=headers).json()["items"]
    assert all(d["state"] == "delivered" and d["last_status_code"] == 204 for d in log)


# --- Standard Webhooks, deletion, and deliveries that are given up (issue 21) ------------

def _paused_campaign(client, ctx, headers) -> str:
    create_sandbox(client, headers, "sms")
    campaign = create_campaign(client, headers)
    enroll(ctx, campaign["id"])
    assert act(client, headers, campaign["id"], "start").status_code == 200
    assert act(client, headers, campaign["id"], "pause").status_code == 200  # one campaign.paused event
    return campaign["id"]


def _deliveries(client, headers, hook_id: str) -> list[dict]:
    response = client.get(f"{API}/webhooks/{hook_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_webhook_made_without_a_secret_gets_a_whsec_secret_shown_once(client, owner):
    created = register(client, owner["headers"], "https://hooks.example.com/drumbeat", secret=None)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[len("whsec_"):])) == 32
    listed = client.get(f"{API}/webhooks", headers=owner["headers"]).json()["items"]
    assert listed[0]["secret"] == "****" + secret[-4:]  # masked from then on
    other = register(client, owner["headers"], "https://hooks.example.com/other", secret=None).json()["secret"]
    assert other != secret


def test_deliveries_carry_standard_webhooks_headers_that_the_reference_library_verifies(client, owner, ctx):
    receiver = Receiver(free_port())
    url = f"http://127.0.0.1:{receiver.port}"
    generated = register(client, owner["headers"], f"{url}/generated", secret=None).json()
    plain = register(client, owner["headers"], f"{url}/plain").json()  # SECRET: no whsec_ prefix
    _paused_campaign(client, ctx, owner["headers"])
    receiver.up()
    try:
        notify(ctx, rounds=3)
    finally:
        receiver.down()
    by_path = {path: (headers, body) for path, headers, body in receiver.requests}
    assert set(by_path) == {"/generated", "/plain"}
    # The reference verifier: a whsec_ secret as the spec writes it; any other as its UTF-8 bytes.
    for path, verifier in (("/generated", StandardWebhook(generated["secret"])),
                           ("/plain", StandardWebhook(SECRET.encode()))):
        headers, body = by_path[path]
        assert verifier.verify(body, headers)["event"] == "campaign.paused"
        assert headers["webhook-id"] == headers["X-Drumbeat-Delivery"]
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
        assert headers["webhook-signature"].startswith("v1,")
        # The signature covers the id and the time, not only the body: a captured delivery
        # replayed later with a fresh timestamp, or as another message, is refused.
        for changed in ({"webhook-timestamp": str(int(headers["webhook-timestamp"]) + 60)},
                        {"webhook-id": headers["webhook-id"] + "0"}):
            with pytest.raises(WebhookVerificationError):
                verifier.verify(body, {**headers, **changed})
        with pytest.raises(WebhookVerificationError):
            verifier.verify(body.replace(b"paused", b"resumed"), headers)
    # ...and the old signature still stands beside it.
    headers, body = by_path["/plain"]
    assert headers["X-Drumbeat-Signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert [d["state"] for d in _deliveries(client, owner["headers"], plain["id"])] == ["delivered"]


def test_the_owner_deletes_a_webhook_and_its_pending_deliveries_go_nowhere(client, owner, ctx):
    receiver = Receiver(free_port())
    hook = register(client, owner["headers"], f"http://127.0.0.1:{receiver.port}/hook").json()
    kept = register(client, owner["headers"], f"http://127.0.0.1:{receiver.port}/kept").json()
    _paused_campaign(client, ctx, owner["headers"])
    assert len(_deliveries(client, owner["headers"], hook["id"])) == 1  # pending

    assert client.delete(f"{API}/webhooks/{hook['id']}", headers=owner["headers"]).status_code == 204

    assert [w["id"] for w in client.get(f"{API}/webhooks", headers=owner["headers"]).json()["items"]] == [kept["id"]]
    assert client.get(f"{API}/webhooks/{hook['id']}/deliveries", headers=owner["headers"]).status_code == 404
    assert client.delete(f"{API}/webhooks/{hook['id']}", headers=owner["headers"]).status_code == 404
    receiver.up()
    try:
        notify(ctx, rounds=3)
    finally:
        receiver.down()
    assert [path for path, _, _ in receiver.requests] == ["/kept"]
    entry = client.get(f"{API}/audit", params={"object_type": "webhook"}, headers=owner["headers"]).json()["items"][0]
    assert (entry["action"], entry["object_id"]) == ("deleted", hook["id"])
    assert entry["details"]["url"] == hook["url"]


def test_only_the_owner_deletes_and_another_workspaces_webhook_is_not_found_like_an_unknown_one(client, owner, ctx):
    hook = register(client, owner["headers"], "https://hooks.example.com/drumbeat").json()
    operator = client.post(f"{API}/users", json={"email": "op@acme.test", "role": "operator"},
                           headers=owner["headers"]).json()
    assert client.delete(f"{API}/webhooks/{hook['id']}",
                         headers={"Authorization": f"Bearer {operator['token']}"}).status_code == 403
    rival = {"Authorization": f"Bearer {init_workspace(ctx, 'Rival', 'boss@rival.test')['token']}"}

    foreign = client.delete(f"{API}/webhooks/{hook['id']}", headers=rival)
    unknown = client.delete(f"{API}/webhooks/{'0' * 32}", headers=rival)

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert [w["id"] for w in client.get(f"{API}/webhooks", headers=owner["headers"]).json()["items"]] == [hook["id"]]


def test_a_delivery_is_given_up_after_its_last_try_and_the_next_of_its_campaign_goes_on(client, owner, ctx):
    receiver = Receiver(free_port())
    hook = register(client, owner["headers"], f"http://127.0.0.1:{receiver.port}/hook").json()
    cid = _paused_campaign(client, ctx, owner["headers"])
    assert act(client, owner["headers"], cid, "resume").status_code == 200  # a second event, queued behind
    receiver.up(status=500)  # answers, but never 2xx
    try:
        deadline = time.monotonic() + 60
        while any(d["state"] == "pending" for d in _deliveries(client, owner["headers"], hook["id"])):
            assert time.monotonic() < deadline
            notify(ctx, rounds=5)
    finally:
        receiver.down()
    resumed, paused = _deliveries(client, owner["headers"], hook["id"])  # newest first
    for delivery in (paused, resumed):
        assert delivery["state"] == "failed" and delivery["failed_at"] is not None
        assert delivery["attempts"] == MAX_WEBHOOK_TRIES and len(delivery["log"]) == MAX_WEBHOOK_TRIES
        assert {t["status_code"] for t in delivery["log"]} == {500}
        assert delivery["next_attempt_at"] is None and delivery["delivered_at"] is None
    assert resumed["log"][0]["at"] >= paused["failed_at"]  # in order: the second waited for the first
    assert len(receiver.requests) == 2 * MAX_WEBHOOK_TRIES  # and nothing was tried after the last try
