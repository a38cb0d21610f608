"""WhatsApp Cloud API (provider `whatsapp_cloud`).

`POST {base_url}/{phone_number_id}/messages` with `Authorization: Bearer {access_token}`
(operation `sendMessage` of Meta's WhatsApp Business Messaging API v23.0). A step whose
template names a WhatsApp template (`name`, `language`, `components` rendered for the lead
by domain/messages.compose) sends Meta's `template` object; any other step sends its
rendered body as a text message (which Meta accepts only inside a 24-hour
customer-service window: outside it the answer is 131047, campaign-level). `to` is the
lead's E.164 number as digits (the API accepts them with or without "+"; digits are what
it answers back as `wa_id`).

The connection test (`probe`) reads the number, `GET {base_url}/{phone_number_id}`
(operation `getPhoneNumberById`), with the same token.

Accepted: 200 with `messages[0].id` (a `wamid.`). Refused: a Graph API error
`{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"}, ...}}`,
classified by `error.code` (channels/errors.py, table WHATSAPP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.errors import (
    WHATSAPP,
    WHATSAPP_PARAMETER_CODES,
    classify,
    misconfigured,
    no_address,
    no_answer,
    refused,
    retry_after,
    whatsapp_parameter_class,
)
from drumbeat.channels.transport import endpoint
from drumbeat.domain.errors import ErrorClass, SendResult
from drumbeat.domain.messages import is_whatsapp_template
from drumbeat.domain.whatsapp_templates import template_object

DEFAULT_BASE_URL = "https://graph.facebook.com/v23.0"
PROVIDER = "whatsapp"


def recipient(address: str) -> str:
    """The API's `to`: the number's digits (E.164 without "+", spaces or dashes)."""
    return re.sub(r"\D", "", address or "")


def payload(message: OutboundMessage) -> dict:
    """The send's body; `biz_opaque_callback_data` carries the attempt's key, which Meta
    echoes in every status of the message (a crash's in-doubt attempt is settled by it)."""
    template = message.template or {}
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": recipient(message.to)}
    if message.idempotency_key:
        base["biz_opaque_callback_data"] = message.idempotency_key
    if is_whatsapp_template("whatsapp", template):
        return {**base, "type": "template", "template": template_object(template)}
    return {**base, "type": "text", "text": {"body": message.body, "preview_url": False}}


class WhatsAppCloudAdapter:
    dedupes_by_idempotency_key = False  # the Cloud API has no idempotency key

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, credential: Credential, message: OutboundMessage) -> SendResult:
        token = (credential.credentials or {}).get("access_token")
        config = credential.config or {}
        phone_number_id = config.get("phone_number_id")
        if not token:
            return misconfigured(PROVIDER, "credentials.access_token")
        if not phone_number_id:
            return misconfigured(PROVIDER, "config.phone_number_id")
        if not recipient(message.to):
            return no_address(PROVIDER)
        secrets = list((credential.credentials or {}).values())
        url = f"{(config.get('base_url') or DEFAULT_BASE_URL).rstrip('/')}/{phone_number_id}/messages"
        try:
            answer = await self.client.post(endpoint(url), json=payload(message),
                                            headers={"Authorization": f"Bearer {token}"})
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return misconfigured(PROVIDER, "a valid config.base_url")
        except httpx.RequestError as exc:  # timeouts, refused or reset connections, TLS
            return no_answer(PROVIDER, exc, secrets)
        if answer.is_success:
            # Accepted even when the id is missing: repeating an accepted send would contact twice.
            return SendResult(provider_message_id=_message_id(answer))
        return _refusal(answer, secrets)


    async def probe(self, credential: Credential) -> SendResult:
        token = (credential.credentials or {}).get("access_token")
        config = credential.config or {}
        phone_number_id = config.get("phone_number_id")
        if not token:
            return misconfigured(PROVIDER, "credentials.access_token")
        if not phone_number_id:
            return misconfigured(PROVIDER, "config.phone_number_id")
        secrets = list((credential.credentials or {}).values())
        url = f"{(config.get('base_url') or DEFAULT_BASE_URL).rstrip('/')}/{phone_number_id}"
        try:
            answer = await self.client.get(endpoint(url), headers={"Authorization": f"Bearer {token}"})
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return misconfigured(PROVIDER, "a valid config.base_url")
        except httpx.RequestError as exc:
            return no_answer(PROVIDER, exc, secrets)
        return SendResult() if answer.is_success else _refusal(answer, secrets)


