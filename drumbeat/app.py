"""The FastAPI application: API v1, provider callbacks, health and the dashboard pages."""

from __future__ import annotations

from fastapi import FastAPI

from drumbeat.api import (
    audit,
    callbacks,
    campaigns,
    errors,
    integrations,
    leads,
    openapi,
    ops,
    replies,
    tokens,
    users,
    webhooks,
)
from drumbeat.api.limits import BodySizeLimit
from drumbeat.services.context import Context
from drumbeat.services.sign_ins import SignInThrottle
from drumbeat.web import audit_pages, builder, imports, integration_forms, pages, settings, suppressions, unsubscribe
from drumbeat.web import replies as reply_pages


def create_app(ctx: Context, *, max_body_bytes: int = 20 * 1024 * 1024,
               max_streamed_bytes: int = 2 * 1024**3) -> FastAPI:
    app = FastAPI(title="Drumbeat", version="1", description="Multichannel outreach engine that knows when to stop.")
    app.state.ctx = ctx
    app.state.login_throttle = SignInThrottle(ctx)  # counts in the database: shared by every process
    errors.install(app)
    for module in (users, tokens, integrations, campaigns, leads, replies, webhooks, audit):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(callbacks.router)
    app.include_router(ops.router)
    app.include_router(builder.router)  # before pages: /campaigns/new is not a campaign id
    app.include_router(integration_forms.router)  # before pages: /integrations/new is not an integration id
    app.include_router(imports.router)  # before pages: /campaigns/{id}/leads/import is not a lead
    app.include_router(audit_pages.router)
    app.include_router(unsubscribe.router)  # public: an email's unsubscribe link, no session
    app.include_router(suppressions.router)
    app.include_router(reply_pages.router)  # before pages: /campaigns/{id}/leads.csv is not a lead list
    app.include_router(settings.router)
    app.include_router(pages.router)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, max_streamed_bytes=max_streamed_bytes)
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    return app


def api_document() -> dict:
    """The OpenAPI document the app serves at /openapi.json. Building it opens nothing: the
    routes never run, so the app gets a context without a database."""
    return create_app(Context(db=None, box=None)).openapi()  # type: ignore[arg-type]
