"""Integrations in the browser (issue 19): add one with a form of named fields per provider,
edit it on its page under the API's PATCH rule, send health events, test the connection.

Every action is a plain form POST answered with a page or a redirect. The fields are the
services' own shapes (services.integrations.SHAPES): a field is required when the service
requires it, and the service's field errors ("credentials.access_token") land beside the
input of the same name. Secrets are write-only: the page shows only their masked value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from drumbeat.domain.channels import HEALTH_EVENTS, PROVIDER_CHANNELS, Channel, Health, Provider
from drumbeat.domain.exceptions import DomainError, NotFound, ValidationFailed
from drumbeat.domain.roles import Role
from drumbeat.schemas import Cap, Name
from drumbeat.services import integrations
from drumbeat.web import present
from drumbeat.web.pages import (
    Session,
    _again,
    _ctx,
    _guard_post,
    _integration_page,
    _once,
    _page,
    _problem,
    _session,
    _status_of,
    _to_login,
    templates,
)

router = APIRouter(include_in_schema=False)

# The API's own types, so the form accepts exactly what the API does.
LABEL, CAP = TypeAdapter(Name), TypeAdapter(Cap)


@dataclass(frozen=True)
class Spec:
    """One named field of a provider's form; `name` is the service's field path."""
    name: str
    label: str
    kind: str = "text"  # text | secret | number | url | checkbox | select
    hint: str = ""
    advanced: bool = False
    options: tuple[tuple[str, str], ...] = ()
    default: str = ""


BASE_URL_HINT = "Only to reach another host or API version; leave empty for the provider's own."
FORMS: dict[Provider, tuple[Spec, ...]] = {
    Provider.WHATSAPP_CLOUD: (
        Spec("credentials.access_token", "Access token", "secret", "A system user's permanent token."),
        Spec("credentials.app_secret", "App secret", "secret", "Checks the signature of Meta's webhooks."),
        Spec("config.phone_number_id", "Phone number ID"),
        Spec("config.waba_id", "WhatsApp Business Account ID", hint="Needed to read the message templates."),
        Spec("config.base_url", "Base URL", "url", BASE_URL_HINT + " Example: https://graph.facebook.com/v23.0",
             advanced=True),
    ),
    Provider.TWILIO: (
        Spec("credentials.account_sid", "Account SID", "secret"),
        Spec("credentials.auth_token", "Auth token", "secret"),
        Spec("config.from", "From number or messaging service SID",
             hint="A number such as +15550100000, or MG… to send through a Messaging Service."),
        Spec("config.base_url", "Base URL", "url", BASE_URL_HINT, advanced=True),
    ),
    Provider.SMTP: (
        Spec("config.host", "Host"),
        Spec("config.port", "Port", "number", default="587"),
        Spec("credentials.username", "Username", "secret"),
        Spec("credentials.password", "Password", "secret"),
        Spec("config.from", "From", hint="An address, or Name <address>."),
        Spec("config.starttls", "Use STARTTLS", "checkbox", default="on"),
        Spec("credentials.inbound_secret", "Inbound secret", "secret", "Signs the replies your mail relay posts.",
             advanced=True),
    ),
    Provider.UNIPILE: (
        Spec("credentials.api_key", "API key", "secret"),
        Spec("config.account_id", "Account ID"),
        Spec("config.base_url", "Base URL", "url", "Your Unipile DSN, e.g. https://api1.unipile.com:13111"),
        Spec("credentials.webhook_secret", "Webhook secret", "secret", "Signs Unipile's webhooks (else the API key).",
             advanced=True),
    ),
    Provider.SANDBOX: (
        Spec("config.fail", "Fail with", "select", options=(
            ("", "Never fail"), ("key", "A key error (the key is refused)"), ("rate", "A rate limit"),
            ("transient", "A transient error"), ("lead", "A lead error (this recipient)"),
            ("campaign", "A campaign error"))),
        Spec("config.fail_after", "Fail after this many sends", "number", "Empty: from the first send."),
        Spec("config.latency_ms", "Latency (milliseconds)", "number", default="0"),
        Spec("config.dedupe", "Deduplicate by idempotency key", "checkbox", advanced=True),
    ),
}
# The secret a failed key is fixed by (the page's banner links to its input).
KEY_FIELDS = {Provider.WHATSAPP_CLOUD: "credentials.access_token", Provider.TWILIO: "credentials.auth_token",
              Provider.SMTP: "credentials.password", Provider.UNIPILE: "credentials.api_key"}
PROVIDER_NAMES = {Provider.WHATSAPP_CLOUD: "WhatsApp Cloud API", Provider.TWILIO: "Twilio (SMS or voice)",
                  Provider.SMTP: "Email (SMTP)", Provider.UNIPILE: "LinkedIn (Unipile)",
                  Provider.SANDBOX: "Sandbox (in-process test channel)"}
HEALTH_BUTTONS = {"reconnected": "Reconnect", "disconnected": "Mark disconnected",
                  "restriction_lifted": "Lift restriction"}


def _required(provider: Provider, name: str) -> bool:
    """Whether the service requires this field (its pydantic shape decides, not this page)."""
    part, key = name.split(".", 1)
    model = integrations.SHAPES[provider][0 if part == "credentials" else 1]
    return any((f.alias or n) == key and f.is_required() for n, f in model.model_fields.items())


def _channels(provider: Provider) -> list[str]:
    return [c.value for c in Channel if c in PROVIDER_CHANNELS[provider]]


def _words(message: str) -> str:
    return "Required." if message == "Field required" else message


# --- the fields as a template shows them ---------------------------------------------------

def form_fields(provider: str, current: dict | None = None, typed: dict | None = None,
                errors: dict | None = None) -> list[dict]:
    """The provider's fields with their values: what was typed (after a refused POST), else
    the stored config (`current`, an integration view); a secret shows only its mask."""
    prov = Provider(provider)
    errors = errors or {}
    out = []
    for spec in FORMS[prov]:
        part, key = spec.name.split(".", 1)
        required = _required(prov, spec.name)
        stored = (current or {}).get(part, {}).get(key)
        if typed is not None:
            value = typed.get(spec.name, "")
        elif spec.kind == "secret":
            value = ""
        elif current is not None:
            value = "" if stored is None else ("on" if stored is True else "" if stored is False else str(stored))
            if spec.name == "config.starttls" and stored is None:
                value = "on"  # the adapter's default
        else:
            value = spec.default
        out.append({"name": spec.name, "id": "f-" + spec.name.replace(".", "-"), "label": spec.label,
                    "kind": spec.kind, "hint": spec.hint, "advanced": spec.advanced, "options": spec.options,
                    "required": required, "value": value, "error": errors.get(spec.name),
                    "mask": stored if spec.kind == "secret" else None,
                    "removable": spec.kind == "secret" and not required and stored is not None,
                    "removed": bool(typed and typed.get("remove." + spec.name))})
    return out


def editor(i: dict, typed: dict | None = None, errors: dict | None = None) -> dict:
    """What the integration page needs for its edit form and actions."""
    health = [(event, HEALTH_BUTTONS[event]) for event, (_, applies) in HEALTH_EVENTS.items()
              if event in HEALTH_BUTTONS and i["state"] in {h.value for h in applies}]
    return {"fields": form_fields(i["provider"], i, typed, errors), "typed": typed or {}, "errors": errors or {},
            "health": health, "label": (typed or {}).get("label", i["label"]),
            "daily_cap": (typed or {}).get("daily_cap", "" if i["daily_cap"] is None else str(i["daily_cap"])),
            "disabled": i["state"] == "disabled", "health_word": i["state"] in {h.value for h in Health}}


def key_field(provider: str) -> dict | None:
    """The input of the secret that fixes a failed key: its id (for a link) and label."""
    name = KEY_FIELDS.get(Provider(provider))
    spec = next((f for f in FORMS[Provider(provider)] if f.name == name), None)
    return {"id": "f-" + spec.name.replace(".", "-"), "label": spec.label} if spec else None


templates.env.globals.update(integration_editor=editor, key_field=key_field)


# --- reading a form ------------------------------------------------------------------------

def _typed(form: FormData) -> dict:
    return {k: str(v) for k, v in form.items() if k not in ("csrf", "form_nonce") and isinstance(v, str)}


def _basics(typed: dict) -> tuple[dict, dict]:
    """Label and daily cap, checked by the API's own types (schemas.Name, schemas.Cap)."""
    values: dict = {}
    errors: dict = {}
    label = typed.get("label", "").strip()
    try:
        values["label"] = LABEL.validate_python(label) if label else None
    except ValidationError as exc:
        errors["label"] = exc.errors()[0]["msg"] + "."
    cap = typed.get("daily_cap", "").strip()
    try:
        values["daily_cap"] = CAP.validate_python(int(cap)) if cap else None
    except (ValueError, ValidationError):
        errors["daily_cap"] = "A whole number of at least 1, or empty for no cap."
    return values, errors


