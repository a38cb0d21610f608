"""Integration use cases: channel credentials (API.md, Integrations; DESIGN.md §1, §4).

Credentials are sealed with the context's secret box before they reach the database and
leave this module masked: no response ever carries a usable secret.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drumbeat.channels import registry
from drumbeat.channels.base import Credential
from drumbeat.domain.audit import CREATED, UPDATED, changed_keys, field_changes
from drumbeat.domain.channels import PROVIDER_CHANNELS, Provider, health_after, integration_state
from drumbeat.domain.errors import SendResult
from drumbeat.domain.exceptions import NotFound, ValidationFailed
from drumbeat.services import audit
from drumbeat.services.context import Actor, Context, Principal
from drumbeat.services.holds import hold_after_health_change
from drumbeat.store import integrations as store
from drumbeat.store.secrets import mask

# --- what each provider needs (API.md) ---------------------------------------------------

Url = Annotated[str, Field(pattern=r"^https?://\S+$", max_length=500)]
Value = Annotated[str, Field(max_length=2000)]


class _Keys(BaseModel):
    # Unknown keys are refused so a typo ("acess_token") fails now, not at the first send.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class WhatsappCredentials(_Keys):
    access_token: Value
    app_secret: Value | None = None


class WhatsappConfig(_Keys):
    phone_number_id: Value
    waba_id: Value | None = None  # the WhatsApp Business Account: its template catalogue
    base_url: Url | None = None


class TwilioCredentials(_Keys):
    account_sid: Value
    auth_token: Value


class TwilioConfig(_Keys):
    from_: Value = Field(alias="from")
    base_url: Url | None = None


class SmtpCredentials(_Keys):
    username: Value
    password: Value
    inbound_secret: Value | None = None


class SmtpConfig(_Keys):
    host: Value
    port: int = Field(ge=1, le=65535)
    from_: Value = Field(alias="from")
    starttls: bool | None = None


class UnipileCredentials(_Keys):
    api_key: Value
    webhook_secret: Value | None = None  # signs the provider's webhooks (else the api_key does)


class UnipileConfig(_Keys):
    account_id: Value
    base_url: Url


class NoCredentials(_Keys):
    pass


class SandboxConfig(_Keys):
    fail: Literal["key", "rate", "transient", "lead", "campaign"] | None = None
    fail_after: int | None = Field(default=None, ge=0, le=10**9)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    dedupe: bool | None = None  # play a provider that deduplicates by idempotency key


SHAPES: dict[Provider, tuple[type[_Keys], type[_Keys]]] = {
    Provider.WHATSAPP_CLOUD: (WhatsappCredentials, WhatsappConfig),
    Provider.TWILIO: (TwilioCredentials, TwilioConfig),
    Provider.SMTP: (SmtpCredentials, SmtpConfig),
    Provider.UNIPILE: (UnipileCredentials, UnipileConfig),
    Provider.SANDBOX: (NoCredentials, SandboxConfig),
}


def _validated(provider: Provider, credentials: dict, config: dict) -> tuple[dict, dict]:
    """The provider's credentials and config, checked; every problem is reported at once."""
    shapes = zip(SHAPES[provider], (credentials, config), ("credentials", "config"), strict=True)
    out: list[dict] = []
    errors: list[dict] = []
    for model, data, field in shapes:
        try:
            out.append(model.model_validate(data).model_dump(by_alias=True, exclude_none=True))
        except ValidationError as exc:
            errors += [{"field": ".".join([field, *map(str, e["loc"])]), "message": e["msg"]} for e in exc.errors()]
    if errors:
        raise ValidationFailed(errors)
    return out[0], out[1]


# --- use cases -----------------------------------------------------------------------------

def integration_view(ctx: Context, row) -> dict:
    """The integration object of API.md, credentials masked."""
    return {
        "id": row["id"], "channel": row["channel"], "provider": row["provider"], "label": row["label"],
        "state": integration_state(row["health"], row["enabled"]),
        "credentials": {k: mask(v) for k, v in ctx.box.open(row["credentials_encrypted"]).items()},
        "config": row["config"], "daily_cap": row["daily_cap"], "enabled": row["enabled"],
        "created_at": row["created_at"],
    }


def _load(conn, principal: Principal, integration_id: str):
    row = store.get_integration(conn, principal.workspace_id, integration_id)
    if row is None:
        raise NotFound("integration not found", {"id": integration_id})
    return row


def create_integration(ctx: Context, principal: Principal, data: dict) -> dict:
    provider = Provider(data["provider"])
    if data["channel"] not in PROVIDER_CHANNELS[provider]:
        served = ", ".join(sorted(PROVIDER_CHANNELS[provider]))
        raise ValidationFailed([{"field": "provider", "message": f"{provider.value} serves {served}, "
                                                                  f"not {data['channel']}"}])
    credentials, config = _validated(provider, data.get("credentials") or {}, data.get("config") or {})
    label = data.get("label") or provider.value
    now = ctx.clock()
    with ctx.db.begin() as conn:
        integration_id = store.insert_integration(
            conn, principal.workspace_id, {**data, "label": label, "config": config}, ctx.box.seal(credentials), now)
        audit.record(conn, principal.workspace_id, principal, CREATED, "integration", integration_id,
                     {"label": label, "channel": data["channel"], "provider": provider.value,
                      "credentials": sorted(credentials)}, now)
        return integration_view(ctx, _load(conn, principal, integration_id))


