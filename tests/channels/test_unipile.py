"""The Unipile (LinkedIn) adapter against the local fake of Unipile's API v1."""

from __future__ import annotations

import httpx
import pytest

from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.errors import HEALTH_SIGNALS
from drumbeat.channels.transport import provider_client
from drumbeat.channels.unipile import UnipileAdapter, public_identifier
from drumbeat.domain.errors import ErrorClass

API_KEY = "unipile-api-key-7c1d2e"
ACCOUNT = "acc_3H-KVe-mQ2GT9M0"
PROFILE = "https://www.linkedin.com/in/ada-lovelace/"


def credential(fake=None, account: str = ACCOUNT, **config) -> Credential:
    cfg = {"account_id": account}
    if fake is not None:
        cfg["base_url"] = fake.base_url
    return Credential("int-li-1", "unipile", "linkedin", {"api_key": API_KEY}, {**cfg, **config})


def invite(to: str = PROFILE, body: str = "Hi Ada, let's connect") -> OutboundMessage:
    return OutboundMessage("linkedin", to, body, "lead1:0:1", template={"action": "invite", "body": body})


def message(to: str = PROFILE, body: str = "Thanks for connecting, Ada") -> OutboundMessage:
    return OutboundMessage("linkedin", to, body, "lead1:1:1", template={"action": "message", "body": body})


async def test_an_invite_resolves_the_profile_url_then_invites_its_provider_id(unipile_server, http):
    result = await UnipileAdapter(http).send(credential(unipile_server), invite())

    assert result.accepted and result.provider_message_id.startswith("inv_")
    lookup, sent = unipile_server.calls(sends_only=False)
    assert (lookup.method, lookup.path, lookup.account) == ("GET", "/api/v1/users/ada-lovelace", ACCOUNT)
    assert (sent.method, sent.path) == ("POST", "/api/v1/users/invite")
    assert sent.headers["x-api-key"] == API_KEY and sent.headers["content-type"] == "application/json"
    assert sent.body == {"account_id": ACCOUNT, "provider_id": "ACoada-lovelace", "message": "Hi Ada, let's connect"}
    assert sent.answer == {"object": "UserInvitationSent", "invitation_id": result.provider_message_id, "usage": 1}
    assert unipile_server.contacts(PROFILE) == 1  # the lookup is not a contact


async def test_an_address_that_is_already_a_provider_id_is_not_looked_up(unipile_server, http):
    result = await UnipileAdapter(http).send(credential(unipile_server), invite(to="ACoAAAcDMMQBODyLwZrRcgYh", body=""))

    assert result.accepted
    (sent,) = unipile_server.calls(sends_only=False)
    assert sent.body == {"account_id": ACCOUNT, "provider_id": "ACoAAAcDMMQBODyLwZrRcgYh"}  # no empty message


async def test_a_message_starts_a_chat_with_a_multipart_form(unipile_server, http):
    result = await UnipileAdapter(http).send(credential(unipile_server), message())

    assert result.accepted and result.provider_message_id.startswith("msg_")
    sent = unipile_server.calls()[0]
    assert (sent.method, sent.path, sent.kind) == ("POST", "/api/v1/chats", "message")
    assert sent.body["content_type"].startswith("multipart/form-data")
    assert (sent.body["account_id"], sent.body["attendees_ids"], sent.body["text"]) == (
        ACCOUNT, ["ACoada-lovelace"], "Thanks for connecting, Ada")
    assert sent.headers["x-api-key"] == API_KEY


def test_profile_addresses_yield_their_public_identifier():
    assert public_identifier("https://www.linkedin.com/in/ada-lovelace/") == "ada-lovelace"
    assert public_identifier("linkedin.com/in/ada-lovelace?trk=x") == "ada-lovelace"
    assert public_identifier("https://www.linkedin.com/in/J%C3%BCrgen-M") == "Jürgen-M"
    assert public_identifier("ada-lovelace") == "ada-lovelace"
    assert public_identifier("ACoAAAcDMMQBODyLwZrRcgYh") is None


