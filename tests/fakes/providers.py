"""Local fake providers: real servers on 127.0.0.1 speaking the providers' wire formats.

- `FakeWhatsApp`  — WhatsApp Cloud API `POST /{version}/{phone_number_id}/messages`,
                    `GET /{version}/{phone_number_id}` (the number: the connection test) and
                    `GET /{version}/{waba_id}/message_templates` (pages; `set_templates`,
                    `fail_templates_page`); `template_status_update`, `phone_number_quality_update`
                    and `post_meta_webhook` build and sign Meta's WABA webhooks
                    With `send_statuses(url, app_secret)`, a `sent` status follows each accepted
                    message (like Meta: shortly after, echoing `biz_opaque_callback_data`,
                    signed with X-Hub-Signature-256, retried until our webhook answers 200)
- `FakeTwilio`    — Twilio 2010-04-01 `Messages.json` (create, and list: `GET` with `To`,
                    `From`, `DateSent>` over what it accepted), `Calls.json` and `GET Accounts/{sid}.json`
- `FakeUnipile`   — Unipile `GET /api/v1/users/{id}`, `POST /api/v1/users/invite`, `POST /api/v1/chats`,
                    `GET /api/v1/accounts/{id}`
- `FakeSmtp`      — an aiosmtpd SMTP server with AUTH and scriptable refusals

The HTTP fakes are Starlette apps served by uvicorn in a background thread (`with
FakeWhatsApp() as fake:` or the pytest fixtures below); `fake.base_url` is what an
integration's `config.base_url` points at. Every request that reaches a fake is recorded
(`fake.requests`, a list of `Call`), before the fake waits (`fake.latency`) or answers, so a
test can count what reached the provider even when the client gave up.

Scripting, per key, per recipient or for everything (thread-safe: call it from the test
while a worker is sending):

    fake.fail_key(token, code=190)                  # this key is refused from now on
    fake.fail_key(token, code=190, after=3)         # ... after 3 more sends went through
    fake.restore_key(token)
    fake.fail_recipient("+4915112345678", code=131026)
    fake.fail_template("promo", code=132001)        # WhatsApp
    fake.rate_limit(times=2, retry_after=3)         # the next 2 sends: 429 + Retry-After
    fake.fail_next(times=1, status=500)             # the next send: a 5xx
    fake.fail_all(code=190, after=10)               # every key refused after 10 more sends
    fake.restore_all()

A connection-test read (`kind` "probe", not counted as a send) obeys the key rules only
(`fail_key`, `fail_all`; their `after`/`times` ignored): a failed key fails its probe too.

The first matching rule (in the order they were added) answers; `after` lets that many
matching sends through first, `times` limits how often a rule fires. Codes are the
provider's own (WhatsApp and Twilio numbers, Unipile `errors/<name>` names); each fake
knows the HTTP status and body shape the provider uses for them. Counting:

    fake.contacts("+4915112345678")   # sends that reached the server for this recipient
    fake.accepted(key=token)          # sends accepted for this key
    fake.calls(key=token)             # every recorded Call of this key
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# aiosmtpd warns, for every connection, that AUTH without TLS is unsafe: the fake listens on
# loopback only. Tests silence it with this marker.
QUIET_SMTP = "ignore:Requiring AUTH while not requiring TLS:UserWarning"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Call:
    """One request that reached a fake."""

    provider: str
    method: str
    path: str
    kind: str                 # text|template (whatsapp), sms|voice (twilio), invite|message|lookup (unipile),
                              # probe (a connection test's read, any provider)
    key: str | None           # bearer token / account sid / api key
    account: str | None       # phone number id / account sid / unipile account id
    to: str | None            # the recipient, normalised like the fake's rules
    body: dict
    headers: dict
    idempotency_key: str | None
    at: float = field(default_factory=time.monotonic)
    status: int | None = None  # None while the fake has not answered yet
    answer: dict | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def is_send(self) -> bool:
        return self.kind not in ("lookup", "probe")


@dataclass
class Rule:
    match: Callable[[Call], bool]
    tag: tuple
    code: Any
    status: int | None = None
    message: str | None = None
    after: int = 0
    times: int | None = None
    retry_after: float | None = None
    seen: int = 0


class _ThreadedUvicorn:
    def __init__(self, app) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"fake-http-{self.port}")

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake provider server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


class FakeHTTPProvider:
    """Recording, scripting and serving shared by the HTTP fakes."""

    name = "provider"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Call] = []
        self.rules: list[Rule] = []
        self.latency = 0.0
        self.dropping = False  # sends do not reach the provider (answer)
        self._server: _ThreadedUvicorn | None = None
        self._counter = 0

    # --- serving ---------------------------------------------------------------------
    def routes(self) -> list[Route]:
        raise NotImplementedError

    def start(self) -> FakeHTTPProvider:
        self._server = _ThreadedUvicorn(Starlette(routes=self.routes()))
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server, "start the fake first"
        return f"http://127.0.0.1:{self._server.port}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.rules.clear()
            self.latency = 0.0
            self.dropping = False

    # --- scripting -------------------------------------------------------------------
    def normalise(self, to: str) -> str:
        return to

    def _add(self, rule: Rule) -> None:
        with self._lock:
            self.rules.append(rule)

    def _remove(self, tag: tuple) -> None:
        with self._lock:
            self.rules = [r for r in self.rules if r.tag != tag]

    def fail_key(self, key: str, code: Any = None, *, status: int | None = None, message: str | None = None,
                 after: int = 0, times: int | None = None) -> None:
        """Refuse every send made with `key` (a token, account sid, api key or account id)."""
        self._add(Rule(lambda c: key in (c.key, c.account), ("key", key), code if code is not None
                       else self.auth_code, status, message, after, times))

    def restore_key(self, key: str) -> None:
        self._remove(("key", key))

    def fail_recipient(self, to: str, code: Any = None, *, status: int | None = None, message: str | None = None,
                       after: int = 0, times: int | None = None) -> None:
        who = self.normalise(to)
        self._add(Rule(lambda c: c.to == who, ("recipient", who), code if code is not None
                       else self.recipient_code, status, message, after, times))

    def restore_recipient(self, to: str) -> None:
        self._remove(("recipient", self.normalise(to)))

    def rate_limit(self, key: str | None = None, *, times: int | None = 1, retry_after: float | None = 1.0,
                   code: Any = None, after: int = 0) -> None:
        """429 with Retry-After for the next `times` sends (of `key`, or of anyone)."""
        self._add(Rule((lambda c: key in (c.key, c.account)) if key else (lambda c: True), ("rate", key),
                       code if code is not None else self.rate_code, 429, None, after, times, retry_after))

    def fail_next(self, times: int = 1, *, status: int = 500, code: Any = None,
                  retry_after: float | None = None) -> None:
        """A provider failure (5xx by default) for the next `times` sends."""
        self._add(Rule(lambda c: True, ("next",), code if code is not None else self.server_error_code,
                       status, None, 0, times, retry_after))

    def fail_all(self, code: Any = None, *, status: int | None = None, message: str | None = None,
                 after: int = 0, times: int | None = None) -> None:
        """Refuse every send, whatever the key (after `after` more sends went through)."""
        self._add(Rule(lambda c: True, ("all",), code if code is not None else self.auth_code,
                       status, message, after, times))

    def restore_all(self) -> None:
        with self._lock:
            self.rules.clear()

    def key_rule(self, *keys: str | None) -> Rule | None:
        """The `fail_key` rule of any of `keys`, else a `fail_all` rule: what a read that is
        not a send (the template catalogue, a connection test) obeys."""
        tags = {("key", k) for k in keys if k} | {("all",)}
        with self._lock:
            return next((r for r in self.rules if r.tag in tags), None)

    def probe_answer(self, call: Call, accept: Callable[[], tuple[int, dict]]) -> JSONResponse:
        """A connection-test read: refused as the key rules say, else `accept()`."""
        rule = self.key_rule(call.key, call.account)
        if rule is not None:
            status = rule.status or self.status_for(rule.code)
            return self.refuse(call, status, self.error_body(rule.code, rule.message, status))
        return self.refuse(call, *accept())

    # --- counting --------------------------------------------------------------------
    def calls(self, *, key: str | None = None, to: str | None = None, kind: str | None = None,
              sends_only: bool = True) -> list[Call]:
        who = self.normalise(to) if to is not None else None
        with self._lock:
            return [c for c in self.requests
                    if (not sends_only or c.is_send)
                    and (key is None or key in (c.key, c.account))
                    and (who is None or c.to == who)
                    and (kind is None or c.kind == kind)]

    def contacts(self, to: str) -> int:
        """Sends for this recipient that reached the server (accepted or not)."""
        return len(self.calls(to=to))

    def accepted(self, *, key: str | None = None, to: str | None = None) -> int:
        return sum(1 for c in self.calls(key=key, to=to) if c.accepted)

    # --- answering -------------------------------------------------------------------
    auth_code: Any = None
    recipient_code: Any = None
    rate_code: Any = None
    server_error_code: Any = None

    def status_for(self, code: Any) -> int:
        return 400

    def error_body(self, code: Any, message: str | None, status: int) -> dict:
        raise NotImplementedError

    def next_id(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _record(self, call: Call) -> None:
        with self._lock:
            self.requests.append(call)

    def _scripted(self, call: Call) -> Rule | None:
        with self._lock:
            for rule in list(self.rules):
                if not rule.match(call):
                    continue
                if rule.seen < rule.after:
                    rule.seen += 1
                    continue  # not yet: this one goes through (unless a later rule answers it)
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
                return rule
        return None

    async def answer(self, call: Call, accept: Callable[[], tuple[int, dict]]) -> JSONResponse:
        """Record the call, wait `latency`, then answer it from the rules or `accept()`.
        While `dropping`, a send never reaches the provider: not recorded, answered with
        a server error after `latency` (a sender killed meanwhile never learns it)."""
        if self.dropping and call.is_send:
            if self.latency:
                await asyncio.sleep(self.latency)
            status = self.status_for(self.server_error_code)
            body = self.error_body(self.server_error_code, None, status)
            with self._lock:
                call.status, call.answer = status, body
            return JSONResponse(body, status_code=status)
        self._record(call)
        if self.latency:
            await asyncio.sleep(self.latency)
        rule = self._scripted(call) if call.is_send else None
        headers = {}
        if rule is not None:
            status = rule.status or self.status_for(rule.code)
            body = self.error_body(rule.code, rule.message, status)
            if rule.retry_after is not None:
                headers["Retry-After"] = str(int(rule.retry_after)) if float(rule.retry_after).is_integer() \
                    else str(rule.retry_after)
        else:
            status, body = accept()
        with self._lock:
            call.status, call.answer = status, body
        return JSONResponse(body, status_code=status, headers=headers)

    def refuse(self, call: Call, status: int, body: dict) -> JSONResponse:
        """An answer the fake gives by itself (bad auth, a request the spec forbids)."""
        self._record(call)
        with self._lock:
            call.status, call.answer = status, body
        return JSONResponse(body, status_code=status)


def _idempotency(request: Request) -> str | None:
    return request.headers.get("idempotency-key") or request.headers.get("i-twilio-idempotency-token")


# --- WhatsApp Cloud API ------------------------------------------------------------------

WHATSAPP_MESSAGES = {
    0: "(#0) AuthException", 4: "(#4) Application request limit reached", 10: "(#10) Permission denied",
    100: "(#100) Invalid parameter", 131000: "Something went wrong", 131016: "Service unavailable",
    130429: "Rate limit hit", 131026: "Message undeliverable", 131031: "Business Account locked",
    131047: "Re-engagement message", 131050: "Unable to deliver the message. This recipient has chosen to "
    "stop receiving marketing messages on WhatsApp from your business.", 131056: "(Business Account, "
    "Consumer Account) pair rate limit hit", 132000: "Number of parameters does not match the expected "
    "number of params", 132001: "Template name does not exist in the translation", 132015: "Template is "
    "Paused", 132016: "Template is Disabled", 190: "Error validating access token: Session has expired",
    368: "Temporarily blocked for policies violations", 80007: "Rate limit issues",
}


class FakeWhatsApp(FakeHTTPProvider):
    name = "whatsapp"
    auth_code, recipient_code, rate_code, server_error_code = 190, 131026, 130429, 131000

    def normalise(self, to: str) -> str:
        return re.sub(r"\D", "", to or "")

    def fail_template(self, name: str, code: int = 132001, *, status: int | None = None,
                      message: str | None = None, after: int = 0, times: int | None = None) -> None:
        self._add(Rule(lambda c: (c.body.get("template") or {}).get("name") == name, ("template", name), code,
                       status, message, after, times))

    def restore_template(self, name: str) -> None:
        self._remove(("template", name))

    def status_for(self, code: Any) -> int:
        if code in (0, 190):
            return 401
        if code in (3, 10, 368, 131031, 131030) or (isinstance(code, int) and 200 <= code < 300):
            return 403
        if code in (4, 80007, 130429):
            return 429
        if code in (1, 131000):
            return 500
        if code in (2, 131016):
            return 503
        return 400

    def error_body(self, code: Any, message: str | None, status: int) -> dict:
        error = {"message": message or WHATSAPP_MESSAGES.get(code, f"(#{code}) error"),
                 "type": "OAuthException", "code": code, "fbtrace_id": secrets.token_urlsafe(12)}
        if 131000 <= int(code) < 140000:
            error["error_data"] = {"messaging_product": "whatsapp", "details": error["message"]}
        if status >= 500 or status == 429:
            error["is_transient"] = True
        return {"error": error}

    def routes(self) -> list[Route]:
        return [Route("/{version}/{phone_number_id}/messages", self.messages, methods=["POST"]),
                Route("/{version}/{waba_id}/message_templates", self.message_templates, methods=["GET"]),
                Route("/{version}/{phone_number_id}", self.phone_number, methods=["GET"])]

    async def phone_number(self, request: Request) -> JSONResponse:
        """`getPhoneNumberById`: the number's display form, verified name and quality."""
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        number_id = request.path_params["phone_number_id"]
        call = Call(self.name, "GET", request.url.path, "probe", token, number_id, None,
                    dict(request.query_params), dict(request.headers), None)
        if not token:
            return self.refuse(call, 401, self.error_body(190, "Invalid OAuth access token", 401))
        return self.probe_answer(call, lambda: (200, {
            "id": number_id, "display_phone_number": "+1 555-010-0000", "verified_name": "Acme Outreach",
            "quality_rating": "GREEN"}))

    # --- the template catalogue: GET /{version}/{waba_id}/message_templates ---------------
    # Pages of `templates_page_size` (the `limit` a client asks for is ignored so that tests
    # see several pages), `paging.cursors` and a `paging.next` URL as Meta gives them.
    templates_page_size = 2

    def __init__(self) -> None:
        super().__init__()
        self.catalogues: dict[str, list[dict]] = {}
        self.page_failures: dict[int, tuple[Any, float | None]] = {}
        self.status_target: tuple[str, str] | None = None  # (webhook URL, app secret)
        self.status_delay = 0.05
        self.statuses_delivered = 0  # status webhooks our server answered 200
        self._status_tasks: set[asyncio.Task] = set()
        self._status_client = None

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.catalogues: dict[str, list[dict]] = {}
            self.page_failures: dict[int, tuple[Any, float | None]] = {}
            self.status_target = None
            self.status_delay = 0.05
            self.statuses_delivered = 0

    # --- status webhooks, as Meta sends them -------------------------------------------------
    def send_statuses(self, url: str, app_secret: str, *, delay: float | tuple[float, float] = 0.05) -> None:
        """From now on, `delay` seconds after accepting a message (or a random delay in that
        range), POST its `sent` status to `url` (our /webhooks/whatsapp/{integration_id}),
        signed with `app_secret`."""
        with self._lock:
            self.status_target, self.status_delay = (url, app_secret), delay

    def statuses_pending(self) -> int:
        return sum(1 for t in self._status_tasks if not t.done())

    async def _status_after(self, answered: asyncio.Future, call: Call, target: tuple[str, str],
                            delay: float | tuple[float, float]) -> None:
        """Once the send is answered (even if the sender hung up meanwhile), its status."""
        import hashlib
        import hmac
        import json

        import httpx

        await asyncio.wait([answered])
        if not call.accepted:
            return
        import random

        await asyncio.sleep(random.uniform(*delay) if isinstance(delay, tuple) else delay)
        message = call.answer["messages"][0]
        status = {"id": message["id"], "status": "sent", "timestamp": str(int(time.time())),
                  "recipient_id": call.to}
        if call.body.get("biz_opaque_callback_data"):
            status["biz_opaque_callback_data"] = call.body["biz_opaque_callback_data"]
        body = json.dumps(meta_webhook("messages", {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": "15550100000", "phone_number_id": call.account}, "statuses": [status]})).encode()
        url, secret = target
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
        if self._status_client is None:  # one client (its connections kept) in the server's loop
            self._status_client = httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=16))
        http = self._status_client
        for attempt in range(100):  # Meta retries a webhook that did not answer 200
            try:
                answer = await http.post(url, content=body, headers=headers)
                if answer.status_code == 200:
                    with self._lock:
                        self.statuses_delivered += 1
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))

    def set_templates(self, waba_id: str, templates: list[dict]) -> None:
        """The business account's templates, in Meta's shape (name, language, status, ...)."""
        with self._lock:
            self.catalogues[str(waba_id)] = [dict(t) for t in templates]

    def fail_templates_page(self, page: int, code: Any = 131000, *, hang: float | None = None) -> None:
        """Page `page` (0-based) answers Meta's error `code`, or, with `hang`, no answer for
        that many seconds (a timeout on the client's side)."""
        with self._lock:
            self.page_failures[page] = (code, hang)

    def template_calls(self) -> list[Call]:
        with self._lock:
            return [c for c in self.requests if c.path.endswith("/message_templates")]

    async def message_templates(self, request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        waba_id = request.path_params["waba_id"]
        query = dict(request.query_params)
        call = Call(self.name, "GET", request.url.path, "lookup", token, waba_id, None, query,
                    dict(request.headers), None)
        if not token:
            return self.refuse(call, 401, self.error_body(190, "Invalid OAuth access token", 401))
        try:
            offset = int(base64.urlsafe_b64decode(query["after"].encode()).decode()) if query.get("after") else 0
        except ValueError:
            return self.refuse(call, 400, self.error_body(100, "(#100) Invalid cursor", 400))
        page = offset // self.templates_page_size
        with self._lock:
            failure = self.page_failures.get(page)
            everything = self.catalogues.get(waba_id, [])
        key_rule = self.key_rule(token)
        if key_rule is not None:
            failure = (key_rule.code, None)
        if failure is not None:
            code, hang = failure
            if hang:
                self._record(call)
                await asyncio.sleep(hang)
            status = self.status_for(code)
            return self.refuse(call, status, self.error_body(code, None, status))
        data = everything[offset:offset + self.templates_page_size]
        cursor = lambda n: base64.urlsafe_b64encode(str(n).encode()).decode()  # noqa: E731
        paging: dict = {"cursors": {"before": cursor(offset), "after": cursor(offset + len(data))}}
        if offset + len(data) < len(everything):
            rest = {k: v for k, v in query.items() if k != "after"}
            paging["next"] = (f"{self.base_url}{request.url.path}?"
                              + "&".join(f"{k}={v}" for k, v in {**rest, "after": cursor(offset + len(data))}.items()))
        return self.refuse(call, 200, {"data": data, "paging": paging})

    async def messages(self, request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        try:
            body = await request.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        call = Call(self.name, "POST", request.url.path, body.get("type") or "?", token,
                    request.path_params["phone_number_id"], self.normalise(str(body.get("to") or "")), body,
                    dict(request.headers), _idempotency(request))
        if not token:
            return self.refuse(call, 401, self.error_body(190, "Invalid OAuth access token", 401))
        problem = _whatsapp_problem(body)
        if problem:
            return self.refuse(call, 400, self.error_body(100, f"(#100) {problem}", 400))

        def accept() -> tuple[int, dict]:
            wamid = f"wamid.{self.next_id():06d}{secrets.token_hex(8)}"
            return 200, {"messaging_product": "whatsapp",
                         "contacts": [{"input": body["to"], "wa_id": call.to}],
                         "messages": [{"id": wamid, "message_status": "accepted"}]}

        with self._lock:
            target, delay = self.status_target, self.status_delay
        if target is None:
            return await self.answer(call, accept)
        answered = asyncio.ensure_future(self.answer(call, accept))
        task = asyncio.get_running_loop().create_task(self._status_after(answered, call, target, delay))
        self._status_tasks.add(task)
        task.add_done_callback(self._status_tasks.discard)
        # Shielded: a sender killed mid-call does not take back what the provider received.
        return await asyncio.shield(answered)


def _whatsapp_problem(body: dict) -> str | None:
    """What the official schema (Message: TextMessage | TemplateMessage) would refuse."""
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required."
    if not re.fullmatch(r"\+?\d{6,15}", str(body.get("to") or "")):
        return "Invalid parameter 'to'."
    if body.get("type") == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not text.get("body"):
            return "The parameter text['body'] is required."
    elif body.get("type") == "template":
        template = body.get("template")
        if not isinstance(template, dict) or not template.get("name"):
            return "The parameter template['name'] is required."
        if not isinstance(template.get("language"), dict) or not template["language"].get("code"):
            return "The parameter template['language']['code'] is required."
    else:
        return "Unsupported message type."
    return None


def meta_webhook(field_name: str, value: dict, waba_id: str = "102290129340398") -> dict:
    """A WhatsApp Business Account webhook as Meta posts it: one change of `field_name`."""
    return {"object": "whatsapp_business_account",
            "entry": [{"id": waba_id, "time": int(time.time()), "changes": [{"value": value, "field": field_name}]}]}


def template_status_update(name: str, language: str, event: str, *, reason: str = "NONE",
                           template_id: int = 594425479261596) -> dict:
    """Meta's `message_template_status_update` (APPROVED, PAUSED, DISABLED, REJECTED, ...)."""
    return meta_webhook("message_template_status_update", {
        "event": event, "message_template_id": template_id, "message_template_name": name,
        "message_template_language": language, "reason": reason})


def phone_number_quality_update(event: str, *, current_limit: str | None = None, max_daily: int | None = None,
                                display_phone_number: str = "15550783881") -> dict:
    """Meta's `phone_number_quality_update` (FLAGGED, UNFLAGGED, RESTRICTED, upgrades ...)."""
    value: dict = {"display_phone_number": display_phone_number, "event": event}
    if current_limit is not None:
        value["current_limit"] = current_limit
    if max_daily is not None:
        value["max_daily_conversations_per_business"] = str(max_daily)
    return meta_webhook("phone_number_quality_update", value)


def post_meta_webhook(client, integration_id: str, payload: dict, app_secret: str | None):
    """POST `payload` to our WhatsApp webhook signed as Meta signs it (X-Hub-Signature-256:
    HMAC-SHA256 of the raw body with the app secret; None: unsigned)."""
    import hashlib
    import hmac
    import json

    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if app_secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(f"/webhooks/whatsapp/{integration_id}", content=body, headers=headers)


# --- Twilio --------------------------------------------------------------------------------

TWILIO_MESSAGES = {
    20003: "Authenticate", 20005: "Account not active", 10001: "Account is not active",
    20429: "Too Many Requests", 14107: "SMS send rate limit exceeded", 20500: "Internal Server Error",
    20503: "Service Unavailable", 21211: "Invalid 'To' Phone Number", 21408: "Permission to send an SMS has "
    "not been enabled for the region indicated by the 'To' number", 21602: "Message body is required.",
    21603: "A 'From' phone number is required.", 21606: "The 'From' phone number provided is not a valid "
    "message-capable Twilio phone number for this destination/account", 21610: "Attempt to send to "
    "unsubscribed recipient", 21614: "'To' number is not a valid mobile number", 21660: "Mismatch between "
    "the 'From' number and the account", 21205: "Url parameter is required.",
}


class FakeTwilio(FakeHTTPProvider):
    name = "twilio"
    auth_code, recipient_code, rate_code, server_error_code = 20003, 21211, 20429, 20500

    def status_for(self, code: Any) -> int:
        return {20003: 401, 20005: 401, 10001: 401, 20008: 403, 20404: 404, 20429: 429, 20500: 500,
                20503: 503}.get(code, 400)

    def error_body(self, code: Any, message: str | None, status: int) -> dict:
        return {"code": code, "message": message or TWILIO_MESSAGES.get(code, f"Error {code}"),
                "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}

    def routes(self) -> list[Route]:
        return [Route("/2010-04-01/Accounts/{sid}/Messages.json", self.messages, methods=["POST"]),
                Route("/2010-04-01/Accounts/{sid}/Messages.json", self.list_messages, methods=["GET"]),
                Route("/2010-04-01/Accounts/{sid}/Calls.json", self.calls_json, methods=["POST"]),
                Route("/2010-04-01/Accounts/{sid}.json", self.account, methods=["GET"])]

    async def account(self, request: Request) -> JSONResponse:
        """Fetch an Account: the spec's `api.v2010.account`, `status: active`."""
        sid = request.path_params["sid"]
        user, password = _basic(request.headers.get("authorization", ""))
        call = Call(self.name, "GET", request.url.path, "probe", user, sid, None, {}, dict(request.headers), None)
        if not user or not password or user != sid:
            return self.refuse(call, 401, self.error_body(20003, None, 401))
        return self.probe_answer(call, lambda: (200, {
            "sid": sid, "owner_account_sid": sid, "friendly_name": "Acme Outreach", "status": "active",
            "type": "Full", "auth_token": "****", "uri": f"/2010-04-01/Accounts/{sid}.json"}))

    async def messages(self, request: Request) -> JSONResponse:
        return await self._create(request, "sms")

    async def list_messages(self, request: Request) -> JSONResponse:
        """`ListMessage`: the messages this account was answered 201 for, newest first,
        filtered by `To`, `From` and `DateSent>` (a day, YYYY-MM-DD) like Twilio's."""
        sid = request.path_params["sid"]
        user, password = _basic(request.headers.get("authorization", ""))
        query = dict(request.query_params)
        call = Call(self.name, "GET", request.url.path, "lookup", user, sid, query.get("To"), query,
                    dict(request.headers), None)
        if not user or not password or user != sid:
            return self.refuse(call, 401, self.error_body(20003, None, 401))
        with self._lock:
            sent = [c.answer for c in self.requests
                    if c.kind == "sms" and c.account == sid and c.accepted and c.answer]
        since = query.get("DateSent>")
        found = [m for m in reversed(sent)
                 if (not query.get("To") or m["to"] == query["To"])
                 and (not query.get("From") or m.get("from") == query["From"])
                 and (not since or time.strftime("%Y-%m-%d", time.strptime(m["date_created"][5:25],
                                                                           "%d %b %Y %H:%M:%S")) >= since)]
        size = int(query.get("PageSize") or 50)
        return self.refuse(call, 200, {"messages": found[:size], "page": 0, "page_size": size,
                                       "next_page_uri": None, "uri": request.url.path})

    async def calls_json(self, request: Request) -> JSONResponse:
        return await self._create(request, "voice")

    async def _create(self, request: Request, kind: str) -> JSONResponse:
        sid = request.path_params["sid"]
        user, password = _basic(request.headers.get("authorization", ""))
        form = dict(await request.form()) if request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded") else {}
        call = Call(self.name, "POST", request.url.path, kind, user, sid, str(form.get("To") or ""),
                    {k: str(v) for k, v in form.items()}, dict(request.headers), _idempotency(request))
        if not user or not password or user != sid:
            return self.refuse(call, 401, self.error_body(20003, None, 401))
        problem = _twilio_problem(kind, call.body)
        if problem:
            return self.refuse(call, 400, self.error_body(problem, None, 400))

        def accept() -> tuple[int, dict]:
            prefix = "CA" if kind == "voice" else "SM"
            resource_sid = f"{prefix}{self.next_id():08x}{secrets.token_hex(12)}"
            answer = {"sid": resource_sid, "account_sid": sid, "to": call.body["To"],
                      "from": call.body.get("From"), "status": "queued", "api_version": "2010-04-01",
                      "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                      "uri": f"/2010-04-01/Accounts/{sid}/{'Calls' if kind == 'voice' else 'Messages'}/"
                             f"{resource_sid}.json"}
            if kind == "sms":
                answer.update(body=call.body.get("Body"), direction="outbound-api", num_segments="1",
                              error_code=None, error_message=None,
                              messaging_service_sid=call.body.get("MessagingServiceSid"))
            else:
                answer.update(direction="outbound-api", duration=None)
            return 201, answer

        return await self.answer(call, accept)


def _basic(header: str) -> tuple[str | None, str | None]:
    if not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, password


def _twilio_problem(kind: str, form: dict) -> int | None:
    """The spec's required fields: To; From (or MessagingServiceSid for messages); a Body
    (or MediaUrl/ContentSid) for messages, a Url/Twiml/ApplicationSid for calls."""
    if not form.get("To"):
        return 21211 if kind == "sms" else 21201
    if kind == "sms":
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return 21603
        if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
            return 21602
    else:
        if not form.get("From"):
            return 21603
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return 21205
    return None


# --- Unipile -------------------------------------------------------------------------------

UNIPILE_STATUS = {
    "missing_credentials": 401, "invalid_credentials": 401, "expired_credentials": 401,
    "disconnected_account": 401, "insufficient_privileges": 401, "wrong_account": 401,
    "account_restricted": 403, "insufficient_permissions": 403, "feature_not_subscribed": 403,
    "subscription_required": 403, "invalid_parameters": 400, "too_many_characters": 400,
    "resource_not_found": 404, "too_many_requests": 429, "unexpected_error": 500, "provider_error": 500,
    "service_unavailable": 503, "network_down": 503, "request_timeout": 504,
}
UNIPILE_TITLES = {
    "disconnected_account": ("Disconnected account", "The account appears to be disconnected from the provider "
                             "service."),
    "invalid_recipient": ("Invalid recipient", "Make sure that the recipient ID is valid and that the "
                          "corresponding profile is not locked."),
    "account_restricted": ("Account restricted", "Access to this account has been restricted by the provider."),
    "too_many_requests": ("Too many requests", "Please retry later."),
    "unexpected_error": ("Unexpected error", "Something went wrong."),
    "missing_credentials": ("Missing credentials", "Some credentials are necessary to perform the request."),
}


def _provider_id(address: str) -> str:
    address = (address or "").strip()
    if re.fullmatch(r"(ACo|ACw|AE)[A-Za-z0-9_-]+", address):
        return address
    match = re.search(r"/(?:in|pub)/([^/?#]+)", address)
    slug = match.group(1) if match else address.rstrip("/").rsplit("/", 1)[-1]
    return "ACo" + re.sub(r"[^A-Za-z0-9_-]", "_", slug)


class FakeUnipile(FakeHTTPProvider):
    """Profiles resolve to `ACo<slug>`; lookups are recorded but never scripted."""

    name = "unipile"
    auth_code, recipient_code, rate_code, server_error_code = (
        "disconnected_account", "invalid_recipient", "too_many_requests", "unexpected_error")

    def normalise(self, to: str) -> str:
        return _provider_id(to)

    def status_for(self, code: Any) -> int:
        return UNIPILE_STATUS.get(code, 422)

    def error_body(self, code: Any, message: str | None, status: int) -> dict:
        title, detail = UNIPILE_TITLES.get(code, (str(code).replace("_", " ").capitalize(), ""))
        return {"title": title, "detail": message or detail, "instance": secrets.token_hex(6),
                "type": f"errors/{code}", "status": status}

    def routes(self) -> list[Route]:
        return [Route("/api/v1/users/invite", self.invite, methods=["POST"]),
                Route("/api/v1/users/{identifier}", self.profile, methods=["GET"]),
                Route("/api/v1/chats", self.start_chat, methods=["POST"]),
                Route("/api/v1/accounts/{account_id}", self.account, methods=["GET"])]

    async def account(self, request: Request) -> JSONResponse:
        """Retrieve an account: a connected LinkedIn account whose source is OK."""
        account_id = request.path_params["account_id"]
        call = Call(self.name, "GET", request.url.path, "probe", request.headers.get("x-api-key"), account_id,
                    None, {}, dict(request.headers), None)
        if refusal := self._unauthenticated(call):
            return refusal
        return self.probe_answer(call, lambda: (200, {
            "object": "Account", "type": "LINKEDIN", "id": account_id, "name": "Ada Lovelace",
            "created_at": "2026-01-05T09:00:00.000Z", "sources": [{"id": f"{account_id}_MESSAGING", "status": "OK"}]}))

    def _unauthenticated(self, call: Call) -> JSONResponse | None:
        if not call.key:
            return self.refuse(call, 401, self.error_body("missing_credentials", None, 401))
        return None

    async def profile(self, request: Request) -> JSONResponse:
        identifier = request.path_params["identifier"]
        call = Call(self.name, "GET", request.url.path, "lookup", request.headers.get("x-api-key"),
                    request.query_params.get("account_id"), _provider_id(identifier), {"identifier": identifier},
                    dict(request.headers), None)
        if refusal := self._unauthenticated(call):
            return refusal
        return await self.answer(call, lambda: (200, {
            "object": "UserProfile", "provider": "LINKEDIN", "provider_id": call.to,
            "public_identifier": identifier, "first_name": identifier.split("-")[0].capitalize()}))

    async def invite(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        call = Call(self.name, "POST", request.url.path, "invite", request.headers.get("x-api-key"),
                    body.get("account_id"), str(body.get("provider_id") or ""), body, dict(request.headers),
                    _idempotency(request))
        if refusal := self._unauthenticated(call):
            return refusal
        if not body.get("account_id") or not body.get("provider_id"):
            return self.refuse(call, 400, self.error_body("invalid_parameters", "account_id and provider_id "
                                                          "are required", 400))
        if len(str(body.get("message") or "")) > 300:
            return self.refuse(call, 400, self.error_body("too_many_characters", None, 400))
        return await self.answer(call, lambda: (201, {
            "object": "UserInvitationSent", "invitation_id": f"inv_{self.next_id():06d}", "usage": 1}))

    async def start_chat(self, request: Request) -> JSONResponse:
        form = await request.form()
        attendees = form.getlist("attendees_ids")
        body = {"account_id": form.get("account_id"), "attendees_ids": [str(a) for a in attendees],
                "text": form.get("text"), "content_type": request.headers.get("content-type", "")}
        call = Call(self.name, "POST", request.url.path, "message", request.headers.get("x-api-key"),
                    body["account_id"], body["attendees_ids"][0] if attendees else "", body,
                    dict(request.headers), _idempotency(request))
        if refusal := self._unauthenticated(call):
            return refusal
        if not body["account_id"] or not attendees:
            return self.refuse(call, 400, self.error_body("invalid_parameters", "account_id and attendees_ids "
                                                          "are required", 400))
        n = self.next_id()
        return await self.answer(call, lambda: (201, {"object": "ChatStarted", "chat_id": f"chat_{n:06d}",
                                                      "message_id": f"msg_{n:06d}"}))


# --- SMTP ----------------------------------------------------------------------------------

@dataclass
class Delivery:
    """One SMTP transaction that reached DATA."""

    mail_from: str
    rcpt_tos: list[str]
    login: str | None
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)


class FakeSmtp:
    """An aiosmtpd server on 127.0.0.1 requiring AUTH (LOGIN/PLAIN, no TLS needed), which
    refuses scripted senders and recipients and records every RCPT and delivered message."""

    def __init__(self, users: dict[str, str] | None = None, *, auth_required: bool = True) -> None:
        self.users = dict(users or {"mailer": "s3cret-pass"})
        self.auth_required = auth_required
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.rcpts: list[str] = []          # every RCPT TO that reached the server
        self.refused_recipients: dict[str, str] = {}
        self.refused_senders: dict[str, str] = {}
        self.data_reply: str | None = None
        self.delay = 0.0                    # seconds to wait before answering DATA
        self.port = free_port()
        self._controller: Controller | None = None

    def start(self) -> FakeSmtp:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, authenticator=self._authenticate,
                                      auth_required=self.auth_required, auth_require_tls=False, ready_timeout=10)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.deliveries.clear()
            self.rcpts.clear()
            self.refused_recipients.clear()
            self.refused_senders.clear()
            self.data_reply = None
            self.delay = 0.0

    def config(self, sender: str = "Drumbeat <outreach@example.com>", **overrides) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "from": sender, "starttls": False, **overrides}

    # scripting
    def refuse_recipient(self, address: str, code: int = 550, message: str = "5.1.1 User unknown") -> None:
        with self._lock:
            self.refused_recipients[address.lower()] = f"{code} {message}"

    def refuse_sender(self, address: str, code: int = 553, message: str = "5.7.1 Sender address rejected") -> None:
        with self._lock:
            self.refused_senders[address.lower()] = f"{code} {message}"

    def refuse_data(self, code: int = 554, message: str = "5.7.1 Message rejected as spam") -> None:
        with self._lock:
            self.data_reply = f"{code} {message}"

    def contacts(self, address: str) -> int:
        with self._lock:
            return sum(1 for a in self.rcpts if a.lower() == address.lower())

    # aiosmtpd hooks (run in the server's thread)
    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self._lock:
            reply = self.refused_senders.get(address.lower())
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            self.rcpts.append(address)
            reply = self.refused_recipients.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            if self.data_reply:
                return self.data_reply
            self.deliveries.append(Delivery(envelope.mail_from, list(envelope.rcpt_tos),
                                            session.auth_data if session.authenticated else None,
                                            envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


# --- pytest fixtures: one server per test session, reset for every test ---------------------

@pytest.fixture(scope="session")
def _whatsapp_fake() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp() as fake:
        yield fake


@pytest.fixture(scope="session")
def _twilio_fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="session")
def _unipile_fake() -> Iterator[FakeUnipile]:
    with FakeUnipile() as fake:
        yield fake


@pytest.fixture(scope="session")
def _smtp_fake() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


@pytest.fixture
def whatsapp_server(_whatsapp_fake: FakeWhatsApp) -> FakeWhatsApp:
    _whatsapp_fake.reset()
    return _whatsapp_fake


@pytest.fixture
def twilio_server(_twilio_fake: FakeTwilio) -> FakeTwilio:
    _twilio_fake.reset()
    return _twilio_fake


@pytest.fixture
def unipile_server(_unipile_fake: FakeUnipile) -> FakeUnipile:
    _unipile_fake.reset()
    return _unipile_fake


@pytest.fixture
def smtp_server(_smtp_fake: FakeSmtp) -> FakeSmtp:
    _smtp_fake.reset()
    return _smtp_fake