def _message_id(answer: httpx.Response) -> str | None:
    try:
        return answer.json()["messages"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _refusal(answer: httpx.Response, secrets: list) -> SendResult:
    try:
        error = answer.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    wait = retry_after(answer.headers)
    if not isinstance(error, dict) or error.get("code") is None:
        code = f"{PROVIDER}:http_{answer.status_code}"
        return refused(code, classify(None, answer.status_code), answer.reason_phrase or code, secrets, wait)
    code = f"{PROVIDER}:{error['code']}"
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    text = str(error.get("message") or "")
    if details and details not in text:
        text = f"{text} ({details})" if text else str(details)
    if code in WHATSAPP_PARAMETER_CODES:
        error_class = whatsapp_parameter_class(code, error.get("error_subcode"), text)
    else:
        error_class = classify(code, answer.status_code, WHATSAPP)
    return refused(code, error_class, text or code, secrets, wait)


# --- the template catalogue (GET /{waba_id}/message_templates) ------------------------------

TEMPLATE_FIELDS = "name,language,status,category,parameter_format,components"
TEMPLATE_PAGE_SIZE = 100
MAX_TEMPLATE_PAGES = 200  # a paging loop that never ends is the provider's bug, not ours to follow


@dataclass(frozen=True)
class CatalogueRead:
    """Every template of the business account (`templates`), or why not (`error`, a
    refusal classified as a send's would be: 190 is key-level, a timeout transient)."""

    templates: list[dict] | None = None
    error: SendResult | None = None


async def message_templates(client: httpx.AsyncClient, credential: Credential) -> CatalogueRead:
    """Read every page of the WhatsApp Business Account's templates (`config.waba_id`),
    following `paging.next` while it stays on the integration's base URL's host."""
    token = (credential.credentials or {}).get("access_token")
    config = credential.config or {}
    if not token:
        return CatalogueRead(error=misconfigured(PROVIDER, "credentials.access_token"))
    if not config.get("waba_id"):
        return CatalogueRead(error=misconfigured(PROVIDER, "config.waba_id"))
    secrets = list((credential.credentials or {}).values())
    base = (config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    url: str | None = f"{base}/{config['waba_id']}/message_templates"
    params: dict | None = {"fields": TEMPLATE_FIELDS, "limit": str(TEMPLATE_PAGE_SIZE)}
    templates: list[dict] = []
    for _ in range(MAX_TEMPLATE_PAGES):
        if url is None:
            return CatalogueRead(templates=templates)
        try:
            request_url = endpoint(url)
            if request_url.host != endpoint(base).host:  # the bearer token goes to the provider only
                return CatalogueRead(error=refused(f"{PROVIDER}:paging", ErrorClass.TRANSIENT,
                                                   "paging.next points away from the provider"))
            answer = await client.get(request_url, params=params, headers={"Authorization": f"Bearer {token}"})
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return CatalogueRead(error=misconfigured(PROVIDER, "a valid config.base_url"))
        except httpx.RequestError as exc:
            return CatalogueRead(error=no_answer(PROVIDER, exc, secrets))
        if not answer.is_success:
            return CatalogueRead(error=_refusal(answer, secrets))
        try:
            page = answer.json()
            data, paging = page.get("data"), page.get("paging") or {}
            if not isinstance(data, list) or not isinstance(paging, dict):
                raise ValueError("not a page")
        except (ValueError, AttributeError):
            return CatalogueRead(error=refused(f"{PROVIDER}:http_{answer.status_code}", ErrorClass.TRANSIENT,
                                               "the answer is not a page of templates"))
        templates += [t for t in data if isinstance(t, dict) and t.get("name") and t.get("language")]
        url, params = paging.get("next") or None, None  # `next` carries every parameter itself
    return CatalogueRead(error=refused(f"{PROVIDER}:paging", ErrorClass.TRANSIENT,
                                       f"more than {MAX_TEMPLATE_PAGES} pages of templates"))
