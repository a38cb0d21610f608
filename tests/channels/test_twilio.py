"""The Twilio SMS and voice adapter against the local fake of the 2010-04-01 API."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import httpx
import pytest

from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.errors import OPT_OUT_CODES
from drumbeat.channels.transport import provider_client
from drumbeat.channels.twilio import DEFAULT_BASE_URL, TwilioAdapter
from drumbeat.domain.errors import ErrorClass

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token-9f8e7d"
TO = "+4915112345678"


def credential(fake=None, channel: str = "sms", sender: str = "+15005550006", **config) -> Credential:
    cfg = {"from": sender}
    if fake is not None:
        cfg["base_url"] = fake.base_url
    return Credential("int-tw-1", "twilio", channel, {"account_sid": SID, "auth_token": TOKEN}, {**cfg, **config})


def sms(body: str = "Hi Ada, spring promo!", to: str = TO) -> OutboundMessage:
    return OutboundMessage("sms", to, body, "lead1:0:1")


def call(body: str = "Hello Ada & co <3", to: str = TO) -> OutboundMessage:
    return OutboundMessage("voice", to, body, "lead1:1:1")


async def test_an_sms_is_created_with_basic_auth_and_form_fields(twilio_server, http):
    result = await TwilioAdapter(http).send(credential(twilio_server), sms())

    assert result.accepted and result.provider_message_id.startswith("SM")
    (request,) = twilio_server.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.body == {"To": TO, "From": "+15005550006", "Body": "Hi Ada, spring promo!"}
    assert request.answer["sid"] == result.provider_message_id and request.answer["status"] == "queued"


async def test_a_voice_step_creates_a_call_saying_the_escaped_body(twilio_server, http):
    result = await TwilioAdapter(http).send(credential(twilio_server, channel="voice"), call())

    assert result.accepted and result.provider_message_id.startswith("CA")
    (request,) = twilio_server.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Calls.json"
    assert request.body == {"To": TO, "From": "+15005550006",
                            "Twiml": "<Response><Say>Hello Ada &amp; co &lt;3</Say></Response>"}


async def test_a_messaging_service_sender_and_a_status_callback_are_passed_on(twilio_server, http):
    cred = credential(twilio_server, sender="MG00000000000000000000000000000001",
                      status_callback="https://drumbeat.example/hooks/twilio")
    result = await TwilioAdapter(http).send(cred, sms())

    assert result.accepted
    assert twilio_server.requests[0].body == {
        "To": TO, "MessagingServiceSid": "MG00000000000000000000000000000001", "Body": "Hi Ada, spring promo!",
        "StatusCallback": "https://drumbeat.example/hooks/twilio"}


async def test_the_default_base_url_is_api_twilio_com():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), parse_qs(request.content.decode())))
        return httpx.Response(201, json={"sid": "SMx", "status": "queued"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await TwilioAdapter(client).send(credential(), sms())
    assert DEFAULT_BASE_URL == "https://api.twilio.com"
    assert result.provider_message_id == "SMx"
    assert seen == [(f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json",
                     {"To": [TO], "From": ["+15005550006"], "Body": ["Hi Ada, spring promo!"]})]


@pytest.mark.parametrize(("script", "code", "expected"), [
    (lambda f: f.fail_key(SID, code=20003), "twilio:20003", ErrorClass.KEY),
    (lambda f: f.fail_key(SID, code=20005), "twilio:20005", ErrorClass.KEY),
    (lambda f: f.fail_key(SID, code=10001), "twilio:10001", ErrorClass.KEY),
    (lambda f: f.fail_key(SID, code=21606), "twilio:21606", ErrorClass.KEY),
    (lambda f: f.fail_key(SID, code=21660), "twilio:21660", ErrorClass.KEY),
    (lambda f: f.rate_limit(code=20429), "twilio:20429", ErrorClass.RATE),
    (lambda f: f.fail_recipient(TO, code=14107), "twilio:14107", ErrorClass.RATE),
    (lambda f: f.fail_next(status=500, code=20500), "twilio:20500", ErrorClass.TRANSIENT),
    (lambda f: f.fail_next(status=503, code=20503), "twilio:20503", ErrorClass.TRANSIENT),
    (lambda f: f.fail_recipient(TO, code=21211), "twilio:21211", ErrorClass.LEAD),
    (lambda f: f.fail_recipient(TO, code=21614), "twilio:21614", ErrorClass.LEAD),
    (lambda f: f.fail_recipient(TO, code=21408), "twilio:21408", ErrorClass.LEAD),
    (lambda f: f.fail_recipient(TO, code=21610), "twilio:21610", ErrorClass.LEAD),
])
async def test_each_refusal_is_classified_by_its_twilio_code(twilio_server, http, script, code, expected):
    script(twilio_server)
    result = await TwilioAdapter(http).send(credential(twilio_server), sms())

    assert (result.error_class, result.error_code) == (expected, code)
    assert result.error_message == twilio_server.requests[-1].answer["message"]


async def test_an_unsubscribed_recipient_is_marked_so_the_engine_can_opt_them_out(twilio_server, http):
    twilio_server.fail_recipient(TO, code=21610)
    result = await TwilioAdapter(http).send(credential(twilio_server), sms())
    assert result.error_code in OPT_OUT_CODES and result.error_class is ErrorClass.LEAD


async def test_an_empty_body_is_refused_by_the_api_and_holds_the_channel(twilio_server, http):
    result = await TwilioAdapter(http).send(credential(twilio_server), sms(body=""))
    assert (result.error_class, result.error_code) == (ErrorClass.CAMPAIGN, "twilio:21602")
    assert twilio_server.requests[0].status == 400


async def test_a_rate_limit_carries_the_retry_after_header(twilio_server, http):
    twilio_server.rate_limit(SID, retry_after=12)
    result = await TwilioAdapter(http).send(credential(twilio_server), sms())
    assert (result.error_class, result.error_code, result.retry_after_seconds) == (
        ErrorClass.RATE, "twilio:20429", 12.0)


async def test_an_answer_without_a_twilio_code_falls_back_on_the_http_status():
    answers = iter([httpx.Response(503, text="upstream"), httpx.Response(401, json={"detail": "no"})])
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: next(answers))) as client:
        adapter = TwilioAdapter(client)
        unavailable, unauthorized = [await adapter.send(credential(), sms()) for _ in range(2)]
    assert (unavailable.error_class, unavailable.error_code) == (ErrorClass.TRANSIENT, "twilio:http_503")
    assert (unauthorized.error_class, unauthorized.error_code) == (ErrorClass.KEY, "twilio:http_401")


async def test_a_provider_slower_than_the_client_timeout_is_transient(twilio_server):
    twilio_server.latency = 1.0
    async with provider_client(1, httpx.Timeout(0.2)) as client:
        result = await TwilioAdapter(client).send(credential(twilio_server), sms())
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "twilio:timeout")
    assert twilio_server.contacts(TO) == 1


async def test_a_refused_connection_is_transient(http, closed_port_url):
    result = await TwilioAdapter(http).send(credential(base_url=closed_port_url), sms())
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "twilio:connection")


async def test_the_auth_token_never_reaches_the_error_message(twilio_server, http):
    twilio_server.fail_key(SID, code=20003, message=f"Authenticate: {SID}:{TOKEN} rejected")
    result = await TwilioAdapter(http).send(credential(twilio_server), sms())
    assert result.error_class is ErrorClass.KEY and TOKEN not in result.error_message


async def test_a_missing_sender_is_key_level_without_a_call(twilio_server, http):
    result = await TwilioAdapter(http).send(credential(twilio_server, sender=""), sms())
    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "twilio:config")
    assert twilio_server.requests == []


def test_twilio_does_not_deduplicate_by_idempotency_key():
    assert TwilioAdapter.dedupes_by_idempotency_key is False


# --- in-doubt settling (issue 21) -----------------------------------------------------------

async def test_with_a_public_url_the_status_callback_names_the_attempt(twilio_server, http):
    adapter = TwilioAdapter(http, public_url="https://drumbeat.example/")
    await adapter.send(credential(twilio_server, status_callback="https://elsewhere.example/cb"), sms())
    (sent,) = twilio_server.requests
    assert sent.body["StatusCallback"] == "https://drumbeat.example/webhooks/twilio/int-tw-1?attempt=lead1%3A0%3A1"


async def test_the_look_up_lists_the_messages_to_the_recipient_from_the_sender_since_the_day(twilio_server, http):
    from datetime import UTC, datetime

    from drumbeat.channels.twilio import find_messages

    adapter = TwilioAdapter(http)
    first = await adapter.send(credential(twilio_server), sms("one"))
    await adapter.send(credential(twilio_server, sender="+15005550007"), sms("other sender"))
    await adapter.send(credential(twilio_server), sms("someone else", to="+4915100000000"))
    today = datetime.now(UTC).date()
    found = await find_messages(http, credential(twilio_server), to=TO, day=today)
    assert [(m.sid, m.body, m.sender) for m in found] == [(first.provider_message_id, "one", "+15005550006")]
    assert found[0].created_at is not None and found[0].created_at.tzinfo is not None
    (lookup,) = [c for c in twilio_server.requests if c.kind == "lookup"]
    assert lookup.body == {"To": TO, "From": "+15005550006", "DateSent>": today.isoformat(), "PageSize": "1000"}
    no_token = Credential("int-tw-1", "twilio", "sms", {"account_sid": SID, "auth_token": ""},
                          {"base_url": twilio_server.base_url})
    refused = await find_messages(http, no_token, to=TO, day=today)
    assert not isinstance(refused, list) and refused.error_class is ErrorClass.KEY
