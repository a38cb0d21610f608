"""The WhatsApp Cloud API adapter against the local fake (and a MockTransport where the
fake cannot say it: the default base URL, non-JSON answers)."""

from __future__ import annotations

import httpx
import pytest

from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.transport import provider_client
from drumbeat.channels.whatsapp import DEFAULT_BASE_URL, WhatsAppCloudAdapter
from drumbeat.domain.errors import ErrorClass

TOKEN = "EAAG-test-access-token-0001"
PHONE = "+49 151 1234-5678"


def credential(fake=None, token: str = TOKEN, **config) -> Credential:
    cfg = {"phone_number_id": "106540352242922"}
    if fake is not None:
        cfg["base_url"] = f"{fake.base_url}/v23.0"
    return Credential("int-wa-1", "whatsapp_cloud", "whatsapp", {"access_token": token, "app_secret": "app-s3cret"},
                      {**cfg, **config})


def text(to: str = PHONE, body: str = "Hi Ada") -> OutboundMessage:
    return OutboundMessage("whatsapp", to, body, "lead1:0:1", template={"body": "Hi {{first_name}}"})


def template(name: str = "promo", to: str = PHONE, **extra) -> OutboundMessage:
    return OutboundMessage("whatsapp", to, "Hi Ada", "lead1:0:1",
                           template={"name": name, "language": "en_US", "body": "Hi", **extra})


async def test_a_text_message_is_accepted_with_its_wamid(whatsapp_server, http):
    result = await WhatsAppCloudAdapter(http).send(credential(whatsapp_server), text())

    assert result.accepted and result.provider_message_id.startswith("wamid.")
    (call,) = whatsapp_server.requests
    assert call.path == "/v23.0/106540352242922/messages"
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.headers["content-type"] == "application/json"
    # biz_opaque_callback_data: the attempt's key, echoed in the message's statuses (issue 21)
    assert call.body == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
                         "biz_opaque_callback_data": "lead1:0:1",
                         "type": "text", "text": {"body": "Hi Ada", "preview_url": False}}
    assert call.answer["messages"][0]["id"] == result.provider_message_id


async def test_a_step_naming_a_template_sends_a_template_message(whatsapp_server, http):
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Ada"}]}]
    result = await WhatsAppCloudAdapter(http).send(credential(whatsapp_server), template(components=components))

    assert result.accepted
    (call,) = whatsapp_server.requests
    assert call.body == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
                         "biz_opaque_callback_data": "lead1:0:1", "type": "template",
                         "template": {"name": "promo", "language": {"code": "en_US"}, "components": components}}


