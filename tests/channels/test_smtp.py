"""The SMTP adapter against a real aiosmtpd server on 127.0.0.1 (tests/fakes/providers.py)."""

from __future__ import annotations

import pytest

from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.smtp import SmtpAdapter, message_id
from drumbeat.domain.errors import ErrorClass
from tests.fakes.providers import QUIET_SMTP

pytestmark = pytest.mark.filterwarnings(QUIET_SMTP)

PASSWORD = "s3cret-pass"
TO = "ada@example.org"


def credential(server, username: str = "mailer", password: str = PASSWORD, **config) -> Credential:
    creds = {"username": username, "password": password} if username else {}
    return Credential("int-mail-1", "smtp", "email", creds, server.config(**config))


def email(to: str = TO, key: str = "lead-7f3a:0:1") -> OutboundMessage:
    return OutboundMessage("email", to, "Hi Ada,\n\nour spring promo starts today.", key, subject="Spring promo")


async def test_an_email_is_delivered_with_a_message_id_derived_from_the_idempotency_key(smtp_server):
    result = await SmtpAdapter().send(credential(smtp_server), email())

    assert result.accepted and result.provider_message_id == "<lead-7f3a.0.1@example.com>"
    (delivery,) = smtp_server.deliveries
    assert (delivery.mail_from, delivery.rcpt_tos, delivery.login) == ("outreach@example.com", [TO], "mailer")
    sent = delivery.message
    assert sent["Message-ID"] == result.provider_message_id
    assert (sent["From"], sent["To"], sent["Subject"]) == ("Drumbeat <outreach@example.com>", TO, "Spring promo")
    assert sent.get_content().replace("\r\n", "\n") == "Hi Ada,\n\nour spring promo starts today.\n"
    assert sent["Date"]


def test_a_message_id_keeps_only_what_rfc_5322_allows():
    assert message_id("lead:0:1", "a@example.com") == "<lead.0.1@example.com>"
    assert message_id("l 1/2<3>", "not-an-address") == "<l.1/2.3@drumbeat>"
    assert message_id(":::", "a@example.com") == "<drumbeat@example.com>"


async def test_a_wrong_password_is_key_level(smtp_server):
    result = await SmtpAdapter().send(credential(smtp_server, password="wrong"), email())
    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "smtp:535")
    assert smtp_server.deliveries == []


async def test_no_credentials_where_the_server_requires_auth_is_key_level(smtp_server):
    result = await SmtpAdapter().send(credential(smtp_server, username=""), email())
    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "smtp:530")


@pytest.mark.parametrize(("code", "expected"), [
    (550, ErrorClass.LEAD), (551, ErrorClass.LEAD), (553, ErrorClass.LEAD), (501, ErrorClass.LEAD),
    (554, ErrorClass.LEAD), (452, ErrorClass.RATE), (450, ErrorClass.TRANSIENT), (451, ErrorClass.TRANSIENT),
    (421, ErrorClass.TRANSIENT),
])
async def test_a_refused_recipient_is_classified_by_its_reply_code(smtp_server, code, expected):
    smtp_server.refuse_recipient(TO, code=code, message="mailbox says no")
    result = await SmtpAdapter().send(credential(smtp_server), email())

    assert (result.error_class, result.error_code) == (expected, f"smtp:{code}")
    assert result.error_message == f"{code} mailbox says no"
    assert smtp_server.contacts(TO) == 1 and smtp_server.deliveries == []


@pytest.mark.parametrize(("code", "expected"), [
    (553, ErrorClass.KEY), (554, ErrorClass.KEY), (550, ErrorClass.KEY), (451, ErrorClass.TRANSIENT),
    (452, ErrorClass.RATE),
])
async def test_a_refused_sender_is_the_keys_problem_not_the_leads(smtp_server, code, expected):
    smtp_server.refuse_sender("outreach@example.com", code=code, message="sender rejected")
    result = await SmtpAdapter().send(credential(smtp_server), email())
    assert (result.error_class, result.error_code) == (expected, f"smtp:{code}")