def _keys(provider: Provider, typed: dict, editing: bool) -> tuple[dict, dict, dict]:
    """(credentials, config, errors) from the named fields. A blank secret is left out (kept,
    on an edit); "Remove" sends null (the PATCH rule). The config is built whole, so a field
    cleared here is cleared in the stored config."""
    credentials: dict = {}
    config: dict = {}
    errors: dict = {}
    for spec in FORMS[provider]:
        part, key = spec.name.split(".", 1)
        raw = typed.get(spec.name, "")
        if spec.kind == "checkbox":
            if raw:
                config[key] = True
            elif spec.default == "on":  # a default-on switch turned off must say so
                config[key] = False
        elif part == "credentials":
            if editing and typed.get("remove." + spec.name):
                if raw:
                    errors[spec.name] = "Type a new value or remove it, not both."
                credentials[key] = None
            elif raw:
                credentials[key] = raw
        elif raw.strip():
            config[key] = raw.strip()
    return credentials, config, errors


def _field_errors(exc: ValidationFailed) -> dict:
    out: dict = {}
    for f in exc.fields:
        name = "channel" if f["field"] == "provider" else f["field"]
        out.setdefault(name, _words(f["message"]))
    return out


# --- adding one ------------------------------------------------------------------------------

def _new_page(request: Request, s: Session, provider: Provider | None, typed: dict | None = None,
              errors: dict | None = None, status: int = 200) -> Response:
    typed = typed or {}
    channels = _channels(provider) if provider else []
    return _page(request, s, "integration_new.html", status, provider=provider.value if provider else "",
                 providers=[(p.value, name) for p, name in PROVIDER_NAMES.items()],
                 provider_name=PROVIDER_NAMES.get(provider) if provider else None,
                 fields=form_fields(provider.value, None, typed or None, errors) if provider else [],
                 channels=[(c, present.CHANNEL_WORDS.get(c, c)) for c in channels],
                 channel=typed.get("channel", channels[0] if channels else ""),
                 label=typed.get("label", ""), daily_cap=typed.get("daily_cap", ""), errors=errors or {})


