"""Each adapter's connection test (`probe`): one cheap authenticated read against the local
fake, classified like a send (provider-qualified codes), and never counted as a send."""

from __future__ import annotations

import pytest

from drumbeat.channels.base import Credential
from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.channels.smtp import SmtpAdapter
from drumbeat.channels.twilio import TwilioAdapter
from drumbeat.channels.unipile import UnipileAdapter
from drumbeat.channels.whatsapp import WhatsAppCloudAdapter
from drumbeat.domain.errors import ErrorClass
from tests.channels import test_smtp, test_twilio, test_unipile, test_whatsapp
from tests.fakes.providers import QUIET_SMTP, free_port


async def test_a_whatsapp_probe_reads_the_phone_number_with_the_bearer_token(whatsapp_server, http):
    result = await WhatsAppCloudAdapter(http).probe(test_whatsapp.credential(whatsapp_server))

    assert result.accepted
    (call,) = whatsapp_server.calls(sends_only=False)
    assert (call.method, call.path, call.kind, call.status) == ("GET", "/v23.0/106540352242922", "probe", 200)
    assert call.headers["authorization"] == f"Bearer {test_whatsapp.TOKEN}"
    assert whatsapp_server.calls() == []  # not a send


async def test_a_whatsapp_probe_with_an_expired_token_is_whatsapp_190(whatsapp_server, http):
    whatsapp_server.fail_key(test_whatsapp.TOKEN, code=190)

    result = await WhatsAppCloudAdapter(http).probe(test_whatsapp.credential(whatsapp_server))

    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "whatsapp:190")
    assert "access token" in result.error_message
    assert test_whatsapp.TOKEN not in result.error_message


async def test_a_twilio_probe_fetches_the_account_with_basic_auth(twilio_server, http):
    result = await TwilioAdapter(http).probe(test_twilio.credential(twilio_server))

    assert result.accepted
    (call,) = twilio_server.calls(sends_only=False)
    assert (call.method, call.path, call.status) == ("GET", f"/2010-04-01/Accounts/{test_twilio.SID}.json", 200)
    assert call.answer["status"] == "active"


async def test_a_twilio_probe_with_a_failed_token_is_twilio_20003(twilio_server, http):
    twilio_server.fail_key(test_twilio.SID)

    result = await TwilioAdapter(http).probe(test_twilio.credential(twilio_server))

    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "twilio:20003")


async def test_a_twilio_account_that_is_not_active_fails_its_probe(twilio_server, http, monkeypatch):
    original = twilio_server.probe_answer

    def suspended(call, accept):
        return original(call, lambda: (200, {**accept()[1], "status": "suspended"}))

    monkeypatch.setattr(twilio_server, "probe_answer", suspended)
    result = await TwilioAdapter(http).probe(test_twilio.credential(twilio_server))

    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "twilio:account_suspended")


async def test_a_unipile_probe_reads_the_connected_account(unipile_server, http):
    result = await UnipileAdapter(http).probe(test_unipile.credential(unipile_server))

    assert result.accepted
    (call,) = unipile_server.calls(sends_only=False)
    assert (call.path, call.status) == (f"/api/v1/accounts/{test_unipile.ACCOUNT}", 200)
    assert call.headers["x-api-key"] == test_unipile.API_KEY


async def test_a_disconnected_unipile_account_fails_its_probe_with_the_health_signal(unipile_server, http):
    unipile_server.fail_key(test_unipile.ACCOUNT, code="disconnected_account")

    result = await UnipileAdapter(http).probe(test_unipile.credential(unipile_server))

    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "unipile:disconnected_account")
    assert result.health_event == "disconnected"


@pytest.mark.parametrize(("adapter", "credential", "provider"), [
    (WhatsAppCloudAdapter, test_whatsapp.credential, "whatsapp"),
    (TwilioAdapter, test_twilio.credential, "twilio"),
    (UnipileAdapter, test_unipile.credential, "unipile"),
])
async def test_a_provider_that_does_not_answer_fails_the_probe_as_transient(http, closed_port_url, adapter,
                                                                           credential, provider):
    cred = credential()
    down = f"{closed_port_url}/v23.0" if provider == "whatsapp" else closed_port_url
    cred = Credential(cred.integration_id, cred.provider, cred.channel, cred.credentials,
                      {**cred.config, "base_url": down})

    result = await adapter(http).probe(cred)

    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, f"{provider}:connection")


@pytest.mark.filterwarnings(QUIET_SMTP)
async def test_an_smtp_probe_logs_in_and_sends_nothing(smtp_server):
    result = await SmtpAdapter().probe(test_smtp.credential(smtp_server))

    assert result.accepted
    assert smtp_server.deliveries == [] and smtp_server.rcpts == []


@pytest.mark.filterwarnings(QUIET_SMTP)
async def test_an_smtp_probe_with_a_wrong_password_is_smtp_535(smtp_server):
    result = await SmtpAdapter().probe(test_smtp.credential(smtp_server, password="wrong"))

    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "smtp:535")


async def test_an_smtp_server_that_is_down_fails_the_probe_as_transient(smtp_server):
    result = await SmtpAdapter().probe(test_smtp.credential(smtp_server, port=free_port()))

    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "smtp:connection")


@pytest.mark.parametrize(("fail", "expected"), [
    (None, None), ("key", ErrorClass.KEY), ("transient", ErrorClass.TRANSIENT), ("campaign", ErrorClass.CAMPAIGN),
])
async def test_a_sandbox_probe_answers_its_scripted_fail_at_once(fail, expected):
    config = {"fail": fail, "fail_after": 5}

    result = await SandboxAdapter().probe(Credential("int-sbx", "sandbox", "sms", {}, config))

    assert result.error_class == expected
    assert result.error_code == (f"sandbox:{fail}" if fail else None)
