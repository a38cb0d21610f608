"""The 409 a resume through a still-dead key answers over HTTP (API.md v1.1, "Trust
without a person"): `resume_blocked`, gate `key_pool` with the key and the probe's
`error: {"code", "message"}`; nothing changes."""

from __future__ import annotations

from drumbeat.services.workspaces import create_user
from tests.engine.test_resume_checks_keys import TOKEN, paused_by_a_dead_key, whatsapp_key
from tests.factory import workspace

API = "/api/v1"


def test_resume_through_a_still_dead_key_answers_409_resume_blocked_with_the_probe_s_error(ctx, client,
                                                                                          whatsapp_server):
    p = workspace(ctx)
    key = whatsapp_key(ctx, p, whatsapp_server.base_url)
    cid = paused_by_a_dead_key(ctx, p, whatsapp_server, TOKEN)
    operator = create_user(ctx, p, "op@acme.test", "operator", None)
    headers = {"Authorization": f"Bearer {operator['token']}"}

    answer = client.post(f"{API}/campaigns/{cid}/resume", headers=headers)
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "resume_blocked"
    [gate] = [g for g in error["details"]["gates"] if g["gate"] == "key_pool"]
    assert gate["ok"] is False and gate["channel"] == "whatsapp" and gate["integration_id"] == key
    assert set(gate["error"]) == {"code", "message"} and gate["error"]["code"] == "whatsapp:190"
    assert "still fails its connection test" in gate["reason"]
    assert TOKEN not in answer.text
    assert client.get(f"{API}/campaigns/{cid}", headers=headers).json()["status"] == "paused"
