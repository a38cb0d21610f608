"""WhatsApp message templates: the catalogue of each integration (synced from Meta and kept
current by its webhooks), the checks of campaign steps against it, and what Meta reports
about the number's quality and messaging limit (API.md, Message content; DESIGN.md §9).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from sqlalchemy import Connection

from drumbeat.channels.base import Credential
from drumbeat.channels.inbound import QualityEvent, TemplateStatusEvent
from drumbeat.channels.transport import provider_client
from drumbeat.channels.whatsapp import message_templates
from drumbeat.domain.audit import UPDATED
from drumbeat.domain.channels import Channel, Provider, messaging_limit
from drumbeat.domain.errors import ErrorClass, SendResult
from drumbeat.domain.exceptions import NotFound, Unavailable, ValidationFailed
from drumbeat.domain.gates import TEMPLATE_CHANNEL
from drumbeat.domain.leads import PROVIDER_CONNECT_TIMEOUT_SECONDS, PROVIDER_IO_TIMEOUT_SECONDS
from drumbeat.domain.messages import is_whatsapp_template
from drumbeat.domain.reasons import PauseReason
from drumbeat.domain.whatsapp_templates import catalogue_mismatches, parameter_counts
from drumbeat.services import audit
from drumbeat.services.context import Actor, Context, Principal
from drumbeat.services.holds import (
    hold_after_health_change,
    hold_if_all_keys_failed,
    pause_if_nothing_can_run,
    place_hold,
    remaining_channels,
)
from drumbeat.services.integrations import credential_of
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import integrations as integration_store
from drumbeat.store import templates as store

# Statuses of a template that stop its sends (Meta refuses them): the channel is held.
STOPPING = frozenset({"PAUSED", "DISABLED", "REJECTED"})
SYNC_TIMEOUT = httpx.Timeout(PROVIDER_IO_TIMEOUT_SECONDS, connect=PROVIDER_CONNECT_TIMEOUT_SECONDS)


# --- sync and list ---------------------------------------------------------------------------

def _whatsapp_integration(conn: Connection, principal: Principal, integration_id: str):
    row = integration_store.get_integration(conn, principal.workspace_id, integration_id)
    if row is None:
        raise NotFound("integration not found", {"id": integration_id})
    if row["provider"] != Provider.WHATSAPP_CLOUD:
        raise ValidationFailed([{"field": "provider", "message": "only whatsapp_cloud integrations have a template "
                                                                 f"catalogue; this one is {row['provider']}"}],
                               "not a WhatsApp Cloud integration")
    return row


def sync_catalogue(ctx: Context, principal: Principal, integration_id: str) -> dict:
    """Read every page of the business account's templates and replace the stored
    catalogue with them; any refusal or timeout keeps the old one (503 `unavailable`)."""
    with ctx.db.connect() as conn:
        row = _whatsapp_integration(conn, principal, integration_id)
    if not row["config"].get("waba_id"):
        raise ValidationFailed([{"field": "config.waba_id", "message": "set the WhatsApp Business Account id "
                                                                       "(PATCH the integration's config) to sync"}],
                               "the integration has no waba_id")
    credential = credential_of(ctx, row)
    read = asyncio.run(_read(credential))
    if read.error is not None:
        if read.error.error_class is ErrorClass.KEY:
            with ctx.db.begin() as conn:
                key_failed_outside_a_run(conn, row, read.error, ctx.clock())
        raise Unavailable("the provider did not give the whole template catalogue; the stored one is kept",
                          {"provider": "whatsapp", "code": read.error.error_code,
                           "message": read.error.error_message})
    now = ctx.clock()
    with ctx.db.begin() as conn:
        synced = store.replace_catalogue(conn, row["id"], read.templates or [], now)
        audit.record(conn, principal.workspace_id, principal, UPDATED, "integration", row["id"],
                     {"label": row["label"], "templates_synced": synced}, now)
        return {"synced": synced}


async def _read(credential: Credential):
    client = provider_client(1, SYNC_TIMEOUT)
    try:
        return await message_templates(client, credential)
    finally:
        await client.aclose()


def list_templates(ctx: Context, principal: Principal, integration_id: str) -> list[dict]:
    """The stored catalogue (none for an integration of another provider)."""
    with ctx.db.connect() as conn:
        row = integration_store.get_integration(conn, principal.workspace_id, integration_id)
        if row is None:
            raise NotFound("integration not found", {"id": integration_id})
        entries = store.list_catalogue(conn, row["id"])
    return [{"name": e["name"], "language": e["language"], "status": e["status"], "category": e["category"],
             "parameter_format": e["parameter_format"],
             "components": e["components"], "parameters": parameter_counts(e["components"]),
             "synced_at": e["synced_at"]} for e in entries]


def key_failed_outside_a_run(conn: Connection, integration, result: SendResult, now: datetime) -> None:
    """A key-level answer to a call outside any send (a catalogue sync): what the worker
    does with one, in every campaign now sending through the key. Its health changes when
    the code says the account itself is gone; in each sending campaign whose pool holds
    it, the key is marked failed for the current run, and the channel held when no key is
    left."""
    if result.health_event and integration_store.apply_health_event(conn, integration["id"], result.health_event):
        hold_after_health_change(conn, integration["id"], now, Actor.system(f"health:{result.health_event}"))
    for campaign in _sending_through(conn, integration):
        integration_store.mark_key_failed(conn, campaign["id"], campaign["run"], integration["id"],
                                          result.error_code, result.error_message, now)
        hold_if_all_keys_failed(conn, dict(campaign), campaign_store.get_steps(conn, campaign["id"]),
                                integration["channel"], now)


def _sending_through(conn: Connection, integration) -> list:
    return [c for c in campaign_store.sending_campaigns(conn, integration["workspace_id"])
            if c["integration_ids"] is None or integration["id"] in c["integration_ids"]]


# --- steps against the catalogue ---------------------------------------------------------------

def catalogue_problems(conn: Connection, workspace_id: str, steps: list[dict],
                       integration_ids: list[str] | None) -> list[dict]:
    """Field errors for each WhatsApp template step that does not fit the catalogue of an
    integration of its key pool (its integration_ids, or every WhatsApp integration of
    the workspace) that has one. A template that fits but is not APPROVED passes here:
    the `template` gate refuses to start it."""
    wanted = [(i, s) for i, s in enumerate(steps) if is_whatsapp_template(s["channel"], s.get("template") or {})]
    if not wanted:
        return []
    pool = [r for r in integration_store.list_integrations(conn, workspace_id, Channel.WHATSAPP)
            if integration_ids is None or r["id"] in integration_ids]
    catalogues = store.catalogues_of(conn, [r["id"] for r in pool])
    return [{"field": f"steps[{i}].template", "message": f"{r['label']}: {mismatch}"}
            for i, step in wanted for r in pool if r["id"] in catalogues
            for mismatch in catalogue_mismatches(step["template"], catalogues[r["id"]])]


def check_against_catalogue(conn: Connection, workspace_id: str, steps: list[dict],
                            integration_ids: list[str] | None) -> None:
    problems = catalogue_problems(conn, workspace_id, steps, integration_ids)
    if problems:
        raise ValidationFailed(problems, "a WhatsApp template does not match the provider's catalogue")


# --- Meta's webhooks ---------------------------------------------------------------------------

def apply_template_status(conn: Connection, integration_id: str, event: TemplateStatusEvent, now: datetime) -> int:
    """A template's new status: the catalogue follows; PAUSED, DISABLED or REJECTED holds
    the WhatsApp channel of every sending campaign that still has a step naming it and this
    integration in its key pool (`template_rejected`: a person edits and resumes; the
    sweeper never lifts it). APPROVED only refreshes the catalogue."""
    integration = integration_store.get_integration_by_id(conn, integration_id)
    if integration is None:
        return 0
    before = store.set_status(conn, integration_id, event.name, event.language, event.status, now)
    held = 0
    if event.status in STOPPING:
        actor = Actor.system(PauseReason.TEMPLATE_REJECTED.value)
        for campaign in _sending_through(conn, integration):
            steps = campaign_store.get_steps(conn, campaign["id"])
            if TEMPLATE_CHANNEL not in remaining_channels(conn, campaign["id"], steps):
                continue
            using = [i for i, s in enumerate(steps) if is_whatsapp_template(s["channel"], s.get("template") or {})
                     and s["template"]["name"] == event.name and s["template"]["language"] == event.language]
            if not using:
                continue
            details = {"channel": TEMPLATE_CHANNEL, "integration_id": integration_id, "steps": using,
                       "template": event.name, "language": event.language, "event": event.status,
                       "reason": event.reason}
            held += place_hold(conn, campaign["id"], TEMPLATE_CHANNEL, PauseReason.TEMPLATE_REJECTED, details,
                               now, actor)
            pause_if_nothing_can_run(conn, campaign["id"], steps, now, actor)
    return int(before is not None and before != event.status) or held


def apply_quality(conn: Connection, integration_id: str, event: QualityEvent, now: datetime) -> int:
    """Meta's report on the number: recorded on the integration (and on the timeline of each
    campaign sending through it); a messaging-limit tier becomes the integration's
    provider daily limit. RESTRICTED also arrives as a health event (receipts)."""
    integration = integration_store.get_integration_by_id(conn, integration_id)
    if integration is None:
        return 0
    known, limit = messaging_limit(event.current_limit, event.max_daily)
    quality = {"event": event.event, "current_limit": event.current_limit, "max_daily": event.max_daily,
               "display_phone_number": event.display_phone_number, "at": now.isoformat()}
    if known:
        integration_store.set_messaging_limit(conn, integration_id, limit, quality)
    else:
        integration_store.set_messaging_quality(conn, integration_id, quality)
    for campaign in _sending_through(conn, integration):
        campaign_store.add_timeline(conn, campaign["id"], now=now, action="number_quality", reason=event.event,
                                    actor_type="system", actor_id="whatsapp",
                                    details={"integration_id": integration_id, **quality,
                                             "daily_limit": limit if known else integration["provider_daily_limit"]})
    return 1
