"""The fake providers script what engine tests need: keys that start failing mid-run,
one-shot throttles, and counts of what reached the server."""

from __future__ import annotations

import asyncio

import httpx

from drumbeat.bootstrap import build_adapters
from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.channels.smtp import SmtpAdapter
from drumbeat.channels.twilio import TwilioAdapter
from drumbeat.channels.unipile import UnipileAdapter
from drumbeat.channels.whatsapp import WhatsAppCloudAdapter
from drumbeat.domain.errors import ErrorClass

TOKENS = ["EAAG-key-one", "EAAG-key-two", "EAAG-key-three"]


def wa_key(fake, token: str) -> Credential:
    return Credential(f"int-{token}", "whatsapp_cloud", "whatsapp", {"access_token": token},
                      {"phone_number_id": "1065", "base_url": f"{fake.base_url}/v23.0"})


def wa_message(n: int) -> OutboundMessage:
    return OutboundMessage("whatsapp", f"+49151000{n:05d}", "Hi", f"lead{n}:0:1",
                           template={"name": "promo", "language": "en"})


async def test_three_keys_refused_by_the_server_mid_run(whatsapp_server, http):
    whatsapp_server.fail_all(code=190, after=6)
    adapter = WhatsAppCloudAdapter(http)
    results = await asyncio.gather(*(adapter.send(wa_key(whatsapp_server, TOKENS[n % 3]), wa_message(n))
                                     for n in range(12)))

    assert sum(r.accepted for r in results) == 6
    assert [r.error_code for r in results if not r.accepted] == ["whatsapp:190"] * 6
    assert len(whatsapp_server.calls()) == 12  # every call reached the server
    assert sum(whatsapp_server.accepted(key=t) for t in TOKENS) == 6
    assert all(whatsapp_server.contacts(f"+49151000{n:05d}") == 1 for n in range(12))


async def test_one_key_fails_after_some_sends_and_comes_back_when_restored(whatsapp_server, http):
    adapter = WhatsAppCloudAdapter(http)
    whatsapp_server.fail_key(TOKENS[0], code=190, after=2)
    first = [await adapter.send(wa_key(whatsapp_server, TOKENS[0]), wa_message(n)) for n in range(4)]
    other = await adapter.send(wa_key(whatsapp_server, TOKENS[1]), wa_message(9))
    whatsapp_server.restore_key(TOKENS[0])
    again = await adapter.send(wa_key(whatsapp_server, TOKENS[0]), wa_message(5))

    assert [r.error_class for r in first] == [None, None, ErrorClass.KEY, ErrorClass.KEY]
    assert other.accepted and again.accepted
    assert whatsapp_server.accepted(key=TOKENS[0]) == 3


async def test_a_throttle_passes_after_the_scripted_number_of_answers(twilio_server, http):
    twilio_server.rate_limit(times=2, retry_after=1)
    cred = Credential("int-tw", "twilio", "sms", {"account_sid": "AC1", "auth_token": "t0k3n"},
                      {"from": "+15005550006", "base_url": twilio_server.base_url})
    adapter = TwilioAdapter(http)
    results = [await adapter.send(cred, OutboundMessage("sms", "+4915112345678", "Hi", f"l:0:{n}"))
               for n in range(3)]

    assert [r.error_class for r in results] == [ErrorClass.RATE, ErrorClass.RATE, None]
    assert twilio_server.contacts("+4915112345678") == 3 and twilio_server.accepted() == 1


async def test_a_refused_recipient_is_counted_once_per_attempt(unipile_server, http):
    unipile_server.fail_recipient("https://www.linkedin.com/in/grace-hopper", code="invalid_recipient")
    cred = Credential("int-li", "unipile", "linkedin", {"api_key": "k-123"},
                      {"account_id": "acc_1", "base_url": unipile_server.base_url})
    result = await UnipileAdapter(http).send(cred, OutboundMessage(
        "linkedin", "https://www.linkedin.com/in/grace-hopper/", "Hi", "l:0:1", template={"action": "invite"}))

    assert result.error_class is ErrorClass.LEAD
    assert unipile_server.contacts("ACograce-hopper") == 1
    assert len(unipile_server.calls(sends_only=False)) == 2  # the profile lookup, then the invite


async def test_build_adapters_shares_one_http_client_and_keeps_the_sandbox():
    async with httpx.AsyncClient() as client:
        adapters = build_adapters(client)
    assert set(adapters) == {"sandbox", "whatsapp_cloud", "twilio", "smtp", "unipile"}
    assert isinstance(adapters["sandbox"], SandboxAdapter) and isinstance(adapters["smtp"], SmtpAdapter)
    assert adapters["whatsapp_cloud"].client is adapters["twilio"].client is adapters["unipile"].client is client
    assert not any(a.dedupes_by_idempotency_key for a in adapters.values())

    built = build_adapters()
    assert isinstance(built["whatsapp_cloud"].client, httpx.AsyncClient)
    assert built["whatsapp_cloud"].client is built["unipile"].client
    await built["twilio"].client.aclose()
