"""Twilio SMS and voice (provider `twilio`, channels `sms` and `voice`).

REST API 2010-04-01, HTTP Basic (account_sid, auth_token), form-encoded:
- sms:   `POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json` with `To`, `From`, `Body`
         (`MessagingServiceSid` instead of `From` when config.from is a Messaging Service, MG…);
- voice: `POST {base_url}/2010-04-01/Accounts/{sid}/Calls.json` with `To`, `From` and
         `Twiml` = `<Response><Say language="…">{escaped body}</Say></Response>`
         (the step template's `language`, when set);
- both:  `StatusCallback` = `{public_url}/webhooks/twilio/{integration_id}?attempt=<key>` when
         DRUMBEAT_PUBLIC_URL is set (the status names the attempt: a crash's in-doubt attempt
         is settled by it), else config.status_callback when set (delivery receipts).
In-doubt look-up (`find_messages`): `GET .../Messages.json?To=&From=&DateSent>=` (the
attempt's day; `From` left out for a Messaging Service, which picks the number itself).
The connection test (`probe`) reads the account, `GET {base_url}/2010-04-01/Accounts/{sid}.json`;
an account whose `status` is not `active` (suspended, closed) cannot send: key-level,
code `twilio:account_<status>`.
Accepted: 201 with the resource's `sid` (SM…/MM… or CA…). Refused: JSON
`{"code", "message", "more_info", "status"}`, classified by `code` (channels/errors.py,
table TWILIO). Twilio does not deduplicate a repeated create.
"""

from __future__ import annotations

from datetime import date
from email.utils import parsedate_to_datetime
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

import httpx

from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.errors import TWILIO, classify, misconfigured, no_address, no_answer, refused, retry_after
from drumbeat.channels.transport import endpoint
from drumbeat.domain.errors import ErrorClass, SendResult
from drumbeat.domain.in_doubt import ProviderMessage

DEFAULT_BASE_URL = "https://api.twilio.com"
PROVIDER = "twilio"


def twiml(body: str, language: str | None = None) -> str:
    say = f'<Say language={quoteattr(language)}>' if language else "<Say>"
    return f"<Response>{say}{escape(body)}</Say></Response>"


def status_callback(public_url: str, integration_id: str, attempt_key: str) -> str:
    """The StatusCallback URL that names the attempt (Twilio signs the full URL it calls)."""
    return f"{public_url.rstrip('/')}/webhooks/twilio/{integration_id}?attempt={quote(attempt_key, safe='')}"


def form(channel: str, message: OutboundMessage, config: dict, callback: str | None = None) -> dict[str, str]:
    sender = str(config.get("from") or "")
    data = {"To": message.to}
    if channel != "voice" and sender.startswith("MG"):
        data["MessagingServiceSid"] = sender
    else:
        data["From"] = sender
    if channel == "voice":
        data["Twiml"] = twiml(message.body, (message.template or {}).get("language"))
    else:
        data["Body"] = message.body
    if callback:
        data["StatusCallback"] = callback
    elif config.get("status_callback"):
        data["StatusCallback"] = str(config["status_callback"])
    return data


