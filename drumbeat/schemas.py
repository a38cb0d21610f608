"""Request and response models of API v1 (docs/api.md), used by the API and by the
dashboard's forms alike, so a form can never accept what the API refuses.

Requests refuse unknown fields (a typo must not be silently ignored) and bound every
number and string, so no input can reach the database in a shape it would refuse: bad
input is a 422, never a 500.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from drumbeat.domain import sms
from drumbeat.domain.channels import Channel, Provider
from drumbeat.domain.consent import MAX_KEYWORD_LENGTH, OPT_IN_WORDS, OPT_OUT_WORDS, keyword_problem
from drumbeat.domain.exceptions import NotFound
from drumbeat.domain.lifecycle import Status
from drumbeat.domain.messages import is_whatsapp_template
from drumbeat.domain.reasons import PauseReason
from drumbeat.domain.roles import Role
from drumbeat.domain.templates import LEAD_FIELDS, UNSUBSCRIBE_URL, unknown_variables
from drumbeat.domain.variants import MAX_VARIANTS, MIN_VARIANTS
from drumbeat.domain.whatsapp_templates import located_strings, shape_problems

MAX_INT = 2**31 - 1  # the widest integer column (PostgreSQL INTEGER)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# --- building blocks -----------------------------------------------------------------------

def _unstorable(text: str) -> str | None:
    # Neither database stores NUL, and a lone surrogate cannot be encoded as UTF-8.
    if "\x00" in text:
        return "may not contain NUL characters"
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "may not contain unpaired surrogates"
    return None


def _storable_text(value: str) -> str:
    problem = _unstorable(value)
    if problem:
        raise ValueError(f"text {problem}")
    return value


MAX_JSON_DEPTH = 32  # far beyond any provider config; pydantic cannot serialize much deeper


def _storable_json(value: Any, path: str = "", depth: int = 0) -> Any:
    """Free-form JSON (template, config): the same text rules, finite numbers only
    (PostgreSQL's JSON refuses Infinity and NaN), and nested at most MAX_JSON_DEPTH deep."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, str):
        problem = _unstorable(value)
        if problem:
            raise ValueError(f"{path or 'value'} {problem}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'} must be a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable_json(key, path, depth + 1)
            _storable_json(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _storable_json(item, f"{path}.{i}" if path else str(i), depth + 1)
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
Name = Annotated[Text, Field(min_length=1, max_length=200)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
Cap = Annotated[int, Field(ge=1, le=MAX_INT)]
# Every time in a response: ISO 8601 in UTC with an explicit offset ("+00:00").
_utc_iso = PlainSerializer(lambda d: d.astimezone(UTC).isoformat(), return_type=str)
_date_time = WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization")
UtcTime = Annotated[datetime, _utc_iso, _date_time]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None


Instant = Annotated[AwareDatetime, AfterValidator(_to_utc), _utc_iso, _date_time]


def _existing_id(value: str) -> str:
    # An id no row can have (too long, unprintable) is simply unknown: 404, like any other,
    # and it never reaches a database that would choke on it. NotFound is not a ValueError,
    # so pydantic lets it through to the API's error handler instead of making it a 422.
    if len(value) > 64 or not value.isprintable():
        # A body may carry a lone surrogate (a path cannot): echoed escaped, as valid UTF-8.
        raise NotFound("not found", {"id": value[:64].encode("utf-8", "backslashreplace").decode()})
    return value


ObjectId = Annotated[str, AfterValidator(_existing_id)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Model name -> its examples, as given (api/openapi.py puts them back into the document).
MODEL_EXAMPLES: dict[str, list] = {}
# A route's own example as FastAPI serves it (nulls dropped, keys sorted) -> as written.
ROUTE_EXAMPLES: dict[str, Any] = {}


def without_nulls(value: Any) -> Any:
    """What FastAPI's document keeps of a value: dict entries whose value is null dropped."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def route_example(value: Any) -> Any:
    """A route's own example (`responses=`, `openapi_extra=`), kept whole in the served
    document though it holds nulls (api/openapi.py)."""
    ROUTE_EXAMPLES[json.dumps(without_nulls(value), sort_keys=True)] = value
    return value


def examples(*values: Any) -> ConfigDict:
    """A model's examples, in its OpenAPI schema: Swagger UI (/docs) and docs/api-reference.md
    (`drumbeat docs api-reference`) show the first; tests/api/test_api_reference.py checks
    that each is valid against the schema. In a subclass of Request the configs merge."""

    def extra(schema: dict, model: type) -> None:
        schema["examples"] = list(values)
        MODEL_EXAMPLES[model.__name__] = list(values)

    return ConfigDict(json_schema_extra=extra)



# Ids and times the examples share, so that one example's campaign is another's.
EXAMPLE_IDS = {"workspace": "8fbacccd7d8d44d39135d0b6fd2f6b2e", "user": "f44bfdeb5b1b4232ababb72d98fdcd8c",
               "integration": "5eb4feab2f804d2daed9e008e923df08", "campaign": "8e32e3f9d20e4276ac0388bab12582c2",
               "webhook": "5bf7ee4633bb45698b864117f3425eb7"}
EXAMPLE_AT = "2026-03-02T10:00:00+00:00"


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorBody(BaseModel):
    error: ErrorDetail


class FieldProblem(BaseModel):
    field: str
    message: str


class InvalidFields(BaseModel):
    model_config = ConfigDict(extra="allow")
    fields: list[FieldProblem]


# Per status: the envelope's name in the OpenAPI document, the codes API.md gives it, and
# what it means. The codes are a closed set, so a route answering any other is a bug the
# schema check (tests/api/test_fuzz.py) catches.
_ERRORS: dict[int, tuple[str, tuple[str, ...], str]] = {
    401: ("Unauthorized", ("unauthorized",), "Missing or invalid bearer token"),
    403: ("Forbidden", ("forbidden",), "The caller's role is too low"),
    404: ("NotFound", ("not_found",), "No such object in the caller's workspace"),
    409: ("Conflict", ("invalid_transition", "resume_blocked", "confirmation_required"),
          "Refused in the object's current state; nothing changed"),
    413: ("PayloadTooLarge", ("payload_too_large",), "The request body is too large"),
    422: ("InvalidInput", ("validation_error",), "The input breaks a rule; `details.fields` says which"),
    429: ("TooManyRequests", ("rate_limited",), "Too many requests of this kind; `Retry-After` says when to "
          "try again"),
    503: ("Unavailable", ("unavailable",), "The database is unavailable; try again shortly"),
}
# Any request may meet these: the token is checked, the body size is limited (before
# routing), input is validated (FastAPI would otherwise document its own `{"detail"}` 422,
# which this API never sends) and the database may be down.
ALWAYS = (401, 413, 422, 503)

_ERROR_EXAMPLES = {
    401: ("unauthorized", "the token is not valid", {}),
    403: ("forbidden", "this action needs the operator role", {}),
    404: ("not_found", "campaign not found", {"id": EXAMPLE_IDS["campaign"]}),
    409: ("invalid_transition", "cannot pause a campaign that is completed", {"from": "completed",
                                                                              "action": "pause"}),
    413: ("payload_too_large", "the request body is larger than 20971520 bytes", {"max_bytes": 20971520}),
    422: ("validation_error", "the request is not valid",
          {"fields": [{"field": "name", "message": "String should have at least 1 character"}]}),
    429: ("rate_limited", "at most 10 test sends a minute per workspace",
          {"limit": 10, "window_seconds": 60, "retry_after_seconds": 12}),
    503: ("unavailable", "the database is unavailable; try again shortly", {}),
}


def _error_model(status: int) -> type[BaseModel]:
    name, codes, _ = _ERRORS[status]
    fields: dict[str, Any] = {"code": (Literal[codes], ...), "message": (str, ...)}
    fields["details"] = (InvalidFields, ...) if status == 422 else (dict[str, Any], ...)
    detail = create_model(f"{name}ErrorDetail", **fields)
    code, message, details = _ERROR_EXAMPLES[status]
    return create_model(f"{name}Error", error=(detail, ...), __config__=examples(
        {"error": {"code": code, "message": message, "details": details}}))


ERROR_MODELS = {status: _error_model(status) for status in _ERRORS}


def error_responses(*statuses: int, descriptions: dict[int, str] | None = None,
                    examples: dict[int, dict] | None = None) -> dict:
    """OpenAPI declaration of the error envelope for these statuses (and ALWAYS's).
    `examples`: a route's own example envelope for a status, instead of the model's."""
    descriptions, examples = descriptions or {}, examples or {}
    return {s: {"model": ERROR_MODELS[s], "description": descriptions.get(s, _ERRORS[s][2]), **_HEADERS.get(s, {}),
                **({"content": {"application/json": {"example": route_example(examples[s])}}} if s in examples else {})}
            for s in sorted({*ALWAYS, *statuses})}


_HEADERS = {429: {"headers": {"Retry-After": {"description": "Seconds until a request may succeed",
                                              "schema": {"type": "integer"}}}}}


# --- users and workspace ---------------------------------------------------------------------

def _email(value: str) -> str:
    # Syntax only (API.md): no DNS, and test domains such as `.test` are fine.
    try:
        return validate_email(value, check_deliverability=False, globally_deliverable=False,
                              test_environment=True).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


Email = Annotated[str, Field(max_length=320, json_schema_extra={"format": "email"}), AfterValidator(_email)]


class UserCreate(Request):
    model_config = examples({"email": "ops@acme.test", "role": "operator"})

    email: Email
    role: Role
    password: Annotated[Text, Field(min_length=1, max_length=1000)] | None = None


class UserPublic(BaseModel):
    model_config = examples({"id": "e9365902751e4cca83f28fa93868594e", "email": "ops@acme.test", "role": "operator",
                             "token": "dbt_FHuLImO5PdWhrbWODZPdPZIJBKTGiNCds50VcYxlUkA"})

    id: str
    email: str
    role: Role
    token: str = Field(description="Shown once; store it now.")


USER_EXAMPLE = {"id": EXAMPLE_IDS["user"], "email": "ops@acme.test", "role": "operator"}


class UserListed(BaseModel):
    model_config = examples(USER_EXAMPLE)

    id: str
    email: str
    role: Role


class UsersPublic(BaseModel):
    model_config = examples({"items": [{"id": "e9365902751e4cca83f28fa93868594e", "email": "owner@acme.test",
                                        "role": "owner"}, USER_EXAMPLE], "next_cursor": None})

    items: list[UserListed]
    next_cursor: str | None = None


class UserUpdate(Request):
    model_config = examples({"role": "viewer"})

    role: Role


class TokenCreate(Request):
    model_config = examples({}, {"user_id": EXAMPLE_IDS["user"]})

    user_id: ObjectId | None = Field(None, description="whose token: the caller's own when left out; an owner "
                                                       "may name any user of the workspace")


class TokenCreated(BaseModel):
    model_config = examples({"id": "0c4e7e0c7f9a4a4f9d3b2f8a6c1d5e77",
                             "token": "dbt_FHuLImO5PdWhrbWODZPdPZIJBKTGiNCds50VcYxlUkA"})

    id: str
    token: str = Field(description="Shown once; store it now. Only its hash is kept.")


TOKEN_EXAMPLE = {"id": "0c4e7e0c7f9a4a4f9d3b2f8a6c1d5e77", "user_id": EXAMPLE_IDS["user"],
                 "created_at": EXAMPLE_AT, "last_used_at": "2026-03-02T11:42:00+00:00"}


class TokenPublic(BaseModel):
    model_config = examples(TOKEN_EXAMPLE)

    id: str
    user_id: str
    created_at: Instant
    last_used_at: Instant | None = Field(description="up to a minute behind the token's latest use; null: never used")


class TokensPublic(BaseModel):
    model_config = examples({"items": [TOKEN_EXAMPLE], "next_cursor": None})

    items: list[TokenPublic]
    next_cursor: str | None = None


def _keyword(value: str) -> str:
    problem = keyword_problem(value)
    if problem:
        raise ValueError(problem)
    return value.strip()


Keyword = Annotated[Text, Field(max_length=MAX_KEYWORD_LENGTH), AfterValidator(_keyword)]
Keywords = Annotated[list[Keyword], Field(max_length=100)]
AutoReplyText = Annotated[Text, Field(min_length=1, max_length=640)]


class ContactCap(Request):
    """At most `max` messages to one person within `days` days, across every campaign."""

    max: int = Field(ge=1, le=MAX_INT, description="messages per person in the period, at least 1")
    days: int = Field(ge=1, le=365, description="the period in days, 1 to 365")


class AutoReplies(Request):
    """SMS answers sent by the integration that received the message; null: none (default)."""

    stop: AutoReplyText | None = Field(None, description="sent once per STOP (opt-out) message")
    help: AutoReplyText | None = Field(None, description="sent once per HELP or INFO message")


class WorkspacePublic(BaseModel):
    model_config = examples({"id": EXAMPLE_IDS["workspace"], "name": "Acme", "subscription_status": "active",
                             "opt_out_words": ["ALTO", "BAJA"], "opt_in_words": ["ALTA"],
                             "default_opt_out_words": list(OPT_OUT_WORDS),
                             "default_opt_in_words": list(OPT_IN_WORDS),
                             "contact_cap": {"max": 3, "days": 7},
                             "auto_replies": {"stop": "You will get no more messages. Reply START to undo.",
                                              "help": None}})

    id: str
    name: str
    subscription_status: Literal["active", "canceled"]
    opt_out_words: list[str] = Field(description="the workspace's own opt-out words, besides the defaults")
    opt_in_words: list[str] = Field(description="the workspace's own opt-in words, besides the defaults")
    default_opt_out_words: list[str] = Field(description="the opt-out words every workspace has")
    default_opt_in_words: list[str] = Field(description="the opt-in words every workspace has")
    contact_cap: ContactCap | None = Field(description="null: no cap")
    auto_replies: AutoReplies


class WorkspaceUpdate(Request):
    """Consent settings (owner). Fields left out stay as they are."""

    model_config = examples({"opt_out_words": ["ALTO", "BAJA"], "contact_cap": {"max": 3, "days": 7}})

    opt_out_words: Keywords = Field(None, description="replaces the workspace's own opt-out words")  # type: ignore[assignment]
    opt_in_words: Keywords = Field(None, description="replaces the workspace's own opt-in words")  # type: ignore[assignment]
    contact_cap: ContactCap | None = Field(None, description="null removes the cap")
    auto_replies: AutoReplies = Field(None, description="keys given replace those replies")  # type: ignore[assignment]

    @field_validator("opt_out_words", "opt_in_words", "auto_replies", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null (leave the field out to keep it)")
        return value


class SubscriptionUpdate(Request):
    model_config = examples({"status": "canceled"})

    status: Literal["active", "canceled"]


# --- integrations -------------------------------------------------------------------------

class IntegrationCreate(Request):
    model_config = examples({
        "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "Main number",
        "credentials": {"access_token": "EAAG...f00d", "app_secret": "9d1c...f00d"},
        "config": {"phone_number_id": "106540352242922", "waba_id": "102290129340398"}, "daily_cap": 1000})

    channel: Channel
    provider: Provider
    label: Name | None = None
    credentials: JsonObject = {}
    config: JsonObject = {}
    daily_cap: Cap | None = None


class IntegrationUpdate(Request):
    model_config = examples({"credentials": {"access_token": "EAAG...beef"}, "daily_cap": 2000})

    # Omitted means unchanged; only daily_cap may be null (no cap).
    label: Name = None  # type: ignore[assignment]
    credentials: JsonObject = None  # type: ignore[assignment]
    config: JsonObject = None  # type: ignore[assignment]
    daily_cap: Cap | None = None
    enabled: bool = None  # type: ignore[assignment]


class HealthEvent(Request):
    model_config = examples({"event": "disconnected"})

    event: Literal["disconnected", "reconnected", "restricted", "restriction_lifted"]


INTEGRATION_EXAMPLE = {
    "id": EXAMPLE_IDS["integration"], "channel": "whatsapp", "provider": "whatsapp_cloud", "label": "Main number",
    "state": "active", "credentials": {"access_token": "****f00d", "app_secret": "****f00d"},
    "config": {"phone_number_id": "106540352242922", "waba_id": "102290129340398"}, "daily_cap": 1000,
    "enabled": True, "created_at": EXAMPLE_AT}


class IntegrationPublic(BaseModel):
    model_config = examples(INTEGRATION_EXAMPLE)

    id: str
    channel: Channel
    provider: Provider
    label: str
    state: Literal["active", "disconnected", "restricted", "disabled"]
    credentials: dict[str, str] = Field(description='Masked values, like "****f00d".')
    config: dict[str, Any]
    daily_cap: int | None
    enabled: bool
    created_at: UtcTime


class IntegrationsPublic(BaseModel):
    model_config = examples({"items": [INTEGRATION_EXAMPLE], "next_cursor": None})

    items: list[IntegrationPublic]
    next_cursor: str | None = None


class TemplateParameters(BaseModel):
    header: int
    body: int
    buttons: list[int] = Field(description="One count per button, in order.")


class CatalogueTemplate(BaseModel):
    name: str
    language: str
    status: str = Field(description="Meta's status: APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ...")
    category: str | None
    components: list[dict[str, Any]] = Field(description="Meta's template definition.")
    parameters: TemplateParameters = Field(description="Placeholders per part (0 where a part has none).")
    synced_at: UtcTime


class CatalogueTemplates(BaseModel):
    model_config = examples({"items": [{
        "name": "spring_promo", "language": "en", "status": "APPROVED", "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Hi {{1}}, our spring offer is live."}],
        "parameters": {"header": 0, "body": 1, "buttons": []}, "synced_at": EXAMPLE_AT}]})

    items: list[CatalogueTemplate]


class TemplatesSynced(BaseModel):
    model_config = examples({"synced": 12})

    synced: int = Field(description="Templates now in the catalogue.")


class ProviderError(BaseModel):
    code: str = Field(description='Provider-qualified, like a send\'s: "whatsapp:190", "twilio:20003", '
                                  '"smtp:535", "whatsapp:connection".')
    message: str | None = Field(description="The provider's own words, secrets masked.")


class ConnectionTested(BaseModel):
    model_config = examples({"ok": False, "error": {"code": "whatsapp:190",
                                                    "message": "Error validating access token"}})

    ok: bool
    error: ProviderError | None


def _statuses(value: str) -> str:
    unknown = [s for s in value.split(",") if s and s not in {status.value for status in Status}]
    if unknown:
        raise ValueError(f"unknown status: {', '.join(unknown)}")
    return value


def one_or_more(names) -> str:
    """The OpenAPI pattern of a comma-separated filter of these names (empty items allowed)."""
    name = "|".join(names)
    return f"^({name})?(,({name})?)*$"


StatusFilter = Annotated[str, Field(json_schema_extra={"pattern": one_or_more(s.value for s in Status)}),
                         AfterValidator(_statuses)]


# --- campaigns: settings ----------------------------------------------------------------------

@cache
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - {"localtime"}  # the server's own zone, not an IANA name


def _zone(value: str) -> str:
    if value not in known_zones():
        raise ValueError("not a known IANA time zone")
    return value


HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")  # fullmatch: "$" would let "09:00\n" through


def _clock_time(value: str) -> str:
    if not HHMM.fullmatch(value):
        raise ValueError('expected "HH:MM" (00:00 to 23:59)')
    return value


def _window_end(value: str) -> str:
    return value if value == "24:00" else _clock_time(value)


def _days(value: list[str]) -> list[str]:
    return [d for d in DAYS if d in value]  # canonical order, no repeats


_HHMM_PATTERN = "^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Schedule(BaseModel):
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"
    days: Annotated[list[Literal[DAYS]], Field(min_length=1, max_length=7), AfterValidator(_days)] = list(DAYS)
    window_start: Annotated[str, Field(json_schema_extra={"pattern": _HHMM_PATTERN}),
                            AfterValidator(_clock_time)] = "00:00"
    window_end: Annotated[str, Field(json_schema_extra={"pattern": "^(24:00|([01][0-9]|2[0-3]):[0-5][0-9])$"}),
                          AfterValidator(_window_end)] = "24:00"
    randomize_within_window: bool = False
    start_at: Instant | None = None

    @model_validator(mode="after")
    def _non_empty_window(self):
        if self.window_start == self.window_end:
            raise ValueError("window_start and window_end must differ (00:00 to 24:00 is the whole day)")
        return self


class Ramp(BaseModel):
    start: Cap
    increase: Annotated[int, Field(ge=0, le=MAX_INT)]
    every_days: Annotated[int, Field(ge=1, le=3650)]


class Limits(BaseModel):
    daily_cap: Cap | None = None
    weekly_cap: Cap | None = None
    rate_per_second: Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)] | None = None
    ramp: Ramp | None = None


class FailurePolicy(BaseModel):
    window: Annotated[int, Field(ge=1, le=100_000)] = 50
    threshold: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.5
    min_samples: Annotated[int, Field(ge=1, le=100_000)] = 20

    @model_validator(mode="after")
    def _samples_fit_window(self):
        if self.min_samples > self.window:
            raise ValueError("min_samples may not exceed window")
        return self


# Requests use the same shapes with unknown fields refused; responses accept what is stored.
class ScheduleIn(Schedule, Request):
    pass


class RampIn(Ramp, Request):
    pass


class LimitsIn(Limits, Request):
    ramp: RampIn | None = None


class FailurePolicyIn(FailurePolicy, Request):
    pass


def _variable_problem(unknown: list[str]) -> str:
    return (f"unknown template variable(s) {', '.join(unknown)}: use a lead field "
            f"({', '.join(LEAD_FIELDS)}), attributes.<name> or {UNSUBSCRIBE_URL}")


def _template_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """One error naming each (path inside the template, message); the API's 422 lists each
    path after the template's own (api.errors)."""
    return PydanticCustomError("template_problems", "{summary}", {
        "summary": "; ".join(f"{path}: {message}" for path, message in problems), "problems": problems})


class Template(Request):
    # Optional only for a WhatsApp template step (Meta sends its own text): Step checks.
    body: Annotated[Text, Field(min_length=1, max_length=100_000)] | None = None
    subject: Annotated[Text, Field(min_length=1, max_length=1000)] | None = None
    html: Annotated[Text, Field(min_length=1, max_length=1_000_000)] | None = None
    name: Annotated[Text, Field(min_length=1, max_length=512)] | None = None
    language: Annotated[Text, Field(min_length=1, max_length=32)] | None = None
    # Meta's send shape (domain.whatsapp_templates); checked below, whatever its JSON holds.
    components: Annotated[list[Any], AfterValidator(_storable_json)] | None = None
    action: Literal["invite", "message"] | None = None
    wait_seconds: Annotated[int, Field(ge=0, le=MAX_INT)] | None = None

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("body may not be blank")
        return value

    @field_validator("body", "subject", "html")
    @classmethod
    def _known_variables(cls, value: str | None) -> str | None:
        unknown = unknown_variables(value or "")
        if unknown:
            raise ValueError(_variable_problem(unknown))
        return value

    @field_validator("components")
    @classmethod
    def _meta_shape(cls, components: list | None) -> list | None:
        if components is None:
            return None
        problems = shape_problems(components)
        problems += [(path, _variable_problem(unknown)) for path, text in located_strings(components)
                     if (unknown := unknown_variables(text))]
        if problems:  # paths from inside `components`, which pydantic's location names already
            raise _template_error([(path.removeprefix("components"), message) for path, message in problems])
        return components


def _template_problems(channel: Channel, template: Template) -> list[tuple[str, str]]:
    """What a template lacks for a step on `channel` (paths inside the template)."""
    if channel == Channel.EMAIL and template.subject is None:
        return [("subject", "an email step needs template.subject")]
    if channel == Channel.LINKEDIN and template.action is None:
        template.action = "message"
    problems: list[tuple[str, str]] = []
    wa_template = is_whatsapp_template(channel, template.model_dump(include={"name", "language"}))
    if template.body is None and not wa_template:
        problems.append(("body", "is required (only a WhatsApp template step, with name and language, "
                                 "may leave it out)"))
    if template.components is not None and not wa_template:
        problems.append(("components", "belong to a WhatsApp template step (with name and language)"))
    if template.html is not None and channel != Channel.EMAIL:
        problems.append(("html", "belongs to an email step"))
    if channel == Channel.SMS and template.body is not None:
        size = sms.measure(template.body)
        if size.segments > sms.MAX_SEGMENTS:
            problems.append(("body", f"takes {size.segments} SMS segments ({size.encoding}) as written; "
                                     f"at most {sms.MAX_SEGMENTS} are sent"))
    return problems


class Variant(Request):
    template: Template
    weight: Annotated[int, Field(ge=1, le=1_000_000, description="Positive; the variant's share is "
                                                                   "weight / the sum of the step's weights")] = 1


class Step(Request):
    channel: Channel
    template: Template | None = Field(default=None, description="The step's message; or give `variants`")
    variants: Annotated[list[Variant], Field(min_length=MIN_VARIANTS, max_length=MAX_VARIANTS)] | None = Field(
        default=None, description="2 to 5 messages tried against each other instead of `template`; a lead's "
                                  "variant is fixed by its id and the step")
    delay_seconds: Annotated[int, Field(ge=0, le=MAX_INT)] = 0

    @field_validator("template")
    @classmethod
    def _fits_channel(cls, template: Template | None, info: ValidationInfo) -> Template | None:
        channel = info.data.get("channel")
        if channel is None or template is None:
            return template  # the channel itself is refused
        if channel == Channel.EMAIL and template.subject is None:
            raise ValueError("an email step needs template.subject")
        problems = _template_problems(channel, template)
        if problems:
            raise _template_error(problems)
        return template

    @field_validator("variants")
    @classmethod
    def _variants_fit_channel(cls, variants: list[Variant] | None, info: ValidationInfo) -> list[Variant] | None:
        channel = info.data.get("channel")
        if channel is None or variants is None:
            return variants
        problems = [(f"[{i}].template.{path}", message) for i, v in enumerate(variants)
                    for path, message in _template_problems(channel, v.template)]
        if problems:
            raise _template_error(problems)
        return variants

    @model_validator(mode="after")
    def _template_or_variants(self):
        if self.template is None and self.variants is None:
            raise PydanticCustomError("template_problems", "{summary}", {
                "summary": "template: is required (or give variants)", "problems": [("template", "is required "
                                                                                   "(or give variants)")]})
        if self.template is not None and self.variants is not None:
            raise PydanticCustomError("template_problems", "{summary}", {
                "summary": "variants: give either template or variants, not both",
                "problems": [("variants", "give either template or variants, not both")]})
        return self

    def stored(self) -> dict:
        """The step as services store it. An omitted delay stays omitted so that a PATCH
        of a paused campaign can change templates without restating delays. With variants,
        `template` is the first variant's (what code that knows no variants reads)."""
        if self.variants is not None:
            variants = [{"template": v.template.model_dump(exclude_none=True), "weight": v.weight}
                        for v in self.variants]
            out = {"channel": self.channel.value, "template": variants[0]["template"], "variants": variants}
        else:
            assert self.template is not None
            out = {"channel": self.channel.value, "template": self.template.model_dump(exclude_none=True)}
        if "delay_seconds" in self.model_fields_set:
            out["delay_seconds"] = self.delay_seconds
        return out


Steps = Annotated[list[Step], Field(min_length=1, max_length=100)]
IntegrationIds = Annotated[list[Annotated[Text, Field(max_length=64)]], Field(max_length=1000)]


CAMPAIGN_STEPS_EXAMPLE = [
    {"channel": "whatsapp", "template": {"name": "spring_promo", "language": "en",
                                         "body": "Hi {{first_name|there}}, our spring offer is live."}},
    {"channel": "email", "delay_seconds": 86400,
     "template": {"subject": "Spring offer", "body": "Hi {{first_name|there}}, here is the offer again."}}]
SCHEDULE_EXAMPLE = {"timezone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"],
                    "window_start": "09:00", "window_end": "18:00"}


class CampaignCreate(Request):
    model_config = examples({"name": "Spring promo", "steps": CAMPAIGN_STEPS_EXAMPLE,
                             "integration_ids": [EXAMPLE_IDS["integration"]], "schedule": SCHEDULE_EXAMPLE,
                             "limits": {"daily_cap": 500}})

    name: Name
    steps: Steps
    integration_ids: IntegrationIds | None = None
    schedule: ScheduleIn = Field(default_factory=ScheduleIn)
    limits: LimitsIn = Field(default_factory=LimitsIn)
    failure_policy: FailurePolicyIn = Field(default_factory=FailurePolicyIn)

    def stored(self) -> dict:
        return {
            "name": self.name,
            "steps": [s.stored() for s in self.steps],
            "schedule": self.schedule.model_dump(mode="json"),
            "limits": self.limits.model_dump(mode="json"),
            "failure_policy": self.failure_policy.model_dump(mode="json"),
            "integration_ids": self.integration_ids,
        }


class CampaignUpdate(Request):
    """Each object given replaces the stored one whole (omitted keys take their defaults),
    except `schedule.start_at`, which the schedule and unschedule actions own: left out,
    it keeps its value."""

    model_config = examples({"name": "Spring promo (DE)", "limits": {"daily_cap": 800, "rate_per_second": 2}})

    name: Name = None  # type: ignore[assignment]
    steps: Steps = None  # type: ignore[assignment]
    integration_ids: IntegrationIds | None = None
    schedule: ScheduleIn = None  # type: ignore[assignment]
    limits: LimitsIn = None  # type: ignore[assignment]
    failure_policy: FailurePolicyIn = None  # type: ignore[assignment]

    def stored(self) -> dict:
        out: dict[str, Any] = {}
        for key in self.model_fields_set:
            value = getattr(self, key)
            if key == "steps":
                out[key] = [s.stored() for s in value]
            elif key == "schedule":
                out[key] = value.model_dump(mode="json", exclude={"start_at"} - value.model_fields_set)
            elif isinstance(value, BaseModel):
                out[key] = value.model_dump(mode="json")
            else:
                out[key] = value
        return out


class ScheduleAction(Request):
    model_config = examples({"start_at": "2026-03-09T08:00:00+00:00"})

    start_at: Instant


class CancelAction(Request):
    model_config = examples({"confirm": "Spring promo"})

    confirm: Annotated[str, Field(max_length=1000)] | None = None


class DuplicateAction(Request):
    model_config = examples({"include_leads": False})

    include_leads: bool = False


# --- campaigns: responses -------------------------------------------------------------------

class ActorPublic(BaseModel):
    type: Literal["user", "system"]
    id: str | None


class Fix(BaseModel):
    action: str = Field(description="update_key, reconnect_account, review_account, renew_subscription, "
                                    "edit_template, review_errors, set_public_url or resume")
    integration_id: str | None = Field(default=None, description="The integration to fix, when one is named")


class Explanation(BaseModel):
    text: str = Field(description="One plain sentence naming the channel and what failed")
    fix: Fix


class HoldPublic(BaseModel):
    channel: Channel
    reason: PauseReason
    since: UtcTime
    details: dict[str, Any]
    explanation: Explanation


class VariantPublic(BaseModel):
    template: dict[str, Any]
    weight: int


class StepPublic(BaseModel):
    channel: Channel
    template: dict[str, Any] = Field(description="The step's message (with variants: the first variant's)")
    variants: list[VariantPublic] | None = Field(default=None, description="Left out: the step has no variants")
    delay_seconds: int

    @model_serializer(mode="wrap")
    def _without_no_variants(self, handler):
        out = handler(self)
        if out.get("variants") is None:
            out.pop("variants", None)  # a step without variants reads as before v1.1
        return out


class Caps(BaseModel):
    today: int
    this_week: int
    daily_cap: int | None
    weekly_cap: int | None
    ramp_cap: int | None


class Progress(BaseModel):
    total: int
    not_contacted: int
    in_progress: int
    completed: int
    replied: int
    failed: int
    opted_out: int
    in_doubt: int
    canceled: int
    percent: float


class Breakdown(BaseModel):
    sent: int
    delivered: int
    read: int
    replied: int
    failed: int


class ErrorGroup(BaseModel):
    code: str | None
    message: str | None
    count: int
    sample_lead_ids: list[str]
    scope: Literal["lead", "key", "campaign"] = Field(
        description="lead: failures of leads; key, campaign: answers of the current run that stopped a key or "
                    "the channel")


class MissingVariable(BaseModel):
    variable: str = Field(description="As written in the steps: `first_name`, `attributes.code`")
    leads: int = Field(description="Unfinished leads that still have to run a step needing it and have no value")
    sample_lead_ids: list[str]


CAMPAIGN_EXAMPLE = {
    "id": EXAMPLE_IDS["campaign"], "name": "Spring promo", "status": "sending",
    "paused_reason": None, "paused_reason_text": None, "paused_at": None, "paused_by": None, "pause_details": {},
    "pause_explanation": None, "holds": [],
    "steps": [{**step, "delay_seconds": step.get("delay_seconds", 0)} for step in CAMPAIGN_STEPS_EXAMPLE],
    "schedule": {**SCHEDULE_EXAMPLE, "randomize_within_window": False, "start_at": None},
    "limits": {"daily_cap": 500, "weekly_cap": None, "rate_per_second": None, "ramp": None},
    "failure_policy": {"window": 50, "threshold": 0.5, "min_samples": 20},
    "integration_ids": [EXAMPLE_IDS["integration"]], "created_at": EXAMPLE_AT,
    "started_at": "2026-03-02T10:05:00+00:00", "finished_at": None,
    "next_send_at": "2026-03-03T08:00:00+00:00", "next_send_reason": "daily_cap",
    "caps": {"today": 500, "this_week": 500, "daily_cap": 500, "weekly_cap": None, "ramp_cap": None},
    "progress": {"total": 3000, "not_contacted": 2480, "in_progress": 470, "completed": 12, "replied": 21,
                 "failed": 17, "opted_out": 0, "in_doubt": 0, "canceled": 0, "percent": 1.67},
    "breakdown": {"sent": 483, "delivered": 470, "read": 301, "replied": 21, "failed": 17},
    "errors": [{"code": "whatsapp:131026", "message": "Message undeliverable", "count": 17,
                "sample_lead_ids": ["41", "97"], "scope": "lead"}],
    "missing_variables": []}


class CampaignPublic(BaseModel):
    model_config = examples(CAMPAIGN_EXAMPLE)

    id: str
    name: str
    status: Status
    paused_reason: PauseReason | None
    paused_reason_text: str | None
    paused_at: UtcTime | None
    paused_by: ActorPublic | None
    pause_details: dict[str, Any]
    pause_explanation: Explanation | None = None
    holds: list[HoldPublic]
    steps: list[StepPublic]
    schedule: Schedule
    limits: Limits
    failure_policy: FailurePolicy
    integration_ids: list[str] | None
    created_at: UtcTime
    started_at: UtcTime | None
    finished_at: UtcTime | None
    next_send_at: UtcTime | None
    next_send_reason: Literal["window", "daily_cap", "weekly_cap", "ramp", "integration_cap", "step_delay",
                              "rate", "contact_cap"] | None
    caps: Caps
    progress: Progress
    breakdown: Breakdown
    errors: list[ErrorGroup]
    missing_variables: list[MissingVariable] = Field(
        default_factory=list,
        description="In draft, scheduled or paused: leads that would fail for a variable without value and "
                    "fallback, per variable (empty otherwise). Not in the items of a list.")


class CampaignsPublic(BaseModel):
    model_config = examples({"items": [{k: v for k, v in CAMPAIGN_EXAMPLE.items() if k != "missing_variables"}],
                             "next_cursor": None})

    items: list[CampaignPublic]
    next_cursor: str | None


class TimelineEntry(BaseModel):
    at: UtcTime
    from_status: Status | None
    to_status: Status | None
    action: str
    reason: str | None
    actor: ActorPublic
    details: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, row: Any) -> Any:
        # Stored rows keep the actor in two columns.
        if isinstance(row, dict) and "actor" not in row:
            return {**row, "actor": {"type": row.get("actor_type"), "id": row.get("actor_id")}}
        return row


class TimelinePublic(BaseModel):
    model_config = examples({"items": [
        {"at": EXAMPLE_AT, "from_status": None, "to_status": "draft", "action": "create", "reason": None,
         "actor": {"type": "user", "id": EXAMPLE_IDS["user"]}, "details": {}},
        {"at": "2026-03-02T10:05:00+00:00", "from_status": "draft", "to_status": "sending", "action": "start",
         "reason": None, "actor": {"type": "user", "id": EXAMPLE_IDS["user"]},
         "details": {"gates": [{"gate": "subscription", "ok": True, "reason": None},
                               {"gate": "key_pool", "ok": True, "reason": None, "channel": "whatsapp"}]}},
        {"at": "2026-03-02T16:40:00+00:00", "from_status": "sending", "to_status": "paused", "action": "pause",
         "reason": "all_keys_failed", "actor": {"type": "system", "id": "key_pool"},
         "details": {"channel": "whatsapp"}}]})

    items: list[TimelineEntry]


# --- statistics ---------------------------------------------------------------------------------

class VariantStats(BaseModel):
    variant: int | None = Field(description="The variant's index; null for a step without variants")
    sent: int = Field(description="Accepted sends (delivered and read ones included)")
    delivered: int = Field(description="Delivered (read ones included)")
    read: int
    replied: int = Field(description="Leads that replied after this step and variant was their last accepted send")
    failed: int = Field(description="Counted failures (lead-level, or retries exhausted)")
    opted_out: int
    reply_rate: float | None = Field(description="replied / sent, from 0 to 1; null when nothing was sent")


class StepStats(BaseModel):
    step: int
    channel: Channel
    variants: list[VariantStats]


class SeriesPoint(BaseModel):
    at: datetime = Field(description="The bucket's start (the campaign zone's hour or midnight), in UTC")
    sent: int
    delivered: int
    read: int
    replied: int
    failed: int


class CampaignStats(BaseModel):
    model_config = examples({"interval": "day", "timezone": "Europe/Berlin", "steps": [
        {"step": 0, "channel": "sms", "variants": [
            {"variant": 0, "sent": 500, "delivered": 480, "read": 0, "replied": 40, "failed": 3, "opted_out": 2,
             "reply_rate": 0.08},
            {"variant": 1, "sent": 498, "delivered": 477, "read": 0, "replied": 21, "failed": 5, "opted_out": 1,
             "reply_rate": 0.0422}]}],
        "series": [{"at": "2026-03-01T23:00:00Z", "sent": 998, "delivered": 957, "read": 0, "replied": 30,
                    "failed": 8},
                   {"at": "2026-03-02T23:00:00Z", "sent": 0, "delivered": 0, "read": 0, "replied": 31,
                    "failed": 0}]})

    interval: Literal["hour", "day"]
    timezone: str = Field(description="The campaign's zone, whose hours or midnights start the buckets")
    steps: list[StepStats]
    series: list[SeriesPoint]


# --- message content: preview and test send ----------------------------------------------------

class SmsSizePublic(BaseModel):
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    units: int = Field(description="GSM-7 septets (an extension character counts two) or UTF-16 code units")


class ContentProblem(BaseModel):
    code: str
    message: str


class StepPreview(BaseModel):
    step: int
    channel: Channel
    variant: int | None = Field(default=None, description="The variant rendered (null: the step has none)")
    rendered: dict[str, Any] = Field(description='WhatsApp `{"payload"}` (the provider request body), SMS and '
                                                 'voice `{"text"}`, email `{"subject", "text", "html"}`, LinkedIn '
                                                 '`{"action", "text"}`')
    missing: list[str] = Field(description="Variables without a value or fallback, as written")
    sms: SmsSizePublic | None
    problem: ContentProblem | None = Field(description="Why the worker would fail this lead on this step")


class CampaignPreview(BaseModel):
    model_config = examples({"lead_id": "1", "steps": [
        {"step": 0, "channel": "whatsapp", "missing": [], "sms": None, "problem": None, "rendered": {"payload": {
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915123456789",
            "type": "template", "template": {"name": "spring_promo", "language": {"code": "en"}}}}},
        {"step": 1, "channel": "email", "missing": [], "sms": None, "problem": None,
         "rendered": {"subject": "Spring offer", "text": "Hi Ada, here is the offer again.", "html": None}}]})

    lead_id: str | None = Field(description="null when the campaign has no lead (empty lead fields)")
    steps: list[StepPreview]


class SendTestTo(Request):
    phone: Annotated[Text, Field(max_length=64)] | None = None
    email: Annotated[Text, Field(max_length=320)] | None = None
    linkedin_url: Annotated[Text, Field(max_length=500)] | None = None


class SendTestRequest(Request):
    model_config = examples({"step": 0, "to": {"phone": "+4915123456700"}})

    step: Annotated[int, Field(ge=0, le=MAX_INT)]
    to: SendTestTo
    lead_id: Annotated[Text, Field(max_length=64)] | None = None
    variant: Annotated[int, Field(ge=0, lt=MAX_VARIANTS)] | None = Field(
        default=None, description="A step with variants: which one to send (default: the lead's own)")


class SendTestResult(BaseModel):
    model_config = examples({"status": "accepted", "provider_message_id": "wamid.HBgLNDkxNTEyMzQ1Njc4OQ",
                             "error": None, "integration_id": EXAMPLE_IDS["integration"], "missing": []})

    status: Literal["accepted", "failed"]
    provider_message_id: str | None
    error: ContentProblem | None
    integration_id: str = Field(description="The key the message went through (or would have)")
    missing: list[str] = Field(description="Variables without a value or fallback, as written")


# --- pydantic errors as the envelope's fields ---------------------------------------------

def _field_name(loc: tuple) -> str:
    # Drop only the leading "body": a template's own `body` field must keep its name.
    parts = loc[1:] if loc[:1] == ("body",) else loc
    return ".".join(str(p) for p in parts) or "body"


_INDEX = re.compile(r"\[(\d+)\]")


def error_fields(error: dict) -> list[dict]:
    """The envelope's fields of one pydantic error. A template's problems (Template)
    come as one error naming the template; each gets its own field, its path inside the
    template written like pydantic's (`components[1].parameters[0].text` ->
    `steps.0.template.components.1.parameters.0.text`)."""
    problems = (error.get("ctx") or {}).get("problems")
    if not problems:
        return [{"field": _field_name(error["loc"]), "message": error["msg"]}]
    base = _field_name(error["loc"])
    out = []
    for path, message in problems:
        inside = _INDEX.sub(r".\1", path).lstrip(".")
        out.append({"field": f"{base}.{inside}" if inside else base, "message": message})
    return out
