"""Email over SMTP (provider `smtp`, channel `email`), with aiosmtplib.

config: `host`, `port` (default 587), `from` (an address, or "Name <address>"), `starttls`
(bool; false sends in the clear, for local relays), optional `tls` (implicit TLS, port 465),
`timeout` (seconds, default 30), `validate_certs` (default true); credentials: `username`,
`password` (optional: an unauthenticated relay needs none).

Each message carries a Message-ID derived from the idempotency key, `<lead.step.n@domain>`
(the sender's domain, else `drumbeat`), returned as the provider message id so a reply's
In-Reply-To finds its attempt. SMTP has no deduplication: a repeated send is a second
email. Refusals are classified by reply code and by the stage that refused (MAIL FROM is
our sender's problem, RCPT TO and DATA the recipient's): channels/errors.py, tables SMTP
and SMTP_SENDER_REFUSED. The connection test (`probe`) connects, says EHLO, upgrades
with STARTTLS as a send would, logs in when a username is set, then QUITs.
"""

from __future__ import annotations

import re
from dataclasses import replace
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.errors import (
    KEY,
    LEAD,
    SMTP,
    SMTP_SENDER_REFUSED,
    TRANSIENT,
    classify,
    misconfigured,
    no_address,
    no_answer,
    refused,
)
from drumbeat.domain.errors import SendResult
from drumbeat.domain.leads import PROVIDER_IO_TIMEOUT_SECONDS

PROVIDER = "smtp"
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")


def message_id(idempotency_key: str, sender: str) -> str:
    """`<key@domain>`: the key's characters that are not allowed in a msg-id become dots."""
    left = _NOT_ATEXT.sub(".", idempotency_key).strip(".") or "drumbeat"
    domain = sender.rpartition("@")[2] if "@" in sender else ""
    domain = domain if re.fullmatch(r"[A-Za-z0-9.-]+", domain or "") else "drumbeat"
    return f"<{left}@{domain}>"


def build(message: OutboundMessage, sender_header: str, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender_header
    email["To"] = message.to
    email["Subject"] = message.subject or ""
    email["Date"] = formatdate(localtime=False, usegmt=True)
    email["Message-ID"] = message_id(message.idempotency_key, sender)
    email.set_content(message.body)
    if message.html:  # multipart/alternative: clients show the HTML, the text part is its fallback
        email.add_alternative(message.html, subtype="html")
    return email


class SmtpAdapter:
    dedupes_by_idempotency_key = False  # SMTP has no idempotency: a repeat is a second email

    async def send(self, credential: Credential, message: OutboundMessage) -> SendResult:
        config, creds = credential.config or {}, credential.credentials or {}
        host, sender_header = config.get("host"), config.get("from")
        sender = parseaddr(sender_header or "")[1]
        if not host:
            return misconfigured(PROVIDER, "config.host")
        if not sender:
            return misconfigured(PROVIDER, "config.from")
        if not message.to:
            return no_address(PROVIDER)
        email = build(message, sender_header, sender)
        secrets = [creds.get("password")]
        try:
            await aiosmtplib.send(
                email, sender=sender, recipients=[message.to], **_connection(config),
                username=creds.get("username") or None, password=creds.get("password") or None)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0] if exc.recipients else None
            if first is None:
                return refused(f"{PROVIDER}:recipient_refused", classify(None), str(exc), secrets)
            return _reply(first.code, first.message, SMTP, secrets)
        except aiosmtplib.SMTPSenderRefused as exc:
            return _reply(exc.code, exc.message, SMTP_SENDER_REFUSED, secrets, default=KEY)
        except aiosmtplib.SMTPNotSupported as exc:  # SMTPUTF8 needed but not offered
            unreachable = LEAD if not message.to.isascii() else KEY
            return refused(f"{PROVIDER}:not_supported", unreachable, str(exc), secrets)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return _session_error(exc, secrets)
        return SendResult(provider_message_id=email["Message-ID"])

    async def probe(self, credential: Credential) -> SendResult:
        config, creds = credential.config or {}, credential.credentials or {}
        if not config.get("host"):
            return misconfigured(PROVIDER, "config.host")
        secrets = [creds.get("password")]
        client = aiosmtplib.SMTP(**_connection(config))
        try:
            async with client:
                if creds.get("username"):
                    await client.login(creds["username"], creds.get("password") or "")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return _session_error(exc, secrets)
        return SendResult()


def _connection(config: dict) -> dict:
    """How to reach the server (aiosmtplib's keywords), the same for a send and a probe."""
    implicit_tls = bool(config.get("tls"))
    return {"hostname": config["host"], "port": int(config.get("port") or (465 if implicit_tls else 587)),
            "use_tls": implicit_tls, "start_tls": False if implicit_tls else bool(config.get("starttls", True)),
            "validate_certs": bool(config.get("validate_certs", True)),
            "timeout": float(config.get("timeout") or PROVIDER_IO_TIMEOUT_SECONDS)}


def _session_error(exc: Exception, secrets: list) -> SendResult:
    """A failure of the session rather than of one recipient: connecting, TLS, AUTH, replies."""
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectError,
                        aiosmtplib.SMTPServerDisconnected, OSError)):  # before any reply code: no answer
        if isinstance(exc, aiosmtplib.SMTPResponseException):  # a greeting that refused us
            return _reply(exc.code, exc.message, SMTP, secrets)
        return no_answer(PROVIDER, exc, secrets)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return _reply(exc.code, exc.message, SMTP, secrets, default=KEY)
    if isinstance(exc, aiosmtplib.SMTPResponseException):  # HELO, DATA and other replies
        return _reply(exc.code, exc.message, SMTP, secrets)
    if "not supported" in str(exc):  # STARTTLS or AUTH configured, the server offers neither
        return refused(f"{PROVIDER}:not_supported", KEY, str(exc), secrets)
    return refused(f"{PROVIDER}:error", TRANSIENT, str(exc), secrets)


# RFC 3463 enhanced status 5.1.x: the address is bad (5.1.1 no such mailbox, 5.1.2 no such
# domain, ...) — a hard bounce. 5.7.x is policy (spam, authentication): about our sender or
# content, never the person's address, so it is never a bounce.
_ADDRESS_BAD = re.compile(r"\s*5\.1\.\d{1,3}\b")


def _reply(code: int, text: str, table: dict, secrets: list, default=None) -> SendResult:
    qualified = f"{PROVIDER}:{code}"
    if qualified in table:
        error_class = table[qualified]
    elif default is not None:
        error_class = default
    else:
        error_class = TRANSIENT  # unknown replies, 4xx and 5xx alike (see channels/errors.py)
    result = refused(qualified, error_class, f"{code} {text}".strip(), secrets)
    if error_class is LEAD and table is SMTP and 500 <= code < 600 and _ADDRESS_BAD.match(text or ""):
        return replace(result, hard_bounce=True)
    return result