async def test_a_message_refused_at_data_is_lead_level(smtp_server):
    smtp_server.refuse_data(554, "5.7.1 Message rejected")
    result = await SmtpAdapter().send(credential(smtp_server), email())
    assert (result.error_class, result.error_code) == (ErrorClass.LEAD, "smtp:554")


async def test_a_server_slower_than_the_timeout_is_transient(smtp_server):
    smtp_server.delay = 1.5
    result = await SmtpAdapter().send(credential(smtp_server, timeout=0.3), email())
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "smtp:timeout")


async def test_a_refused_connection_is_transient(smtp_server):
    cred = Credential("int-mail-2", "smtp", "email", {"username": "mailer", "password": PASSWORD},
                      {"host": "127.0.0.1", "port": 1, "from": "a@example.com", "starttls": False, "timeout": 2})
    result = await SmtpAdapter().send(cred, email())
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "smtp:connection")
    assert PASSWORD not in result.error_message


async def test_the_password_never_reaches_the_error_message(smtp_server):
    smtp_server.refuse_recipient(TO, code=550, message=f"no such user (auth {PASSWORD})")
    result = await SmtpAdapter().send(credential(smtp_server), email())
    assert result.error_class is ErrorClass.LEAD and PASSWORD not in result.error_message


async def test_a_missing_host_or_sender_is_key_level(smtp_server):
    no_host = await SmtpAdapter().send(credential(smtp_server, host=""), email())
    no_sender = await SmtpAdapter().send(credential(smtp_server, **{"from": ""}), email())
    assert (no_host.error_class, no_host.error_code) == (ErrorClass.KEY, "smtp:config")
    assert (no_sender.error_class, no_sender.error_code) == (ErrorClass.KEY, "smtp:config")


def test_smtp_does_not_deduplicate_by_idempotency_key():
    assert SmtpAdapter.dedupes_by_idempotency_key is False


async def test_starttls_configured_where_the_server_offers_none_is_key_level(smtp_server):
    result = await SmtpAdapter().send(credential(smtp_server, starttls=True), email())
    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "smtp:not_supported")
    assert smtp_server.contacts(TO) == 0


UNSUBSCRIBE = "https://drumbeat.example/u/AAAAAAAAACoATlVzaWduZWQtYnV0LWZha2UtbWFj"


async def test_an_email_with_an_unsubscribe_link_carries_the_one_click_headers(smtp_server):
    message = OutboundMessage("email", TO, "Hi", "lead-7:0:1", subject="Hi", unsubscribe_url=UNSUBSCRIBE)

    result = await SmtpAdapter().send(credential(smtp_server), message)

    assert result.accepted
    sent = smtp_server.deliveries[0].message
    assert sent["List-Unsubscribe"].strip() == f"<{UNSUBSCRIBE}>"  # folded onto its own line: long
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_the_integrations_unsubscribe_mailbox_is_offered_as_mailto_beside_the_link(smtp_server):
    message = OutboundMessage("email", TO, "Hi", "lead-7:0:1", subject="Hi", unsubscribe_url=UNSUBSCRIBE)

    await SmtpAdapter().send(credential(smtp_server, unsubscribe_email="optout@example.com"), message)

    sent = smtp_server.deliveries[0].message
    assert sent["List-Unsubscribe"].strip() == f"<{UNSUBSCRIBE}>, <mailto:optout@example.com?subject=unsubscribe>"
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_an_email_without_a_link_carries_no_unsubscribe_headers(smtp_server):
    await SmtpAdapter().send(credential(smtp_server, unsubscribe_email="optout@example.com"), email())

    sent = smtp_server.deliveries[0].message
    assert sent["List-Unsubscribe"] is None and sent["List-Unsubscribe-Post"] is None
