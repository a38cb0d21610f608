"""LinkedIn steps through Unipile (provider `unipile`, channel `linkedin`).

Unipile API v1 (developer.unipile.com), header `X-API-KEY: {api_key}`, config
`account_id` (the connected LinkedIn account) and `base_url` (the workspace DSN, required):
- the lead's address is a profile URL or a LinkedIn provider id (ACo…). A URL is first
  resolved with `GET /api/v1/users/{public_identifier}?account_id=` to its `provider_id`,
  as Unipile's invite and chat routes take only provider ids;
- action `invite`:  `POST /api/v1/users/invite` JSON `{"account_id", "provider_id",
  "message"?}` → `{"object": "UserInvitationSent", "invitation_id"}`;
- action `message` (the default): `POST /api/v1/chats` multipart/form-data `account_id`,
  `attendees_ids`, `text` → `{"object": "ChatStarted", "chat_id", "message_id"}`.
The connection test (`probe`) reads the connected account, `GET /api/v1/accounts/{account_id}`.
Refused: RFC 7807 `{"type": "errors/<name>", "status", "title", "detail"}`, classified by
the name (channels/errors.py, table UNIPILE); `unipile:disconnected_account` and
`unipile:account_restricted` are also account health signals (HEALTH_SIGNALS). Unipile
documents no idempotency key.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlparse

import httpx

from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.errors import UNIPILE, classify, misconfigured, no_address, no_answer, refused, retry_after
from drumbeat.domain.errors import SendResult

PROVIDER = "unipile"
_PROVIDER_ID = re.compile(r"^(ACo|ACw|AE)[A-Za-z0-9_-]+$")


def public_identifier(address: str) -> str | None:
    """The profile slug of a LinkedIn URL (`/in/<slug>`), or None when `address` is an id."""
    address = address.strip()
    if _PROVIDER_ID.match(address):
        return None
    if "/" not in address:
        return address  # a bare public identifier
    path = urlparse(address if "://" in address else f"https://{address}").path
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] in ("in", "pub"):
        return unquote(parts[1])
    return unquote(parts[-1]) if parts else None


class UnipileAdapter:
    dedupes_by_idempotency_key = False  # no idempotency key in Unipile's API

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, credential: Credential, message: OutboundMessage) -> SendResult:
        creds, config = credential.credentials or {}, credential.config or {}
        api_key, account_id, base = creds.get("api_key"), config.get("account_id"), config.get("base_url")
        if not api_key:
            return misconfigured(PROVIDER, "credentials.api_key")
        if not account_id or not base:
            return misconfigured(PROVIDER, "config.account_id and config.base_url")
        if not (message.to or "").strip():
            return no_address(PROVIDER)
        call = _Call(self.client, base.rstrip("/"), api_key, [api_key])
        provider_id = message.to.strip()
        slug = public_identifier(provider_id)
        if slug is not None:
            answer = await call.request("GET", f"/api/v1/users/{quote(slug, safe='')}",
                                        params={"account_id": account_id})
            if isinstance(answer, SendResult):
                return answer
            provider_id = _json(answer).get("provider_id")
            if not provider_id:
                return refused(f"{PROVIDER}:resource_not_found", UNIPILE["unipile:resource_not_found"],
                               "the profile has no provider id", call.secrets)
        if (message.template or {}).get("action") == "invite":
            body = {"account_id": account_id, "provider_id": provider_id}
            if message.body:
                body["message"] = message.body
            answer = await call.request("POST", "/api/v1/users/invite", json=body)
            if isinstance(answer, SendResult):
                return answer
            data = _json(answer)
            return SendResult(provider_message_id=data.get("invitation_id") or data.get("id"))
        fields = [("account_id", account_id), ("attendees_ids", provider_id), ("text", message.body)]
        answer = await call.request("POST", "/api/v1/chats", files=[(k, (None, v)) for k, v in fields])
        if isinstance(answer, SendResult):
            return answer
        data = _json(answer)
        return SendResult(provider_message_id=data.get("message_id") or data.get("chat_id") or data.get("id"))


    async def probe(self, credential: Credential) -> SendResult:
        creds, config = credential.credentials or {}, credential.config or {}
        api_key, account_id, base = creds.get("api_key"), config.get("account_id"), config.get("base_url")
        if not api_key:
            return misconfigured(PROVIDER, "credentials.api_key")
        if not account_id or not base:
            return misconfigured(PROVIDER, "config.account_id and config.base_url")
        call = _Call(self.client, base.rstrip("/"), api_key, [api_key])
        answer = await call.request("GET", f"/api/v1/accounts/{quote(account_id, safe='')}")
        return answer if isinstance(answer, SendResult) else SendResult()


class _Call:
    def __init__(self, client: httpx.AsyncClient, base: str, api_key: str, secrets: list) -> None:
        self.client, self.base, self.secrets = client, base, secrets
        self.headers = {"X-API-KEY": api_key, "accept": "application/json"}

    async def request(self, method: str, path: str, **kw) -> httpx.Response | SendResult:
        try:
            answer = await self.client.request(method, self.base + path, headers=self.headers, **kw)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return misconfigured(PROVIDER, "a valid config.base_url")
        except httpx.RequestError as exc:
            return no_answer(PROVIDER, exc, self.secrets)
        if answer.is_success:
            return answer
        problem = _json(answer)
        kind = str(problem.get("type") or "")
        name = kind.rsplit("/", 1)[-1] if kind else ""
        code = f"{PROVIDER}:{name}" if name else f"{PROVIDER}:http_{answer.status_code}"
        text = " — ".join(str(p) for p in (problem.get("title"), problem.get("detail")) if p)
        return refused(code, classify(code, answer.status_code, UNIPILE), text or answer.reason_phrase or code,
                       self.secrets, retry_after(answer.headers))


def _json(answer: httpx.Response) -> dict:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
