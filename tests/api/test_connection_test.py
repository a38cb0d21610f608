"""`POST /api/v1/integrations/{id}/test`: the provider's answer to one cheap authenticated
read, against the local fakes; nothing recorded (API.md v1.1)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.services.workspaces import init_workspace
from drumbeat.store import tables
from tests.api.test_campaigns import API, create_campaign, create_sandbox, enroll
from tests.api.test_content import user
from tests.fakes.providers import QUIET_SMTP, free_port

WA_TOKEN = "EAAG-connection-test-token-f00d"
TW_SID, TW_TOKEN = "AC0123456789abcdef0123456789abcdef", "twilio-auth-token-9f8e7d"
UNIPILE_KEY, UNIPILE_ACCOUNT = "unipile-api-key-7c1d2e", "acc_3H-KVe-mQ2GT9M0"


def create(client, headers, body: dict) -> dict:
    response = client.post(f"{API}/integrations", json={"label": "key", **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def probe(client, headers, integration_id: str):
    return client.post(f"{API}/integrations/{integration_id}/test", headers=headers)


def whatsapp(base_url: str) -> dict:
    return {"channel": "whatsapp", "provider": "whatsapp_cloud", "credentials": {"access_token": WA_TOKEN},
            "config": {"phone_number_id": "106540352242922", "base_url": f"{base_url}/v23.0"}}


def twilio(base_url: str) -> dict:
    return {"channel": "sms", "provider": "twilio", "credentials": {"account_sid": TW_SID, "auth_token": TW_TOKEN},
            "config": {"from": "+15005550006", "base_url": base_url}}


def unipile(base_url: str) -> dict:
    return {"channel": "linkedin", "provider": "unipile", "credentials": {"api_key": UNIPILE_KEY},
            "config": {"account_id": UNIPILE_ACCOUNT, "base_url": base_url}}


@pytest.mark.parametrize(("make", "server", "key", "code"), [
    (whatsapp, "whatsapp_server", WA_TOKEN, "whatsapp:190"),
    (twilio, "twilio_server", TW_SID, "twilio:20003"),
    (unipile, "unipile_server", UNIPILE_ACCOUNT, "unipile:disconnected_account"),
])
def test_each_http_provider_answers_ok_then_its_own_code_once_the_key_fails(client, owner, request, make, server,
                                                                             key, code):
    fake = request.getfixturevalue(server)
    integration = create(client, owner["headers"], make(fake.base_url))

    good = probe(client, owner["headers"], integration["id"])
    assert good.status_code == 200, good.text
    assert good.json() == {"ok": True, "error": None}

    fake.fail_key(key)
    bad = probe(client, owner["headers"], integration["id"]).json()
    assert bad["ok"] is False and bad["error"]["code"] == code and bad["error"]["message"]
    assert [c.kind for c in fake.calls(sends_only=False)] == ["probe", "probe"]


@pytest.mark.parametrize("make", [whatsapp, twilio, unipile])
def test_a_provider_that_is_down_is_not_ok_with_a_transient_code(client, owner, make):
    integration = create(client, owner["headers"], make(f"http://127.0.0.1:{free_port()}"))

    body = probe(client, owner["headers"], integration["id"]).json()

    assert body["ok"] is False
    assert body["error"]["code"] == f"{integration['provider'].split('_')[0]}:connection"


@pytest.mark.filterwarnings(QUIET_SMTP)
def test_smtp_logs_in_and_a_wrong_password_is_smtp_535(client, owner, smtp_server):
    body = {"channel": "email", "provider": "smtp", "config": smtp_server.config()}
    good = create(client, owner["headers"], {**body, "credentials": {"username": "mailer", "password": "s3cret-pass"}})
    wrong = create(client, owner["headers"], {**body, "credentials": {"username": "mailer", "password": "wrong"}})

    assert probe(client, owner["headers"], good["id"]).json() == {"ok": True, "error": None}
    refused = probe(client, owner["headers"], wrong["id"]).json()
    assert refused["ok"] is False and refused["error"]["code"] == "smtp:535"
    assert smtp_server.deliveries == [] and smtp_server.rcpts == []


@pytest.mark.parametrize(("fail", "expected"), [
    (None, {"ok": True, "error": None}),
    ("key", {"ok": False, "error": {"code": "sandbox:key", "message": "sandbox: the API key was rejected"}}),
])
def test_the_sandbox_answers_its_scripted_fail(client, owner, fail, expected):
    integration = create_sandbox(client, owner["headers"], config={"fail": fail})

    assert probe(client, owner["headers"], integration["id"]).json() == expected


def every_row(ctx) -> dict:
    """Every table the engine, a key mark, a hold, a health change or a notification touches."""
    names = ["workspaces", "integrations", "campaigns", "holds", "key_failures", "leads", "attempts", "timeline",
             "send_counters", "webhook_deliveries", "email_notifications"]
    with ctx.db.connect() as conn:
        return {name: sorted((dict(r) for r in conn.execute(select(getattr(tables, name))).mappings()), key=repr)
                for name in names}


def test_a_failing_probe_of_a_key_in_a_sending_campaign_changes_nothing(client, ctx, owner, whatsapp_server):
    h = owner["headers"]
    create_sandbox(client, h, config={"fail": "key"})
    wa = create(client, h, whatsapp(whatsapp_server.base_url))
    campaign = create_campaign(client, h)
    enroll(ctx, campaign["id"])
    assert client.post(f"{API}/campaigns/{campaign['id']}/start", headers=h).status_code == 200
    whatsapp_server.fail_key(WA_TOKEN)
    before = every_row(ctx)

    sandbox_id = next(i["id"] for i in client.get(f"{API}/integrations", headers=h).json()["items"]
                      if i["provider"] == "sandbox")
    assert probe(client, h, sandbox_id).json()["error"]["code"] == "sandbox:key"
    assert probe(client, h, wa["id"]).json()["error"]["code"] == "whatsapp:190"

    assert every_row(ctx) == before
    assert {i["state"] for i in client.get(f"{API}/integrations", headers=h).json()["items"]} == {"active"}


def test_an_operator_may_test_a_viewer_may_not_and_another_workspace_sees_no_such_integration(
        client, ctx, owner):
    integration = create_sandbox(client, owner["headers"])
    rival = init_workspace(ctx, "Rival", "boss@rival.test")

    assert probe(client, user(client, owner, "operator"), integration["id"]).json()["ok"] is True
    forbidden = probe(client, user(client, owner, "viewer"), integration["id"])
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    unknown = probe(client, {"Authorization": f"Bearer {rival['token']}"}, integration["id"])
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_an_adapter_that_raises_is_an_answer_not_a_500(client, owner, monkeypatch):
    integration = create_sandbox(client, owner["headers"])

    async def broken(self, credential):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(SandboxAdapter, "probe", broken)
    response = probe(client, owner["headers"], integration["id"])

    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": {"code": "sandbox:exception", "message": "RuntimeError"}}
