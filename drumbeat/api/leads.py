"""Leads of a campaign (import, list, detail, resolve), the suppression list and erasures (API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import anyio.from_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_serializer

from drumbeat.api.deps import ContextDep, Operator, Owner, Viewer
from drumbeat.domain.consent import SuppressionReason
from drumbeat.domain.exceptions import ValidationFailed
from drumbeat.domain.leads import LeadState
from drumbeat.schemas import error_responses, examples, one_or_more
from drumbeat.services import erasures, leads, suppressions

router = APIRouter(tags=["leads"])

CSV_TYPES = {"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel"}


# --- shapes (they are also the OpenAPI document) ------------------------------------------

class LeadIn(BaseModel):
    """One lead. Validated row by row by the service: a bad row is reported, not fatal."""

    model_config = ConfigDict(extra="forbid")
    phone: str | None = Field(None, description="international (+ or 00), stored as E.164")
    email: str | None = Field(None, json_schema_extra={"format": "email"})
    linkedin_url: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    timezone: str | None = Field(None, description="IANA zone, e.g. Europe/Berlin")
    attributes: dict[str, str | int | float | bool | None] | None = None


class LeadsIn(BaseModel):
    model_config = examples({"leads": [
        {"phone": "+4915123456789", "email": "ada@example.com", "first_name": "Ada", "timezone": "Europe/Berlin",
         "attributes": {"plan": "pro"}},
        {"phone": "+4915123456788", "email": "grace@example.com", "first_name": "Grace"}]})

    # Items stay raw so each bad lead is rejected alone (with its index), not the request.
    leads: Annotated[list[Any], Field(max_length=leads.MAX_JSON_LEADS),
                     WithJsonSchema({"type": "array", "maxItems": leads.MAX_JSON_LEADS,
                                     "items": LeadIn.model_json_schema()})]


class FieldError(BaseModel):
    field: str
    message: str


class RejectedRow(BaseModel):
    row: int | None = Field(None, description="CSV: data rows count from 1 (the header is row 0)")
    index: int | None = Field(None, description="JSON: position in `leads`, from 0")
    errors: list[FieldError]

    @model_serializer(mode="wrap")
    def _only_given(self, handler):
        return {k: v for k, v in handler(self).items() if v is not None}


IMPORT_EXAMPLE = {"accepted": 1, "duplicates": 0, "rejected": [{"index": 1, "errors": [
    {"field": "phone", "message": "must be an international number starting with + or 00 (digits only)"}]}],
    "rejected_count": 1, "rejected_total": 1}


class ImportResult(BaseModel):
    model_config = examples(IMPORT_EXAMPLE)

    accepted: int = Field(description="inserted, including suppressed addresses enrolled as opted_out")
    duplicates: int
    rejected: list[RejectedRow] = Field(description=f"the first {leads.MAX_REJECTED_KEPT} rejected rows")
    rejected_count: int = Field(description="all rejected rows")
    rejected_total: int = Field(description="all rejected rows (the v1.1 name of `rejected_count`)")


class CsvImportResult(ImportResult):
    model_config = examples({**IMPORT_EXAMPLE, "rejected": [{"row": 2, "errors": [
        {"field": "phone", "message": "must be an international number starting with + or 00 (digits only)"}]}],
        "import_id": "0b7c7e0f3d2a4c55a1c1c3f1e2d4b6a8"})

    import_id: str = Field(description="GET /imports/{import_id}/rejected.csv lists every rejected row")


LEAD_EXAMPLE = {"id": "1", "state": "in_progress", "current_step": 1, "next_action_at": "2026-03-03T08:00:00Z",
                "phone": "+4915123456789", "email": "ada@example.com", "linkedin_url": None, "first_name": "Ada",
                "last_name": "Lovelace", "timezone": "Europe/Berlin", "attributes": {"plan": "pro"},
                "last_error": None, "created_at": "2026-03-02T10:00:00Z", "updated_at": "2026-03-02T10:06:00Z"}


class LeadOut(BaseModel):
    id: str
    state: str
    current_step: int
    next_action_at: datetime
    phone: str | None
    email: str | None
    linkedin_url: str | None
    first_name: str | None
    last_name: str | None
    timezone: str | None
    attributes: dict[str, Any]
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class AttemptOut(BaseModel):
    step: int
    variant: int | None = Field(default=None, description="The step's variant sent (null: the step has none)")
    channel: str
    integration_id: str | None
    status: str
    provider_message_id: str | None
    error_code: str | None
    error_class: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime


class LeadDetail(LeadOut):
    model_config = examples({**LEAD_EXAMPLE, "attempts": [{
        "step": 0, "variant": None, "channel": "whatsapp", "integration_id": "5eb4feab2f804d2daed9e008e923df08",
        "status": "read",
        "provider_message_id": "wamid.HBgLNDkxNTEyMzQ1Njc4OQ", "error_code": None, "error_class": None,
        "error_message": None, "created_at": "2026-03-02T10:05:03Z", "updated_at": "2026-03-02T10:06:00Z"}]})

    attempts: list[AttemptOut]


class LeadPage(BaseModel):
    model_config = examples({"items": [LEAD_EXAMPLE], "next_cursor": "1"})

    items: list[LeadOut]
    next_cursor: str | None


class ResolveIn(BaseModel):
    model_config = examples({"action": "mark_sent"})

    action: Literal["retry", "mark_sent"]


class SuppressionIn(BaseModel):
    """Exactly one of phone or email."""

    model_config = ConfigDict(extra="forbid", **examples({"email": "no-contact@example.com"}))
    phone: str | None = Field(None, description="international (+ or 00), stored as E.164")
    email: str | None = Field(None, json_schema_extra={"format": "email"})


class SuppressionSource(BaseModel):
    """Where the address was suppressed; keys without a value are left out."""

    campaign_id: str | None = Field(None, description="the campaign whose message drew the opt-out")
    lead_id: str | None = Field(None, description="the lead (in that campaign) who opted out")
    channel: str | None = Field(None, description="the channel the opt-out came through")

    @model_serializer(mode="wrap")
    def _present_only(self, handler):
        return {k: v for k, v in handler(self).items() if v is not None}


class SuppressionOut(BaseModel):
    id: str
    phone: str | None
    email: str | None
    reason: SuppressionReason = Field(description="why the address is suppressed")
    source: SuppressionSource = Field(description="where the opt-out came from (empty for a manual entry)")
    created_at: datetime


SUPPRESSION_EXAMPLE = {"id": "1", "phone": None, "email": "no-contact@example.com", "reason": "manual",
                       "source": {}, "created_at": "2026-03-02T10:00:00Z"}


class SuppressionAdded(SuppressionOut):
    model_config = examples({**SUPPRESSION_EXAMPLE, "leads_opted_out": 2})

    leads_opted_out: int = Field(description="unfinished leads of the workspace now opted_out")


class ErasureIn(BaseModel):
    """The person to forget: exactly one of phone or email, normalized as an import does."""

    model_config = ConfigDict(extra="forbid", **examples({"email": "ada@example.com"}))
    phone: str | None = Field(None, description="international (+ or 00), stored as E.164")
    email: str | None = Field(None, json_schema_extra={"format": "email"})


class ErasureOut(BaseModel):
    model_config = examples({"leads_erased": 2})

    leads_erased: int = Field(description="leads of the workspace, in every campaign, whose personal fields were "
                                          "replaced (0 for an unknown address, which is suppressed all the same)")


class SuppressionPage(BaseModel):
    model_config = examples({"items": [SUPPRESSION_EXAMPLE], "next_cursor": None})

    items: list[SuppressionOut]
    next_cursor: str | None


class SuppressionImportResult(BaseModel):
    model_config = examples({"accepted": 2, "duplicates": 1, "rejected": [{"row": 4, "errors": [
        {"field": "phone", "message": "must be an international number starting with + or 00 (digits only)"}]}],
        "rejected_total": 1, "leads_opted_out": 1})

    accepted: int = Field(description="addresses added to the list")
    duplicates: int = Field(description="addresses already on the list, or given again in the file")
    rejected: list[RejectedRow] = Field(description="the first 1,000 rejected rows, by row number")
    rejected_total: int = Field(description="every rejected row")
    leads_opted_out: int = Field(description="unfinished leads of the workspace now opted_out")


Limit = Annotated[int, Query(ge=1, le=500)]
# Lead and suppression pages resume after an id (services.leads.parse_cursor).
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{0,18}$", description="`next_cursor` of the previous page")]


# --- leads ----------------------------------------------------------------------------------

@router.post("/campaigns/{campaign_id}/leads", response_model=ImportResult, responses=error_responses(403, 404))
def add_leads(campaign_id: str, body: LeadsIn, principal: Operator, ctx: ContextDep):
    return leads.import_json(ctx, principal, campaign_id, body.leads)


MAPPING_HELP = ("JSON object: CSV column -> `phone`, `email`, `linkedin_url`, `first_name`, `last_name`, "
                "`timezone`, `attributes.<name>` or `ignore`. A column it leaves out keeps the default: a "
                "lead field's name (any case) is that field, any other column an attribute of its own name.")


@router.post("/campaigns/{campaign_id}/leads/import", response_model=CsvImportResult,
             responses=error_responses(403, 404), openapi_extra={
    "requestBody": {"required": True, "content": {"text/csv": {
        "schema": {"type": "string", "minLength": 1},
        "example": "phone,first_name,plan\n+4915123456789,Ada,pro\nnot-a-phone,Bob,free\n"}}}})
async def import_leads_csv(
        campaign_id: str, request: Request, principal: Operator, ctx: ContextDep,
        mapping: Annotated[str | None, Query(max_length=100_000, description=MAPPING_HELP)] = None,
        delimiter: Annotated[Literal[",", ";", "\t"] | None,
                             Query(description="default: sniffed from the header line (else a comma)")] = None,
        encoding: Annotated[Literal["utf-8", "windows-1252"] | None,
                            Query(description="default: the Content-Type's charset, else utf-8 (a BOM is "
                                              "dropped)")] = None,
        default_country: Annotated[str | None, Query(pattern="^[A-Za-z]{2}$", description=(
            "ISO 3166 alpha-2: the country of phone numbers written without one"))] = None,
        infer_timezone: Annotated[bool, Query(description=(
            "a lead without a time zone gets its phone number's, where the number has exactly one"))] = True):
    """A CSV body (header row; columns phone, email, linkedin_url, first_name, last_name,
    timezone; any other column becomes an attribute unless `mapping` says otherwise), read
    as it arrives. 422 naming the columns when two go to one field, a mapped column is not
    in the header, a target is unknown, or no column gives an address the campaign's steps
    need. Every rejected row is kept 7 days: GET /imports/{import_id}/rejected.csv."""
    declared = _csv_charset(request.headers.get("content-type"))  # also refuses a body that is not CSV
    charset = encoding or declared
    options = leads.csv_options(mapping, delimiter, default_country, infer_timezone)
    chunks = _body_chunks(request)
    return await anyio.to_thread.run_sync(
        lambda: leads.import_csv(ctx, principal, campaign_id, chunks, charset, options))


@router.get("/imports/{import_id}/rejected.csv", response_class=Response, responses={
    200: {"description": "Every rejected row: `row`, the CSV's own columns, `reasons`. A cell starting with "
                         "=, +, - or @ gets a leading ' (spreadsheet formula injection).",
          "content": {"text/csv": {"schema": {"type": "string"}, "example": (
              "row,phone,first_name,plan,reasons\n"
              "2,not-a-phone,Bob,free,phone: must be an international number starting with + or 00\n")}}},
    **error_responses(404)})
def rejected_rows(import_id: str, principal: Viewer, ctx: ContextDep):
    """The rejected rows of a CSV import of this workspace, kept 7 days (else 404)."""
    pieces = leads.rejected_csv(ctx, principal, import_id)
    return StreamingResponse(pieces, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="rejected-{import_id}.csv"'})


def _body_chunks(request: Request):
    """The request body for an import running in a worker thread (the database calls block):
    each chunk is fetched from the event loop only when the CSV reader needs more."""
    stream = request.stream().__aiter__()
    while True:
        try:
            yield anyio.from_thread.run(stream.__anext__)
        except StopAsyncIteration:
            return


def _csv_charset(content_type: str | None) -> str:
    if not content_type:
        return leads.DEFAULT_CHARSET
    media, *params = (p.strip() for p in content_type.split(";"))
    if media.lower() not in CSV_TYPES:
        raise ValidationFailed([{"field": "content-type", "message": "the body must be text/csv"}])
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return leads.DEFAULT_CHARSET


@router.get("/campaigns/{campaign_id}/leads", response_model=LeadPage, responses=error_responses(404))
def list_leads(campaign_id: str, principal: Viewer, ctx: ContextDep,
               state: Annotated[str | None, Query(description="one state or several, comma-separated",
                                                  pattern=one_or_more(s.value for s in LeadState))] = None,
               q: Annotated[str | None, Query(description="part of a phone, email, URL or name")] = None,
               limit: Limit = 50, cursor: Cursor = None):
    return leads.list_leads(ctx, principal, campaign_id, state=state, q=q, limit=limit, cursor=cursor)


@router.get("/campaigns/{campaign_id}/leads/{lead_id}", response_model=LeadDetail, responses=error_responses(404))
def get_lead(campaign_id: str, lead_id: str, principal: Viewer, ctx: ContextDep):
    return leads.get_lead(ctx, principal, campaign_id, lead_id)


@router.post("/campaigns/{campaign_id}/leads/{lead_id}/resolve", response_model=LeadDetail,
             responses=error_responses(403, 404, 409))
def resolve_lead(campaign_id: str, lead_id: str, body: ResolveIn, principal: Operator, ctx: ContextDep):
    """The operator's answer for an `in_doubt` lead (else 409 `invalid_transition`).

    `mark_sent`: the doubted attempt counts as accepted and the lead moves on. `retry`: the
    step is sent once more, but not before the doubted call must have ended (its start plus
    the longest a provider call can take, ~100 s; `next_action_at` says when). Should that
    call's answer still arrive before then and say it was sent, the lead is settled with it
    and the retry is dropped, so the person is not contacted twice."""
    return leads.resolve(ctx, principal, campaign_id, lead_id, body.action)


# --- suppression list -------------------------------------------------------------------------

@router.post("/suppressions", status_code=201, response_model=SuppressionAdded, tags=["suppressions"],
             responses=error_responses(403))
def add_suppression(body: SuppressionIn, principal: Operator, ctx: ContextDep):
    return suppressions.add_suppression(ctx, principal, body.model_dump(exclude_none=True))


@router.get("/suppressions", response_model=SuppressionPage, tags=["suppressions"], responses=error_responses())
def list_suppressions(principal: Viewer, ctx: ContextDep, limit: Limit = 50, cursor: Cursor = None,
                      q: Annotated[str | None, Query(max_length=320, description=(
                          "part of a phone or email, written as you like (`0049 151` finds `+49151…`)"))] = None,
                      reason: Annotated[SuppressionReason | None, Query(description="only entries with this reason")]
                      = None):
    return suppressions.list_suppressions(ctx, principal, limit=limit, cursor=cursor, q=q,
                                          reason=reason.value if reason else None)


@router.post("/suppressions/import", response_model=SuppressionImportResult, tags=["suppressions"],
             responses=error_responses(403), openapi_extra={
    "requestBody": {"required": True, "content": {"text/csv": {
        "schema": {"type": "string", "minLength": 1},
        "example": "phone,email,reason\n+4915123456789,,stop_keyword\n,ada@example.com,\nnot-a-phone,,manual\n"}}}})
async def import_suppressions(request: Request, principal: Operator, ctx: ContextDep):
    """A CSV body with a `phone` and/or an `email` column and an optional `reason` column
    (one of the reasons; `import` when absent or empty), read as it arrives. A bad row is
    rejected with its row number, the rest imported; matching unfinished leads opt out."""
    charset = _csv_charset(request.headers.get("content-type"))
    chunks = _body_chunks(request)
    return await anyio.to_thread.run_sync(lambda: suppressions.import_csv(ctx, principal, chunks, charset))


@router.get("/suppressions/export", response_class=Response, tags=["suppressions"], responses={
    200: {"description": "The whole list: `phone`, `email`, `reason`, `created_at`. A cell starting with "
                         "=, +, - or @ gets a leading ' (spreadsheet formula injection; phones appear as '+49…).",
          "content": {"text/csv": {"schema": {"type": "string"}, "example": (
              "phone,email,reason,created_at\n'+4915123456789,,stop_keyword,2026-03-02T10:00:00Z\n"
              ",ada@example.com,import,2026-03-02T10:05:00Z\n")}}}, **error_responses()})
def export_suppressions(principal: Viewer, ctx: ContextDep):
    return StreamingResponse(suppressions.export_csv(ctx, principal), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'})


@router.delete("/suppressions/{suppression_id}", status_code=204, response_class=Response, tags=["suppressions"],
               responses=error_responses(403, 404))
def delete_suppression(suppression_id: str, principal: Owner, ctx: ContextDep):
    """The address may be contacted again by campaigns that enrol it from now on; leads
    already opted out stay so."""
    suppressions.delete_suppression(ctx, principal, suppression_id)
    return Response(status_code=204)


# --- erasure ------------------------------------------------------------------------------------

@router.post("/erasures", response_model=ErasureOut, tags=["suppressions"], responses=error_responses(403))
def erase(body: ErasureIn, principal: Owner, ctx: ContextDep):
    """Forget a person at their request: every lead of the workspace with the address has its
    names, addresses and attributes replaced and its consent texts blanked (states and
    counts stay); the address stays suppressed as a keyed hash only, so imports enrol it
    opted_out and nothing contacts it again."""
    return erasures.erase(ctx, principal, body.model_dump(exclude_none=True))
