"""Integrations: channel credentials, returned masked (API.md, Integrations)."""

from __future__ import annotations

from fastapi import APIRouter

from drumbeat.api.deps import ContextDep, Operator, Owner, Viewer
from drumbeat.domain.channels import Channel
from drumbeat.schemas import (
    CatalogueTemplates,
    ConnectionTested,
    HealthEvent,
    IntegrationCreate,
    IntegrationPublic,
    IntegrationsPublic,
    IntegrationUpdate,
    ObjectId,
    TemplatesSynced,
    error_responses,
)
from drumbeat.services import integrations, templates

router = APIRouter(prefix="/integrations", tags=["integrations"])


@router.post("", status_code=201, response_model=IntegrationPublic, responses=error_responses(403, 422))
def create_integration(body: IntegrationCreate, principal: Owner, ctx: ContextDep):
    return integrations.create_integration(ctx, principal, body.model_dump(mode="json"))


@router.get("", response_model=IntegrationsPublic, responses=error_responses(422))
def list_integrations(principal: Viewer, ctx: ContextDep, channel: Channel | None = None):
    return {"items": integrations.list_integrations(ctx, principal, channel), "next_cursor": None}


@router.get("/{integration_id}", response_model=IntegrationPublic, responses=error_responses(404))
def get_integration(integration_id: ObjectId, principal: Viewer, ctx: ContextDep):
    return integrations.get_integration(ctx, principal, integration_id)


@router.patch("/{integration_id}", response_model=IntegrationPublic, responses=error_responses(403, 404, 422))
def update_integration(integration_id: ObjectId, body: IntegrationUpdate, principal: Owner, ctx: ContextDep):
    """Any of label, credentials (merged key by key: a key given replaces that secret, null
    removes it, a key left out stays; a required one cannot be removed), config (replaces
    the stored config whole, checked as on create), daily_cap, enabled (false → state
    `disabled`)."""
    patch = body.model_dump(mode="json", exclude_unset=True)
    return integrations.update_integration(ctx, principal, integration_id, patch)


@router.post("/{integration_id}/health", response_model=IntegrationPublic,
             responses=error_responses(403, 404, 422))
def record_health_event(integration_id: ObjectId, body: HealthEvent, principal: Operator, ctx: ContextDep):
    return integrations.record_health_event(ctx, principal, integration_id, body.event)


@router.post("/{integration_id}/test", response_model=ConnectionTested, responses=error_responses(403, 404))
def test_connection(integration_id: ObjectId, principal: Operator, ctx: ContextDep):
    """One cheap authenticated read at the provider (WhatsApp: the phone number; Twilio:
    the account; SMTP: connect, STARTTLS, login, QUIT; Unipile: the account; sandbox: its
    scripted `fail`), with the provider timeouts. Always 200 with `ok` and the provider's
    classified error; changes nothing (no health change, no key mark)."""
    return integrations.check_connection(ctx, principal, integration_id)


@router.post("/{integration_id}/templates/sync", response_model=TemplatesSynced,
             responses=error_responses(403, 404, 422, 503))
def sync_templates(integration_id: ObjectId, principal: Operator, ctx: ContextDep):
    """Read every page of the WhatsApp Business Account's templates (`config.waba_id`) and
    replace the stored catalogue; a provider error or timeout keeps the old one (503, the
    provider's code and message in details). 422 when the integration is not
    whatsapp_cloud or has no waba_id."""
    return templates.sync_catalogue(ctx, principal, integration_id)


@router.get("/{integration_id}/templates", response_model=CatalogueTemplates, responses=error_responses(404))
def list_templates(integration_id: ObjectId, principal: Viewer, ctx: ContextDep):
    return {"items": templates.list_templates(ctx, principal, integration_id)}