def list_integrations(ctx: Context, principal: Principal, channel: str | None = None) -> list[dict]:
    with ctx.db.begin() as conn:
        return [integration_view(ctx, r) for r in store.list_integrations(conn, principal.workspace_id, channel)]


def get_integration(ctx: Context, principal: Principal, integration_id: str) -> dict:
    with ctx.db.begin() as conn:
        return integration_view(ctx, _load(conn, principal, integration_id))


def update_integration(ctx: Context, principal: Principal, integration_id: str, patch: dict) -> dict:
    """PATCH (API.md v1.1): `config` replaces the stored config whole, so a key left out is
    gone; `credentials` merge key by key (a key given replaces that secret, a key given as
    null removes it, a key left out stays), so rotating one secret keeps the others. Both
    are then checked as on create; a required credential cannot be removed."""
    with ctx.db.begin() as conn:
        row = _load(conn, principal, integration_id)
        provider = Provider(row["provider"])
        values = {k: patch[k] for k in ("label", "daily_cap", "enabled") if k in patch}
        # Secrets by key name only: which ones changed, never their values.
        changes = {"changes": field_changes(row, values, ("label", "daily_cap", "enabled"))}
        if "credentials" in patch or "config" in patch:
            given = patch.get("credentials") or {}
            _refuse_removing_required(provider, [k for k, v in given.items() if v is None])
            stored = ctx.box.open(row["credentials_encrypted"])
            merged = {**stored, **given}
            credentials = {k: v for k, v in merged.items() if v is not None}
            config = patch["config"] if "config" in patch else row["config"]
            credentials, config = _validated(provider, credentials, config)
            values.update(credentials_encrypted=ctx.box.seal(credentials), config=config)
            changes.update(credentials=changed_keys(stored, credentials),
                           config=changed_keys(row["config"] or {}, config))
            if given:  # a rotated key: the failures before now are answered (the dashboard's banner)
                values["credentials_updated_at"] = ctx.clock()
        if values:
            store.update_integration(conn, integration_id, **values)
        if any(changes.values()):
            audit.record(conn, principal.workspace_id, principal, UPDATED, "integration", integration_id,
                         {"label": values.get("label", row["label"]), **{k: v for k, v in changes.items() if v}},
                         ctx.clock())
        return integration_view(ctx, _load(conn, principal, integration_id))


def _refuse_removing_required(provider: Provider, removed: list[str]) -> None:
    fields = SHAPES[provider][0].model_fields
    required = [k for k in removed if k in fields and fields[k].is_required()]
    if required:
        raise ValidationFailed([{"field": f"credentials.{k}", "message": f"{provider.value} needs {k}: it cannot "
                                 "be removed (give a new value to replace it)"} for k in required])


def record_health_event(ctx: Context, principal: Principal, integration_id: str, event: str) -> dict:
    """A health event takes the integration out of (or back into) every key pool; the
    engine's detectors and the sweeper act on the new health (DESIGN.md §4, §5)."""
    with ctx.db.begin() as conn:
        row = _load(conn, principal, integration_id)
        new = health_after(row["health"], event)
        if new != row["health"]:
            store.update_integration(conn, integration_id, health=new)
            audit.record(conn, principal.workspace_id, principal, UPDATED, "integration", integration_id,
                         {"label": row["label"], "changes": {"health": {"from": row["health"], "to": new}},
                          "event": event}, ctx.clock())
            # Held in the same transaction: no send slips through on a key that is gone.
            hold_after_health_change(conn, integration_id, ctx.clock(), Actor.system(f"health:{event}"))
        return integration_view(ctx, _load(conn, principal, integration_id))


def credential_of(ctx: Context, row) -> Credential:
    """An integration row as its adapter sees it: credentials unsealed."""
    return Credential(row["id"], row["provider"], row["channel"], ctx.box.open(row["credentials_encrypted"]),
                      row["config"] or {})


def probe(credential: Credential) -> SendResult:
    """One cheap authenticated read through the provider's adapter (`probe`), over a
    short-lived client with the provider timeouts: accepted when the credential works,
    else the refusal classified as a send's would be (`whatsapp:190`, `twilio:20003`).
    Changes nothing. Synchronous (its own event loop): call it from a thread."""
    return asyncio.run(registry.once(credential.provider, lambda adapter: adapter.probe(credential)))


def check_connection(ctx: Context, principal: Principal, integration_id: str) -> dict:
    """`POST /integrations/{id}/test`: the provider's answer to the probe, nothing recorded
    (no health change, no key mark), whatever the integration's state."""
    with ctx.db.begin() as conn:
        row = _load(conn, principal, integration_id)
    result = probe(credential_of(ctx, row))
    if result.accepted:
        return {"ok": True, "error": None}
    return {"ok": False, "error": {"code": result.error_code, "message": result.error_message}}


def check_ids(ctx: Context, principal: Principal, ids: list[str], field: str = "integration_ids") -> None:
    """A campaign's key pool may only name integrations of its own workspace."""
    with ctx.db.begin() as conn:
        known = {r["id"] for r in store.list_integrations(conn, principal.workspace_id)}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValidationFailed([{"field": field, "message": f"unknown integration ids: {', '.join(unknown)}"}])