def _provider(value: str) -> Provider | None:
    return Provider(value) if value in {p.value for p in Provider} else None


@router.get("/integrations/new", response_class=HTMLResponse)
def new_integration(request: Request, provider: str = ""):
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not s.is_owner:
        return _problem(request, s, "forbidden", "Adding an integration needs the owner role.", 403)
    return _new_page(request, s, _provider(provider))


@router.post("/integrations/new")
async def create_integration(request: Request):
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    typed = _typed(form)
    provider = _provider(typed.get("provider", ""))
    if provider is None:
        return _new_page(request, guard, None, typed, {"provider": "Choose a provider."}, 422)
    values, errors = _basics(typed)
    credentials, config, key_errors = _keys(provider, typed, editing=False)
    errors.update(key_errors)
    channel = typed.get("channel", "")
    if channel not in _channels(provider):
        errors["channel"] = "Choose one of the channels this provider serves."
    if errors:
        return _new_page(request, guard, provider, typed, errors, 422)
    data = {"provider": provider.value, "channel": channel, "credentials": credentials, "config": config, **values}
    try:
        done = await run_in_threadpool(_once, request, guard, str(form.get("form_nonce", "")),
                                       lambda c: integrations.create_integration(c, guard.principal, data),
                                       lambda made: f"/integrations/{quote(made['id'], safe='')}")
    except ValidationFailed as exc:
        return _new_page(request, guard, provider, typed, _field_errors(exc), 422)
    except DomainError as exc:
        return _problem(request, guard, exc.code, exc.message, _status_of(exc), exc.details)
    if done.repeated:
        return _again(request, guard, done, "/integrations")
    assert done.result is not None
    return RedirectResponse(f"/integrations/{quote(done.result['id'], safe='')}?done=created", status_code=303)


# --- editing one on its page -----------------------------------------------------------------

def _back(integration_id: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"/integrations/{quote(integration_id, safe='')}?done={done}#edit", status_code=303)