class TwilioAdapter:
    dedupes_by_idempotency_key = False  # Messages/Calls create has no idempotency key

    def __init__(self, client: httpx.AsyncClient, public_url: str | None = None) -> None:
        self.client = client
        self.public_url = public_url

    async def send(self, credential: Credential, message: OutboundMessage) -> SendResult:
        creds, config = credential.credentials or {}, credential.config or {}
        sid, token = creds.get("account_sid"), creds.get("auth_token")
        if not sid or not token:
            return misconfigured(PROVIDER, "credentials.account_sid and credentials.auth_token")
        if not config.get("from"):
            return misconfigured(PROVIDER, "config.from")
        if not message.to:
            return no_address(PROVIDER)
        channel = message.channel or credential.channel
        resource = "Calls.json" if channel == "voice" else "Messages.json"
        url = f"{(config.get('base_url') or DEFAULT_BASE_URL).rstrip('/')}/2010-04-01/Accounts/{sid}/{resource}"
        secrets = [token]
        callback = status_callback(self.public_url, credential.integration_id, message.idempotency_key) \
            if self.public_url and message.idempotency_key else None
        try:
            answer = await self.client.post(endpoint(url), data=form(channel, message, config, callback),
                                            auth=(sid, token))
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return misconfigured(PROVIDER, "a valid config.base_url")
        except httpx.RequestError as exc:
            return no_answer(PROVIDER, exc, secrets)
        if answer.is_success:
            return SendResult(provider_message_id=_field(answer, "sid"))
        return _refusal(answer, secrets)

    async def probe(self, credential: Credential) -> SendResult:
        creds, config = credential.credentials or {}, credential.config or {}
        sid, token = creds.get("account_sid"), creds.get("auth_token")
        if not sid or not token:
            return misconfigured(PROVIDER, "credentials.account_sid and credentials.auth_token")
        url = f"{(config.get('base_url') or DEFAULT_BASE_URL).rstrip('/')}/2010-04-01/Accounts/{sid}.json"
        secrets = [token]
        try:
            answer = await self.client.get(endpoint(url), auth=(sid, token))
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return misconfigured(PROVIDER, "a valid config.base_url")
        except httpx.RequestError as exc:
            return no_answer(PROVIDER, exc, secrets)
        if not answer.is_success:
            return _refusal(answer, secrets)
        status = _field(answer, "status")
        if status not in (None, "active"):
            return refused(f"{PROVIDER}:account_{status}", ErrorClass.KEY, f"the account is {status}", secrets)
        return SendResult()


def _refusal(answer: httpx.Response, secrets: list) -> SendResult:
    wait = retry_after(answer.headers)
    code = _field(answer, "code")
    text = _field(answer, "message")
    qualified = f"{PROVIDER}:{code}" if code is not None else f"{PROVIDER}:http_{answer.status_code}"
    return refused(qualified, classify(qualified, answer.status_code, TWILIO),
                   text or answer.reason_phrase or qualified, secrets, wait)


def _field(answer: httpx.Response, name: str):
    try:
        value = answer.json().get(name)
    except (ValueError, AttributeError):
        return None
    return value if value not in ("", None) else None


PAGE_SIZE = 1000  # Twilio's largest page


async def find_messages(client: httpx.AsyncClient, credential: Credential, *, to: str, day: date
                        ) -> list[ProviderMessage] | SendResult:
    """The account's messages to `to` sent from the integration's sender since `day` (one
    page of up to 1,000), or the refusal."""
    creds, config = credential.credentials or {}, credential.config or {}
    sid, token = creds.get("account_sid"), creds.get("auth_token")
    if not sid or not token:
        return misconfigured(PROVIDER, "credentials.account_sid and credentials.auth_token")
    sender = str(config.get("from") or "")
    params = {"To": to, "DateSent>": day.isoformat(), "PageSize": str(PAGE_SIZE)}
    if sender and not sender.startswith("MG"):
        params["From"] = sender
    url = f"{(config.get('base_url') or DEFAULT_BASE_URL).rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
    try:
        answer = await client.get(endpoint(url), params=params, auth=(sid, token))
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        return misconfigured(PROVIDER, "a valid config.base_url")
    except httpx.RequestError as exc:
        return no_answer(PROVIDER, exc, [token])
    if not answer.is_success:
        return _refusal(answer, [token])
    try:
        rows = answer.json().get("messages")
    except (ValueError, AttributeError):
        rows = None
    if not isinstance(rows, list):
        return refused(f"{PROVIDER}:http_{answer.status_code}", ErrorClass.TRANSIENT, "not a list of messages")
    return [ProviderMessage(str(r.get("sid")), r.get("body"), r.get("from"), r.get("messaging_service_sid"),
                            _time(r.get("date_created")), r.get("status")) for r in rows if isinstance(r, dict)]


def _time(value):
    """Twilio's RFC 2822 dates ("Sat, 05 Dec 2026 16:20:01 +0000")."""
    try:
        return parsedate_to_datetime(value) if isinstance(value, str) and value else None
    except (TypeError, ValueError):
        return None
