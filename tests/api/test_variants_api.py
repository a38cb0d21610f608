"""Variants and statistics over HTTP: bad input is a 422 naming the field, variants are
frozen once started (templates stay editable while paused), preview and test send choose
a variant, attempts carry theirs, and the stats endpoint answers its documented shape."""

from __future__ import annotations

import asyncio

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.domain import variants
from drumbeat.engine.worker import Worker
from tests.api.test_campaigns import API, act, create_campaign, create_sandbox, enroll, fields_of, get


def two(body_a: str = "Hello A {{first_name|friend}}", body_b: str = "Hello B", weights=(1, 1)) -> dict:
    return {"channel": "sms", "variants": [{"template": {"body": body_a}, "weight": weights[0]},
                                           {"template": {"body": body_b}, "weight": weights[1]}]}


def post(client, headers, steps):
    return client.post(f"{API}/campaigns", json={"name": "AB", "steps": steps}, headers=headers)


def test_bad_variants_are_refused_naming_the_field(client, owner):
    h = owner["headers"]
    one = {"channel": "sms", "variants": [{"template": {"body": "x"}, "weight": 1}]}
    six = {"channel": "sms", "variants": [{"template": {"body": "x"}, "weight": 1}] * 6}
    assert fields_of(post(client, h, [one])) == ["steps.0.variants"]
    assert fields_of(post(client, h, [six])) == ["steps.0.variants"]
    zero = two()
    zero["variants"][1]["weight"] = 0
    assert fields_of(post(client, h, [zero])) == ["steps.0.variants.1.weight"]
    both = {**two(), "template": {"body": "x"}}
    assert fields_of(post(client, h, [both])) == ["steps.0.variants"]
    blank = {"channel": "email", "variants": [{"template": {"subject": "s", "body": "b"}, "weight": 1},
                                              {"template": {"body": "no subject"}, "weight": 2}]}
    assert fields_of(post(client, h, [blank])) == ["steps.0.variants.1.template.subject"]
    assert fields_of(post(client, h, [{"channel": "sms"}])) == ["steps.0.template"]


def test_variants_are_stored_shown_and_frozen_once_started_but_templates_stay_editable(client, ctx, owner):
    h = owner["headers"]
    create_sandbox(client, h)
    campaign = create_campaign(client, h, steps=[two(weights=(3, 1))])
    cid = campaign["id"]
    assert campaign["steps"][0]["variants"] == [{"template": {"body": "Hello A {{first_name|friend}}"}, "weight": 3},
                                                {"template": {"body": "Hello B"}, "weight": 1}]
    enroll(ctx, cid)
    assert act(client, h, cid, "start").status_code == 200
    assert act(client, h, cid, "pause").status_code == 200

    def patch(steps):
        return client.patch(f"{API}/campaigns/{cid}", json={"steps": steps}, headers=h)

    for changed in ([two(weights=(1, 1))],  # reweighed
                    [{"channel": "sms", "variants": two()["variants"] + [{"template": {"body": "C"}, "weight": 1}]}],
                    [{"channel": "sms", "template": {"body": "one"}}]):  # variants removed
        response = patch(changed)
        assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_transition"
    edited = patch([two(body_b="Hello B, fixed", weights=(3, 1))])
    assert edited.status_code == 200, edited.text
    assert [v["template"]["body"] for v in get(client, h, cid)["steps"][0]["variants"]] == [
        "Hello A {{first_name|friend}}", "Hello B, fixed"]
    # Preview: the lead's own variant, or the one asked for.
    shown = client.get(f"{API}/campaigns/{cid}/preview", headers=h).json()
    lead_id = int(shown["lead_id"])
    own = variants.pick(lead_id, 0, [3, 1])
    assert shown["steps"][0]["variant"] == own
    assert shown["steps"][0]["rendered"]["text"] == ["Hello A friend", "Hello B, fixed"][own]
    other = client.get(f"{API}/campaigns/{cid}/preview", params={"variant": 1 - own}, headers=h).json()
    assert other["steps"][0]["rendered"]["text"] == ["Hello A friend", "Hello B, fixed"][1 - own]
    assert client.get(f"{API}/campaigns/{cid}/preview", params={"variant": 2}, headers=h).status_code == 422
    # Test send: the variant chosen is what leaves (sandbox answers accepted).
    sent = client.post(f"{API}/campaigns/{cid}/test", json={"step": 0, "to": {"phone": "+4915112345699"},
                                                            "variant": 1}, headers=h)
    assert sent.status_code == 200 and sent.json()["status"] == "accepted", sent.text
    assert fields_of(client.post(f"{API}/campaigns/{cid}/test", json={
        "step": 0, "to": {"phone": "+4915112345699"}, "variant": 3}, headers=h)) == ["variant"]


def test_attempts_carry_their_variant_and_stats_answer_per_step_and_variant(client, ctx, owner):
    h = owner["headers"]
    create_sandbox(client, h)
    cid = create_campaign(client, h, steps=[two(), {"channel": "sms", "template": {"body": "Plain"}}])["id"]
    for i in range(6):
        enroll(ctx, cid, phone=f"+491511234560{i}")
    assert act(client, h, cid, "start").status_code == 200
    asyncio.run(Worker(ctx, {"sandbox": SandboxAdapter()}).drain())
    listed = client.get(f"{API}/campaigns/{cid}/leads", headers=h).json()["items"]
    detail = client.get(f"{API}/campaigns/{cid}/leads/{listed[0]['id']}", headers=h).json()
    assert [(a["step"], a["variant"]) for a in detail["attempts"]] == [
        (0, variants.pick(int(listed[0]["id"]), 0, [1, 1])), (1, None)]
    stats = client.get(f"{API}/campaigns/{cid}/stats", params={"interval": "hour"}, headers=h)
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert [(s["step"], s["channel"], [v["variant"] for v in s["variants"]]) for s in body["steps"]] == [
        (0, "sms", [0, 1]), (1, "sms", [None])]
    assert sum(v["sent"] for v in body["steps"][0]["variants"]) == 6 == body["steps"][1]["variants"][0]["sent"]
    assert all(v["reply_rate"] in (0, None) for s in body["steps"] for v in s["variants"])
    assert sum(pt["sent"] for pt in body["series"]) == 12 and body["series"][-1]["at"].endswith("Z")
    assert client.get(f"{API}/campaigns/{cid}/stats", params={"interval": "week"}, headers=h).status_code == 422
    bad = client.get(f"{API}/campaigns/{cid}/stats", params={"from": "2026-03-02T00:00:00Z",
                                                             "to": "2026-03-01T00:00:00Z"}, headers=h)
    assert fields_of(bad) == ["to"]
    wide = client.get(f"{API}/campaigns/{cid}/stats", params={"interval": "hour", "from": "2020-01-01T00:00:00Z"},
                      headers=h)
    assert fields_of(wide) == ["from"]