@router.post("/integrations/{integration_id}/edit")
async def edit_integration(request: Request, integration_id: str):
    """The PATCH rule (API.md v1.1) from named fields: label, daily cap, the config whole,
    secrets only when typed or removed. Owners only, as in the API."""
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    ctx = _ctx(request)
    try:
        current = integrations.get_integration(ctx, guard.principal, integration_id)
    except NotFound:
        return _problem(request, guard, "not_found", "There is no such integration in this workspace.", 404)
    typed = _typed(form)
    values, errors = _basics(typed)
    credentials, config, key_errors = _keys(Provider(current["provider"]), typed, editing=True)
    errors.update(key_errors)
    if not values["label"]:  # unlike on create, where the provider's name stands in
        errors.setdefault("label", "Required: an integration keeps a label.")
    if not errors:
        patch = {"label": values["label"], "daily_cap": values["daily_cap"], "config": config,
                 "credentials": credentials}
        try:
            integrations.update_integration(ctx, guard.principal, integration_id, patch)
        except ValidationFailed as exc:
            errors = _field_errors(exc)
    if errors:
        return _integration_page(request, guard, integration_id, 422, edit_typed=typed, edit_errors=errors)
    return _back(integration_id, "saved")


@router.post("/integrations/{integration_id}/enabled")
def set_enabled(request: Request, integration_id: str, csrf: Annotated[str, Form()] = "",
                enabled: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "",
                form_nonce: Annotated[str, Form()] = "", x_csrf_token: Annotated[str | None, Header()] = None):
    """Enable or disable (owners, as the API), from the list (`back=list`) or the page."""
    guard = _guard_post(request, csrf, x_csrf_token, Role.OWNER)
    if not isinstance(guard, Session):
        return guard
    if enabled not in ("true", "false"):
        return _problem(request, guard, "validation_error", "enabled must be true or false", 422)
    word = "enabled" if enabled == "true" else "disabled"
    page = "/integrations" if back == "list" else f"/integrations/{quote(integration_id, safe='')}"
    try:
        done = _once(request, guard, form_nonce, lambda c: integrations.update_integration(
            c, guard.principal, integration_id, {"enabled": enabled == "true"}), lambda _: page)
    except NotFound:
        return _problem(request, guard, "not_found", "There is no such integration in this workspace.", 404)
    except DomainError as exc:
        return _problem(request, guard, exc.code, exc.message, _status_of(exc), exc.details)
    if done.repeated:
        return _again(request, guard, done, page)
    if back == "list":
        return RedirectResponse(f"/integrations?saved={quote(integration_id, safe='')}&done={word}", status_code=303)
    return _back(integration_id, word)


@router.post("/integrations/{integration_id}/health")
def health_event(request: Request, integration_id: str, csrf: Annotated[str, Form()] = "",
                 event: Annotated[str, Form()] = "", form_nonce: Annotated[str, Form()] = "",
                 x_csrf_token: Annotated[str | None, Header()] = None):
    """Reconnect, mark disconnected, lift a restriction (operators and owners, as the API)."""
    guard = _guard_post(request, csrf, x_csrf_token, Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    if event not in HEALTH_BUTTONS:
        return _problem(request, guard, "validation_error",
                        "event must be one of " + ", ".join(HEALTH_BUTTONS), 422)
    page = f"/integrations/{quote(integration_id, safe='')}"
    try:
        done = _once(request, guard, form_nonce, lambda c: integrations.record_health_event(
            c, guard.principal, integration_id, event), lambda _: page)
    except DomainError as exc:
        return _problem(request, guard, exc.code, exc.message, _status_of(exc), exc.details)
    if done.repeated:
        return _again(request, guard, done, page)
    return _back(integration_id, f"health-{event}")


@router.post("/integrations/{integration_id}/test")
def test_connection(request: Request, integration_id: str, csrf: Annotated[str, Form()] = "",
                    x_csrf_token: Annotated[str | None, Header()] = None):
    """The provider's answer to one cheap authenticated read, in words; nothing recorded.
    A sync route: FastAPI runs it in a thread, where the probe runs its own loop."""
    guard = _guard_post(request, csrf, x_csrf_token, Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    try:
        answer = integrations.check_connection(_ctx(request), guard.principal, integration_id)
    except NotFound:
        return _problem(request, guard, "not_found", "There is no such integration in this workspace.", 404)
    words = connection_words(answer)
    return _integration_page(request, guard, integration_id, connection=words,
                             toast=f"Connection test: {words['text']}")


def connection_words(answer: dict) -> dict:
    if answer["ok"]:
        return {"ok": True, "text": "Connected."}
    error = answer.get("error") or {}
    return {"ok": False, "text": f"Refused: {error.get('code') or 'unknown'} — {error.get('message') or ''}".rstrip(
        " —")}
