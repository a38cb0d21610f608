"""Campaigns: create, read, edit, lifecycle actions and the timeline (API.md, Campaigns)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query

from drumbeat.api.deps import ContextDep, Operator, Viewer
from drumbeat.schemas import (
    EXAMPLE_IDS,
    CampaignCreate,
    CampaignPreview,
    CampaignPublic,
    CampaignsPublic,
    CampaignStats,
    CampaignUpdate,
    CancelAction,
    DuplicateAction,
    ObjectId,
    ScheduleAction,
    SendTestRequest,
    SendTestResult,
    StatusFilter,
    Text,
    TimelinePublic,
    error_responses,
)
from drumbeat.services import campaigns, content, integrations, stats

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

ACTION_ERRORS = error_responses(403, 404, 409, 422)
# Start and resume check the gates first (DESIGN.md §5): a closed one is named in the 409.
# A key marked failed in the last run is probed first; one still refused closes `key_pool`
# with the probe's error (issue 21).
GATED_ERRORS = error_responses(403, 404, 409, 422, examples={409: {"error": {
    "code": "resume_blocked", "message": "the campaign cannot resume: a gate is closed", "details": {"gates": [
        {"gate": "subscription", "ok": True, "reason": None}, {"gate": "status", "ok": True, "reason": None},
        {"gate": "key_pool", "ok": False,
         "reason": "'Acme WA' still fails its connection test: whatsapp:190 (Error validating access token: "
                   "Session has expired); update the key, then resume",
         "channel": "whatsapp", "integration_id": EXAMPLE_IDS["integration"],
         "error": {"code": "whatsapp:190", "message": "Error validating access token: Session has expired"}}]}}}})
CANCEL_ERRORS = error_responses(403, 404, 409, 422, examples={409: {"error": {
    "code": "confirmation_required", "message": "type the campaign's exact name in `confirm` to cancel it",
    "details": {"expected": "the campaign's exact name"}}}})


@router.post("", status_code=201, response_model=CampaignPublic, responses=error_responses(403, 422))
def create_campaign(body: CampaignCreate, principal: Operator, ctx: ContextDep):
    """A new campaign in `draft`. Only `name` and `steps` are required."""
    if body.integration_ids:
        integrations.check_ids(ctx, principal, body.integration_ids)
    return campaigns.create_campaign(ctx, principal, body.stored())


@router.get("", response_model=CampaignsPublic, responses=error_responses(422),
            response_model_exclude={"items": {"__all__": {"missing_variables"}}})
def list_campaigns(
    principal: Viewer,
    ctx: ContextDep,
    status: Annotated[StatusFilter | None, Query(description="One status, or several separated by commas")] = None,
    q: Annotated[Text | None, Query(max_length=200, description="Part of the name, any case")] = None,
    sort: Literal["created_at", "name", "status", "percent"] = "created_at",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
):
    return campaigns.list_campaigns(ctx, principal, status=status, q=q, sort=sort, order=order, limit=limit,
                                    cursor=cursor)


@router.get("/{campaign_id}", response_model=CampaignPublic, responses=error_responses(404))
def get_campaign(campaign_id: ObjectId, principal: Viewer, ctx: ContextDep):
    return campaigns.get_campaign(ctx, principal, campaign_id)


@router.patch("/{campaign_id}", response_model=CampaignPublic, responses=ACTION_ERRORS)
def update_campaign(campaign_id: ObjectId, body: CampaignUpdate, principal: Operator, ctx: ContextDep):
    """`name`, `schedule`, `limits`, `failure_policy`, `integration_ids` in draft, scheduled
    or paused; `steps` in draft; while paused only `steps[i].template`; else 409."""
    if body.integration_ids:
        integrations.check_ids(ctx, principal, body.integration_ids)
    return campaigns.update_campaign(ctx, principal, campaign_id, body.stored())


@router.get("/{campaign_id}/timeline", response_model=TimelinePublic, responses=error_responses(404))
def get_timeline(campaign_id: ObjectId, principal: Viewer, ctx: ContextDep):
    """Every transition, hold and edit, oldest first."""
    return {"items": campaigns.get_timeline(ctx, principal, campaign_id)}


@router.get("/{campaign_id}/stats", response_model=CampaignStats, responses=error_responses(404, 422))
def get_stats(campaign_id: ObjectId, principal: Viewer, ctx: ContextDep,
              interval: Literal["hour", "day"] = "day",
              from_: Annotated[datetime | None, Query(alias="from", description=(
                  "Start of the series (default: when the campaign started); without an offset, the "
                  "campaign's local time"))] = None,
              to: Annotated[datetime | None, Query(description="End of the series, exclusive (default: now)")] = None):
    """Per step and variant (whole campaign) and over time (buckets starting at the campaign
    zone's hours or midnights, `at` in UTC, empty ones with zeros), from maintained counters."""
    return stats.campaign_stats(ctx, principal, campaign_id, interval=interval, start=from_, end=to)


# --- message content -----------------------------------------------------------------------------

@router.get("/{campaign_id}/preview", response_model=CampaignPreview, responses=error_responses(404))
def preview_campaign(campaign_id: ObjectId, principal: Viewer, ctx: ContextDep,
                     lead_id: Annotated[str | None, Query(description="Default: the campaign's first lead")] = None,
                     variant: Annotated[int | None, Query(ge=0, le=4, description=(
                         "Steps with variants render this one (default: the lead's own)"))] = None):
    """Every step rendered for one lead of the campaign, exactly as the worker would send it.
    (Channel fallback, and so its `fallback` selector, is not built yet.)"""
    return content.preview(ctx, principal, campaign_id, lead_id, variant)


@router.post("/{campaign_id}/test", response_model=SendTestResult, responses=error_responses(403, 404, 409, 429))
def send_test(campaign_id: ObjectId, body: SendTestRequest, principal: Operator, ctx: ContextDep):
    """Send one rendered step to the operator's address now, through the campaign's key
    pool, and answer the provider's verdict. Leads, counters, caps, detectors and keys are
    untouched; the timeline gets a `test_send` entry. A message the worker would refuse for
    its content answers `failed` with that error, without calling the provider."""
    return content.send_test(ctx, principal, campaign_id, step=body.step, to=body.to.model_dump(),
                             lead_id=body.lead_id, variant=body.variant)


# --- lifecycle actions: each answers the campaign, or a 409 naming why not --------------------

@router.post("/{campaign_id}/schedule", response_model=CampaignPublic, responses=ACTION_ERRORS)
def schedule_campaign(campaign_id: ObjectId, body: ScheduleAction, principal: Operator, ctx: ContextDep):
    """draft → scheduled; `start_at` must be in the future."""
    return campaigns.schedule(ctx, principal, campaign_id, body.start_at)


@router.post("/{campaign_id}/cancel", response_model=CampaignPublic, responses=CANCEL_ERRORS)
def cancel_campaign(campaign_id: ObjectId, principal: Operator, ctx: ContextDep,
                    body: Annotated[CancelAction | None, Body()] = None):
    """Irreversible: `confirm` must be the campaign's exact name (else 409
    `confirmation_required`); unfinished leads become `canceled`."""
    return campaigns.cancel(ctx, principal, campaign_id, body.confirm if body else None)


@router.post("/{campaign_id}/duplicate", status_code=201, response_model=CampaignPublic,
             responses=error_responses(403, 404, 422))
def duplicate_campaign(campaign_id: ObjectId, principal: Operator, ctx: ContextDep,
                       body: Annotated[DuplicateAction | None, Body()] = None):
    """A new draft with the same steps, schedule and limits; leads only if asked."""
    return campaigns.duplicate(ctx, principal, campaign_id, bool(body and body.include_leads))


def _add_simple_action(name: str, run, doc: str, responses: dict = ACTION_ERRORS) -> None:
    def endpoint(campaign_id: ObjectId, principal: Operator, ctx: ContextDep):
        return run(ctx, principal, campaign_id)

    endpoint.__doc__ = doc
    router.add_api_route(f"/{{campaign_id}}/{name}", endpoint, methods=["POST"], response_model=CampaignPublic,
                         responses=responses, name=f"{name}_campaign", summary=f"{name.capitalize()} Campaign")


KEY_CHECK = (" Each key of the campaign's pool marked failed in the last run is first tested (one cheap "
             "authenticated read, as `POST /integrations/{id}/test`, bounded by DRUMBEAT_PROBE_TIMEOUT_SECONDS): "
             "a key still refused, not answering or unreachable keeps its mark, and so does one whose mark came "
             "from a billing or account error (e.g. `twilio:20005`) until its credentials are saved again; a "
             "channel left with no usable key closes gate `key_pool` with that key's `error`.")


_add_simple_action("unschedule", campaigns.unschedule, "scheduled → draft.")
_add_simple_action("start", campaigns.start,
                   "draft or scheduled → sending through the gates; refused: 409 `resume_blocked`." + KEY_CHECK,
                   GATED_ERRORS)
_add_simple_action("pause", campaigns.pause, "sending → paused (manual); a system pause becomes manual.")
_add_simple_action("resume", campaigns.resume,
                   "paused (or sending with holds) → sending through the gates; refused: 409 `resume_blocked`."
                   + KEY_CHECK, GATED_ERRORS)
