"""Every row of the classification tables, written out here a second time as the
specification (channels/errors.py is the implementation), plus the HTTP fallbacks and the
rules that need an answer's context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from drumbeat.channels import errors
from drumbeat.channels.errors import (
    HEALTH_SIGNALS,
    OPT_OUT_CODES,
    SMTP,
    SMTP_SENDER_REFUSED,
    TABLES,
    TWILIO,
    UNIPILE,
    WHATSAPP,
    classify,
    http_status_class,
    mask,
    retry_after,
    whatsapp_parameter_class,
)
from drumbeat.domain.errors import ErrorClass

KEY, RATE, TRANSIENT, LEAD, CAMPAIGN = (ErrorClass.KEY, ErrorClass.RATE, ErrorClass.TRANSIENT,
                                        ErrorClass.LEAD, ErrorClass.CAMPAIGN)


def rows(provider: str, spec: dict[ErrorClass, list]) -> list[tuple[str, ErrorClass]]:
    return [(f"{provider}:{code}", error_class) for error_class, codes in spec.items() for code in codes]


WHATSAPP_SPEC = rows("whatsapp", {
    KEY: [0, 3, 10, 190, *range(200, 300), 33, 368, 803, 131030, 131031, 131037, 131042, 131045, 131048,
          133010],
    RATE: [4, 17, 32, 613, 80007, 130429, 131056],
    TRANSIENT: [1, 2, 131000, 131016, 131057, 133004],
    LEAD: [131026, 131021, 131049, 131050, 130472, 130497],
    CAMPAIGN: [100, 131008, 131009, 131047, 131051, 132000, 132001, 132005, 132007, 132012, 132015, 132016,
               132068],
})
TWILIO_SPEC = rows("twilio", {
    KEY: [20003, 20005, 20008, 20404, 10001, 10002, 21210, 21212, 21219, 21601, 21603, 21606, 21608, 21660],
    RATE: [20429, 14107, 21611, 63017],
    TRANSIENT: [20500, 20503],
    LEAD: [21211, 21217, 21214, 21215, 21265, 21266, 21408, 21610, 21612, 21614],
    CAMPAIGN: [21602, 21617],
})
SMTP_SPEC = rows("smtp", {
    KEY: [530, 534, 535, 538],
    TRANSIENT: [421, 450, 451, 454],
    RATE: [452],
    LEAD: [501, 550, 551, 552, 553, 554, 556],
})
SMTP_SENDER_SPEC = rows("smtp", {
    KEY: [501, 530, 535, 550, 551, 553, 554],
    TRANSIENT: [421, 451],
    RATE: [452],
})
UNIPILE_SPEC = rows("unipile", {
    KEY: ["missing_credentials", "invalid_credentials", "expired_credentials", "insufficient_privileges",
          "disconnected_account", "disconnected_feature", "wrong_account", "multiple_sessions", "checkpoint_error",
          "captcha_not_supported", "account_restricted", "account_mismatch", "insufficient_permissions",
          "session_mismatch", "feature_not_subscribed", "subscription_required", "unknown_authentication_context",
          "action_required", "invalid_account", "insufficient_credits", "limit_exceeded"],
    RATE: ["too_many_requests"],
    TRANSIENT: ["unexpected_error", "provider_error", "provider_unreachable", "network_down", "service_unavailable",
                "no_client_session", "no_channel", "no_handler", "request_timeout",
                "realtime_client_not_initialized"],
    LEAD: ["invalid_recipient", "resource_not_found", "no_connection_with_recipient", "blocked_recipient",
           "user_unreachable", "recipient_rejected", "not_allowed_inmail", "cannot_invite_attendee",
           "already_invited_recently", "cannot_resend_yet", "cannot_resend_within_24hrs",
           "action_already_performed"],
    CAMPAIGN: ["invalid_message", "too_many_characters"],
})


@pytest.mark.parametrize(("code", "expected"), WHATSAPP_SPEC)
def test_whatsapp_codes_are_classified_as_documented(code, expected):
    assert classify(code, 400) is expected
    assert WHATSAPP[code] is expected


@pytest.mark.parametrize(("code", "expected"), TWILIO_SPEC)
def test_twilio_codes_are_classified_as_documented(code, expected):
    assert classify(code, 400) is expected
    assert TWILIO[code] is expected


@pytest.mark.parametrize(("code", "expected"), SMTP_SPEC)
def test_smtp_replies_to_rcpt_and_data_are_classified_as_documented(code, expected):
    assert classify(code) is expected
    assert SMTP[code] is expected


@pytest.mark.parametrize(("code", "expected"), SMTP_SENDER_SPEC)
def test_smtp_replies_refusing_mail_from_are_the_senders_problem(code, expected):
    assert classify(code, table=SMTP_SENDER_REFUSED) is expected


@pytest.mark.parametrize(("code", "expected"), UNIPILE_SPEC)
def test_unipile_error_types_are_classified_as_documented(code, expected):
    assert classify(code, 422) is expected
    assert UNIPILE[code] is expected


@pytest.mark.parametrize(("table", "spec"), [(WHATSAPP, WHATSAPP_SPEC), (TWILIO, TWILIO_SPEC), (SMTP, SMTP_SPEC),
                                             (SMTP_SENDER_REFUSED, SMTP_SENDER_SPEC), (UNIPILE, UNIPILE_SPEC)],
                         ids=["whatsapp", "twilio", "smtp", "smtp-sender", "unipile"])
def test_no_table_holds_a_row_this_specification_does_not_list(table, spec):
    assert dict(table) == dict(spec)


def test_every_code_is_qualified_by_its_own_provider():
    for provider, table in TABLES.items():
        assert all(code.startswith(provider + ":") for code in table), provider


@pytest.mark.parametrize(("status", "expected"), [
    (401, KEY), (402, KEY), (403, KEY), (429, RATE),
    (500, TRANSIENT), (502, TRANSIENT), (503, TRANSIENT), (504, TRANSIENT),
    (400, TRANSIENT), (404, TRANSIENT), (409, TRANSIENT), (422, TRANSIENT),  # unknown 4xx: transient
])
def test_without_a_known_code_the_http_status_decides(status, expected):
    assert http_status_class(status) is expected
    assert classify(None, status) is expected
    assert classify("whatsapp:999999", status) is expected
    assert classify("unipile:something_new", status) is expected


def test_a_known_code_wins_over_the_http_status():
    assert classify("whatsapp:4", 400) is RATE
    assert classify("whatsapp:131026", 500) is LEAD
    assert classify("twilio:21211", 401) is LEAD


def test_nothing_known_at_all_is_transient():
    assert classify(None) is TRANSIENT
    assert classify("nobody:1") is TRANSIENT


@pytest.mark.parametrize(("code", "subcode", "text", "expected"), [
    ("whatsapp:100", None, "(#100) Invalid parameter", CAMPAIGN),
    ("whatsapp:100", None, "(#100) Invalid parameter 'to'", LEAD),
    ("whatsapp:100", None, "(#100) Param to must be a phone number", LEAD),
    ("whatsapp:100", 33, "Unsupported post request. Object with ID '123' does not exist", KEY),
    ("whatsapp:131009", None, "Parameter value is not valid (Recipient phone number is invalid)", LEAD),
    ("whatsapp:131009", None, "Parameter value is not valid (language code en_XX)", CAMPAIGN),
    ("whatsapp:131008", None, "Required parameter is missing (template name)", CAMPAIGN),
    ("whatsapp:131008", None, "Required parameter is missing: \"to\"", LEAD),
])
def test_an_invalid_parameter_naming_the_recipient_is_lead_level(code, subcode, text, expected):
    assert whatsapp_parameter_class(code, subcode, text) is expected


def test_opt_outs_and_health_signals_name_classified_codes():
    assert OPT_OUT_CODES == {"twilio:21610", "whatsapp:131050"}
    assert all(classify(code) is LEAD for code in OPT_OUT_CODES)
    assert HEALTH_SIGNALS["unipile:disconnected_account"] == "disconnected"
    assert HEALTH_SIGNALS["unipile:account_restricted"] == "restricted"
    assert all(classify(code) is KEY for code in HEALTH_SIGNALS)
    assert set(HEALTH_SIGNALS.values()) <= {"disconnected", "restricted"}


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after": "0.5"}) == 0.5
    assert retry_after({"retry-after": format_datetime(now + timedelta(seconds=90), usegmt=True)}, now) == 90.0
    assert retry_after({"retry-after": format_datetime(now - timedelta(seconds=90), usegmt=True)}, now) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_mask_hides_every_secret_and_keeps_messages_short():
    assert mask("token EAAB-secret-123 rejected", ["EAAB-secret-123"]) == "token **** rejected"
    assert mask("nothing secret", ["abc", None, 12345]) == "nothing secret"  # short or non-string: untouched
    assert len(mask("x" * 5000, [])) == errors.MAX_MESSAGE
    assert mask(None, ["s3cret"]) is None
