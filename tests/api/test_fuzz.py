"""Property-based fuzzing of every documented route (schemathesis over /openapi.json): no
input makes a route answer 500, and every answer is one the OpenAPI document declares —
status code, content type, headers and body schema (the error envelope included) — valid
input is accepted, invalid input refused, and no route works without the bearer token.
More examples: DRUMBEAT_FUZZ_EXAMPLES=200."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import schemathesis
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.core.parameters import ParameterLocation

from drumbeat.app import create_app
from drumbeat.services import campaigns, leads, notifications
from drumbeat.services.context import Context, Principal
from drumbeat.services.workspaces import init_workspace
from drumbeat.store.db import make_engine, migrate
from drumbeat.store.secrets import SecretBox
from tests.factory import campaign_data, sandbox_key

EXAMPLES = int(os.environ.get("DRUMBEAT_FUZZ_EXAMPLES", "8"))


def _fuzzed_app():
    """A real app on a throwaway SQLite database with one workspace owner and a few real
    objects, so that fuzzed ids sometimes name something and 2xx bodies get checked too."""
    engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp(prefix='drumbeat-fuzz-')) / 'fuzz.db'}")
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(Fernet.generate_key()))
    boot = init_workspace(ctx, "Fuzz", "owner@fuzz.example")
    owner = Principal(boot["user_id"], boot["workspace_id"], "owner")
    integration_id = sandbox_key(ctx, owner)
    campaign_id = campaigns.create_campaign(ctx, owner, campaign_data("Fuzzed"))["id"]
    imported = leads.import_json(ctx, owner, campaign_id, [{"phone": "+4915123456789", "first_name": "Ada"},
                                                           {"phone": "+4915123456788"}])
    assert imported["accepted"] == 2, imported
    lead_id = leads.list_leads(ctx, owner, campaign_id)["items"][0]["id"]
    webhook_id = notifications.create_webhook(ctx, owner, "https://hooks.example/x", "s3cret-s3cret",
                                              ["campaign.paused"])["id"]
    import_id = leads.import_csv(ctx, owner, campaign_id, [b"phone\n+4915123456787\nbad\n"])["import_id"]
    known = {"campaign_id": campaign_id, "lead_id": lead_id, "integration_id": integration_id,
             "webhook_id": webhook_id, "import_id": import_id}
    return create_app(ctx), boot["token"], known


APP, TOKEN, KNOWN_IDS = _fuzzed_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

# 422s for schema-valid input that the API documents and a JSON schema cannot express (or
# only at the cost of an unreadable document): (field, message) patterns and why. Any other
# 422 on valid input still fails.
SEMANTIC_RULES = [
    (r"cursor", r"invalid cursor"),  # cursors are opaque: one the server did not issue is invalid
    (r"start_at", r"must be in the future"),  # depends on the clock
    (r"failure_policy", r"min_samples may not exceed window"),  # one field against another
    (r"schedule", r"window_start and window_end must differ"),
    (r"steps\.\d+\.template", r"an email step needs template\.subject"),  # depends on the channel
    (r"steps\.\d+\.template\.body", r"is required \(only a WhatsApp template step"),  # so does body
    (r"steps\.\d+\.template\.html", r"belongs to an email step"),
    (r"steps\.\d+\.template\.body", r"SMS segments"),  # carriers' segments, not characters
    (r"steps\.\d+\.template\.components(\..*)?", r""),  # Meta's send shape (API.md, Message content)
    (r"provider", r"serves .*, not "),  # a provider serves its channels only (API.md, Integrations)
    (r"(credentials|config)\..*", r""),  # each provider's own keys (API.md, Integrations)
    (r"integration_ids", r"unknown integration ids"),  # must exist in the workspace
    (r"email", r"already exists"),  # one user per email
    (r"phone", r"give exactly one of phone or email"),  # suppressions: one address each
    (r"phone", r"international number|phone number"),  # a valid number is for the numbering plan to say
    (r"schedule\.timezone", r"not a known IANA time zone"),  # the tz database's ~600 names
    (r"body|header", r""),  # a CSV's content is beyond the schema's `string`
    (r".*", r"may not contain (NUL characters|unpaired surrogates)"),  # neither database stores them
    (r"to\.(phone|email|linkedin_url)", r""),  # test send: the step's channel says which, and it must be valid
    (r"step", r"the campaign has steps"),  # test send: one of the campaign's steps
    (r"provider", r"only whatsapp_cloud integrations have a template catalogue"),  # template sync: the id's provider
    (r"default_country", r"is not a country code"),  # CSV import: a region the numbering plans know
    (r"mapping(\..*)?", r""),  # CSV import: JSON naming the CSV's columns (API.md v1.1)
    (r"opt_(out|in)_words(\.\d+)?", r"must hold a word|cannot both opt out and opt in"),  # consent keywords
]


def _documented_refusal(response) -> bool:
    try:
        problems = response.json()["error"]["details"]["fields"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(problems) and all(
        any(re.fullmatch(field, p["field"], re.S) and re.search(message, p["message"])
            for field, message in SEMANTIC_RULES)
        for p in problems)


def accepts_valid_data(ctx, response, case):
    """positive_data_acceptance, except for the documented rules of SEMANTIC_RULES."""
    if response.status_code == 422 and _documented_refusal(response):
        return True
    return positive_data_acceptance(ctx, response, case)


def rejects_invalid_data(ctx, response, case):
    """negative_data_rejection, except for CSV bodies: the schema says `string`, and
    whatever schemathesis makes up as a non-string goes over the wire as text, which is a
    valid body (a CSV of one header line, say)."""
    if case.media_type == "text/csv":
        return True
    # Unknown query parameters are ignored (room for newer options), as most HTTP APIs do.
    if set(case.query or {}) - {p.name for p in case.operation.query}:
        return True
    # A bad lead in a batch is reported in `rejected`, not fatal to the batch (API.md).
    if response.status_code == 200 and case.operation.path.endswith("/leads") \
            and response.json().get("rejected_count"):
        return True
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    rejects_invalid_data,
    accepts_valid_data,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
    ignored_auth,
]
# Not used: use_after_free and ensure_resource_availability need stateful links between
# operations (this test calls one operation at a time); max_response_time would measure
# the shared CI machine; object_level_authorization needs a second identity configured
# (tests/api/test_access.py covers other workspaces' ids).


# Without the explicit phase: schemathesis cannot combine the documented examples with the
# extra strategy (`data`) drawn here; tests/api/test_api_reference.py checks the examples.
@schema.parametrize()
@schema.given(data=st.data())
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[phase for phase in Phase if phase is not Phase.explicit])
def test_every_answer_is_declared(case, data):
    # Now and then name a real object, so its routes answer 2xx, 409 ... and not only 404.
    if case.path_parameters and (case.meta is None or not case.meta.is_negative_at(ParameterLocation.PATH)) \
            and data.draw(st.booleans(), label="real ids"):
        case.path_parameters = {k: KNOWN_IDS.get(k, v) for k, v in case.path_parameters.items()}
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

