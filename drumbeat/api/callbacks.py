"""Provider callbacks (API.md): no bearer token, a signature instead.

A bad or missing signature answers 401 and changes nothing; unknown message ids are
acknowledged (200) and ignored, so providers do not retry them forever.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from drumbeat.api.deps import ContextDep
from drumbeat.api.errors import ApiError
from drumbeat.channels import inbound
from drumbeat.schemas import error_responses, examples
from drumbeat.services import consent, receipts
from drumbeat.services.context import Context

router = APIRouter(prefix="/webhooks", tags=["provider callbacks"], responses=error_responses(404, descriptions={
    401: "Missing or invalid signature; nothing changed",
    404: "No such integration (of this provider)",
    422: "The body is not the provider's payload",
}, examples={
    401: {"error": {"code": "unauthorized", "message": "missing or invalid X-Hub-Signature-256", "details": {}}},
    404: {"error": {"code": "not_found", "message": "integration not found",
                    "details": {"id": "5eb4feab2f804d2daed9e008e923df08"}}},
}))


class CallbackResult(BaseModel):
    model_config = examples({"events": 1, "changed": 1})

    events: int = Field(description="Events found in the payload")
    changed: int = Field(description="Events that changed something (unknown message ids change nothing)")


def _payload(example, media: str = "application/json") -> dict:
    """The provider's body in the OpenAPI document (read by the route itself: it must check
    the signature over the raw bytes before parsing them)."""
    schema = {"type": "object"} if media == "application/json" else {
        "type": "object", "additionalProperties": {"type": "string"}}
    return {"requestBody": {"required": True, "content": {media: {"schema": schema, "example": example}}}}


async def _json_events(ctx: Context, request: Request, integration_id: str, provider: str, header: str,
                       secret_of: Callable[[dict], str | None], parse) -> dict:
    integration = receipts.integration_for_callback(ctx, integration_id, provider)
    body = await request.body()
    if not inbound.valid_sha256_signature(body, secret_of(integration.credentials), request.headers.get(header)):
        raise ApiError("unauthorized", f"missing or invalid {header}")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        raise ApiError("validation_error", "the body is not JSON", {"fields": [{"field": "body",
                                                                                 "message": "invalid JSON"}]}) from None
    if not isinstance(payload, dict):
        raise ApiError("validation_error", "the body must be a JSON object",
                       {"fields": [{"field": "body", "message": "expected an object"}]})
    return receipts.apply_events(ctx, integration, parse(payload))


@router.post("/whatsapp/{integration_id}", response_model=CallbackResult, openapi_extra=_payload({
    "object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"},
            "statuses": [{"id": "wamid.HBgLNDkxNTEyMzQ1Njc4OQ", "status": "delivered", "timestamp": "1772445903",
                          "recipient_id": "4915123456789"}]}}]}]}))
async def whatsapp(integration_id: str, request: Request, ctx: ContextDep) -> dict:
    """Meta's webhook (statuses and inbound messages), signed with the app secret."""
    return await _json_events(ctx, request, integration_id, "whatsapp_cloud", "X-Hub-Signature-256",
                              lambda c: c.get("app_secret"), inbound.whatsapp_events)


@router.post("/unipile/{integration_id}", response_model=CallbackResult, openapi_extra=_payload({
    "event": "new_relation", "user_profile_url": "https://www.linkedin.com/in/ada-lovelace"}))
async def unipile(integration_id: str, request: Request, ctx: ContextDep) -> dict:
    """Account status, new relation (invitation accepted) and new message events."""
    return await _json_events(ctx, request, integration_id, "unipile", "X-Drumbeat-Signature",
                              lambda c: c.get("webhook_secret") or c.get("api_key"), inbound.unipile_events)


@router.post("/email/{integration_id}", response_model=CallbackResult, openapi_extra=_payload({
    "type": "reply", "from": "ada@example.com", "message_id": "<8e32e3f9.1.0@mail.acme.test>"}))
async def email(integration_id: str, request: Request, ctx: ContextDep) -> dict:
    """Replies and bounces from an inbound-mail service, signed with the inbound secret."""
    return await _json_events(ctx, request, integration_id, "smtp", "X-Drumbeat-Signature",
                              lambda c: c.get("inbound_secret"), inbound.email_events)


@router.post("/twilio/{integration_id}", response_class=Response, responses={
    200: {"description": "Acknowledged (empty TwiML)", "content": {"application/xml": {
        "schema": {"type": "string"}, "example": "<Response></Response>"}}}},
    openapi_extra=_payload({"MessageSid": "SM0123456789abcdef0123456789abcdef", "MessageStatus": "delivered",
                            "To": "+4915123456789", "From": "+15005550006"}, "application/x-www-form-urlencoded"))
async def twilio(integration_id: str, request: Request, ctx: ContextDep, background: BackgroundTasks) -> Response:
    """Status callbacks and inbound messages (form-encoded), signed per Twilio's scheme over
    the URL Twilio called (run behind a proxy with forwarded headers so it matches). The
    workspace's SMS auto-replies (to STOP, HELP) go out after the answer, through this
    integration."""
    integration = receipts.integration_for_callback(ctx, integration_id, "twilio")
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not inbound.valid_twilio_signature(str(request.url), form, integration.credentials.get("auth_token"),
                                          request.headers.get("X-Twilio-Signature")):
        raise ApiError("unauthorized", "missing or invalid X-Twilio-Signature")
    due: list[consent.AutoReply] = []
    receipts.apply_events(ctx, integration, inbound.twilio_events(form, request.query_params.get("attempt")),
                          auto_replies=due)
    if due:
        background.add_task(consent.send_auto_replies, integration.credential(), due)
    # An empty TwiML answer: acknowledged (auto-replies go through the REST API, above).
    return Response("<Response></Response>", media_type="application/xml")