@pytest.mark.parametrize(("script", "code", "expected"), [
    (lambda f: f.fail_key(ACCOUNT, code="disconnected_account"), "unipile:disconnected_account", ErrorClass.KEY),
    (lambda f: f.fail_key(API_KEY, code="invalid_credentials"), "unipile:invalid_credentials", ErrorClass.KEY),
    (lambda f: f.fail_key(ACCOUNT, code="account_restricted"), "unipile:account_restricted", ErrorClass.KEY),
    (lambda f: f.fail_key(ACCOUNT, code="limit_exceeded"), "unipile:limit_exceeded", ErrorClass.KEY),
    (lambda f: f.rate_limit(code="too_many_requests"), "unipile:too_many_requests", ErrorClass.RATE),
    (lambda f: f.fail_next(status=500, code="unexpected_error"), "unipile:unexpected_error", ErrorClass.TRANSIENT),
    (lambda f: f.fail_next(status=503, code="service_unavailable"), "unipile:service_unavailable",
     ErrorClass.TRANSIENT),
    (lambda f: f.fail_recipient(PROFILE, code="invalid_recipient"), "unipile:invalid_recipient", ErrorClass.LEAD),
    (lambda f: f.fail_recipient(PROFILE, code="already_invited_recently"), "unipile:already_invited_recently",
     ErrorClass.LEAD),
    (lambda f: f.fail_recipient(PROFILE, code="cannot_resend_yet"), "unipile:cannot_resend_yet", ErrorClass.LEAD),
])
async def test_each_refusal_is_classified_by_its_problem_type(unipile_server, http, script, code, expected):
    script(unipile_server)
    result = await UnipileAdapter(http).send(credential(unipile_server), invite())

    assert (result.error_class, result.error_code) == (expected, code)
    answer = unipile_server.calls()[-1].answer
    assert answer["type"] == "errors/" + code.split(":")[1]
    assert answer["title"] in result.error_message


async def test_a_disconnected_account_is_a_health_signal_for_the_engine(unipile_server, http):
    unipile_server.fail_key(ACCOUNT)  # the fake's default key failure: errors/disconnected_account, 401
    result = await UnipileAdapter(http).send(credential(unipile_server), message())
    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "unipile:disconnected_account")
    assert HEALTH_SIGNALS[result.error_code] == "disconnected"


async def test_an_invitation_text_over_the_limit_holds_the_channel(unipile_server, http):
    result = await UnipileAdapter(http).send(credential(unipile_server), invite(body="x" * 301))
    assert (result.error_class, result.error_code) == (ErrorClass.CAMPAIGN, "unipile:too_many_characters")


async def test_a_rate_limit_carries_the_retry_after_header(unipile_server, http):
    unipile_server.rate_limit(ACCOUNT, retry_after=30)
    result = await UnipileAdapter(http).send(credential(unipile_server), message())
    assert (result.error_class, result.retry_after_seconds) == (ErrorClass.RATE, 30.0)


@pytest.mark.parametrize(("status", "expected"), [(401, ErrorClass.KEY), (403, ErrorClass.KEY),
                                                  (429, ErrorClass.RATE), (500, ErrorClass.TRANSIENT),
                                                  (400, ErrorClass.TRANSIENT)])
async def test_an_answer_without_a_problem_type_falls_back_on_the_http_status(status, expected):
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json={"message": "nope"}))
    async with httpx.AsyncClient(transport=transport) as client:
        result = await UnipileAdapter(client).send(credential(base_url="https://api1.unipile.com:13111"),
                                                   invite(to="ACoAAAcD"))
    assert (result.error_class, result.error_code) == (expected, f"unipile:http_{status}")


async def test_a_profile_without_a_provider_id_is_lead_level():
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"object": "UserProfile"}))
    async with httpx.AsyncClient(transport=transport) as client:
        result = await UnipileAdapter(client).send(credential(base_url="https://api1.unipile.com:13111"), invite())
    assert (result.error_class, result.error_code) == (ErrorClass.LEAD, "unipile:resource_not_found")


async def test_a_provider_slower_than_the_client_timeout_is_transient(unipile_server):
    unipile_server.latency = 1.0
    async with provider_client(1, httpx.Timeout(0.2)) as client:
        result = await UnipileAdapter(client).send(credential(unipile_server), invite(to="ACoAAAcD"))
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "unipile:timeout")


async def test_a_refused_connection_is_transient(http, closed_port_url):
    result = await UnipileAdapter(http).send(credential(base_url=closed_port_url), invite())
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "unipile:connection")


async def test_the_api_key_never_reaches_the_error_message(unipile_server, http):
    unipile_server.fail_key(API_KEY, code="invalid_credentials", message=f"key {API_KEY} is not valid")
    result = await UnipileAdapter(http).send(credential(unipile_server), invite())
    assert result.error_class is ErrorClass.KEY and API_KEY not in result.error_message


async def test_base_url_and_account_are_required_config(http):
    no_base = await UnipileAdapter(http).send(credential(), invite())
    no_account = await UnipileAdapter(http).send(credential(account="", base_url="http://127.0.0.1:1"), invite())
    assert (no_base.error_class, no_base.error_code) == (ErrorClass.KEY, "unipile:config")
    assert (no_account.error_class, no_account.error_code) == (ErrorClass.KEY, "unipile:config")


def test_unipile_does_not_deduplicate_by_idempotency_key():
    assert UnipileAdapter.dedupes_by_idempotency_key is False