async def test_the_default_base_url_is_the_graph_api_v23():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"messages": [{"id": "wamid.X"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await WhatsAppCloudAdapter(client).send(credential(), text())
    assert result.provider_message_id == "wamid.X"
    assert DEFAULT_BASE_URL == "https://graph.facebook.com/v23.0"
    assert seen == ["https://graph.facebook.com/v23.0/106540352242922/messages"]


@pytest.mark.parametrize(("script", "code", "expected"), [
    (lambda f: f.fail_key(TOKEN, code=190), "whatsapp:190", ErrorClass.KEY),
    (lambda f: f.fail_key(TOKEN, code=131031), "whatsapp:131031", ErrorClass.KEY),
    (lambda f: f.fail_key(TOKEN, code=131042), "whatsapp:131042", ErrorClass.KEY),
    (lambda f: f.fail_key(TOKEN, code=368), "whatsapp:368", ErrorClass.KEY),
    (lambda f: f.fail_key(TOKEN, code=200), "whatsapp:200", ErrorClass.KEY),
    (lambda f: f.rate_limit(code=130429), "whatsapp:130429", ErrorClass.RATE),
    (lambda f: f.fail_key(TOKEN, code=80007), "whatsapp:80007", ErrorClass.RATE),
    (lambda f: f.fail_recipient(PHONE, code=131056), "whatsapp:131056", ErrorClass.RATE),
    (lambda f: f.fail_next(status=500, code=131000), "whatsapp:131000", ErrorClass.TRANSIENT),
    (lambda f: f.fail_next(status=503, code=2), "whatsapp:2", ErrorClass.TRANSIENT),
    (lambda f: f.fail_recipient(PHONE, code=131026), "whatsapp:131026", ErrorClass.LEAD),
    (lambda f: f.fail_recipient(PHONE, code=131050), "whatsapp:131050", ErrorClass.LEAD),
    (lambda f: f.fail_template("promo", code=132001), "whatsapp:132001", ErrorClass.CAMPAIGN),
    (lambda f: f.fail_template("promo", code=132015), "whatsapp:132015", ErrorClass.CAMPAIGN),
    (lambda f: f.fail_template("promo", code=132000), "whatsapp:132000", ErrorClass.CAMPAIGN),
])
async def test_each_refusal_is_classified_by_its_graph_error_code(whatsapp_server, http, script, code, expected):
    script(whatsapp_server)
    result = await WhatsAppCloudAdapter(http).send(credential(whatsapp_server), template())

    assert (result.error_class, result.error_code) == (expected, code)
    assert result.error_message == whatsapp_server.requests[-1].answer["error"]["message"]
    assert not result.accepted


async def test_a_free_form_text_outside_the_24h_window_holds_the_channel(whatsapp_server, http):
    whatsapp_server.fail_recipient(PHONE, code=131047)
    result = await WhatsAppCloudAdapter(http).send(credential(whatsapp_server), text())
    assert (result.error_class, result.error_code) == (ErrorClass.CAMPAIGN, "whatsapp:131047")


async def test_an_invalid_parameter_is_lead_level_only_when_it_names_the_recipient(whatsapp_server, http):
    adapter = WhatsAppCloudAdapter(http)
    whatsapp_server.fail_recipient(PHONE, code=131009, times=1,
                                   message="(#131009) Parameter value is not valid: recipient phone number")
    about_recipient = await adapter.send(credential(whatsapp_server), template())
    whatsapp_server.fail_template("promo", code=100, times=1, message="(#100) Invalid parameter")
    about_template = await adapter.send(credential(whatsapp_server), template())

    assert (about_recipient.error_class, about_recipient.error_code) == (ErrorClass.LEAD, "whatsapp:131009")
    assert (about_template.error_class, about_template.error_code) == (ErrorClass.CAMPAIGN, "whatsapp:100")


async def test_a_rate_limit_carries_the_retry_after_header(whatsapp_server, http):
    whatsapp_server.rate_limit(TOKEN, retry_after=7, code=4)
    result = await WhatsAppCloudAdapter(http).send(credential(whatsapp_server), text())

    assert (result.error_class, result.error_code, result.retry_after_seconds) == (ErrorClass.RATE, "whatsapp:4", 7.0)
    assert whatsapp_server.requests[-1].status == 429


async def test_an_answer_without_a_graph_error_falls_back_on_the_http_status():
    answers = iter([httpx.Response(502, text="<html>Bad Gateway</html>"),
                    httpx.Response(429, headers={"Retry-After": "3"}, text="slow down"),
                    httpx.Response(401, json={"unexpected": True}),
                    httpx.Response(418, text="?")])
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: next(answers))) as client:
        adapter = WhatsAppCloudAdapter(client)
        results = [await adapter.send(credential(), text()) for _ in range(4)]

    assert [(r.error_class, r.error_code) for r in results] == [
        (ErrorClass.TRANSIENT, "whatsapp:http_502"), (ErrorClass.RATE, "whatsapp:http_429"),
        (ErrorClass.KEY, "whatsapp:http_401"), (ErrorClass.TRANSIENT, "whatsapp:http_418")]
    assert results[1].retry_after_seconds == 3.0


async def test_an_accepted_answer_without_an_id_is_still_accepted():
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"messaging_product": "whatsapp"}))
    async with httpx.AsyncClient(transport=transport) as client:
        result = await WhatsAppCloudAdapter(client).send(credential(), text())
    assert result.accepted and result.provider_message_id is None


async def test_a_provider_slower_than_the_client_timeout_is_transient(whatsapp_server):
    whatsapp_server.latency = 1.0
    async with provider_client(1, httpx.Timeout(0.2)) as client:
        result = await WhatsAppCloudAdapter(client).send(credential(whatsapp_server), text())

    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "whatsapp:timeout")
    assert whatsapp_server.contacts(PHONE) == 1  # it reached the provider: the lead may have been contacted


async def test_a_refused_connection_is_transient(http, closed_port_url):
    cred = credential(base_url=closed_port_url)
    result = await WhatsAppCloudAdapter(http).send(cred, text())
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "whatsapp:connection")


async def test_secrets_never_reach_the_error_message(whatsapp_server, http):
    whatsapp_server.fail_key(TOKEN, code=190, message=f"Invalid OAuth access token {TOKEN} (app-s3cret)")
    result = await WhatsAppCloudAdapter(http).send(credential(whatsapp_server), text())

    assert result.error_class is ErrorClass.KEY
    assert TOKEN not in result.error_message and "app-s3cret" not in result.error_message
    assert "****" in result.error_message


async def test_a_missing_token_or_phone_number_id_is_key_level_without_a_call(whatsapp_server, http):
    adapter = WhatsAppCloudAdapter(http)
    no_token = await adapter.send(credential(whatsapp_server, token=""), text())
    no_number = await adapter.send(credential(whatsapp_server, phone_number_id=None), text())

    assert (no_token.error_class, no_token.error_code) == (ErrorClass.KEY, "whatsapp:config")
    assert (no_number.error_class, no_number.error_code) == (ErrorClass.KEY, "whatsapp:config")
    assert whatsapp_server.requests == []


async def test_a_lead_without_a_number_is_lead_level_without_a_call(whatsapp_server, http):
    result = await WhatsAppCloudAdapter(http).send(credential(whatsapp_server), text(to=""))
    assert (result.error_class, result.error_code) == (ErrorClass.LEAD, "whatsapp:no_address")
    assert whatsapp_server.requests == []


def test_whatsapp_does_not_deduplicate_by_idempotency_key():
    assert WhatsAppCloudAdapter.dedupes_by_idempotency_key is False
