"""How the adapters classify provider answers (DESIGN.md §3), drawn once.

    one send
    ├── answered 2xx / 250 ........................ accepted: SendResult(provider_message_id)
    ├── answered with a refusal
    │   ├── key        the credential or the sender cannot send: auth failed, token expired
    │   │              or revoked, account locked/suspended/restricted, billing, a sender
    │   │              that is not ours, a trial/test sender, an exhausted quota
    │   │              -> mark the key failed for this run; the lead is not charged
    │   ├── rate       a throttle that passes by itself (Retry-After honoured)
    │   │              -> retry later; nothing failed
    │   ├── transient  the provider is down or said "retry" (5xx, "unknown error")
    │   │              -> retry with backoff, then fail the lead
    │   ├── lead       this recipient cannot be reached: invalid number, not on WhatsApp,
    │   │              opted out, mailbox unknown, profile unreachable
    │   │              -> fail (or opt out) this lead only
    │   └── campaign   the step itself is wrong: template missing, paused, disabled or its
    │                  parameters do not match; a free-form message where only a template
    │                  may go -> stop the channel until a person edits the template
    └── no answer: timeout, connection refused/reset, TLS or protocol failure
                   -> transient, code "<provider>:timeout" or "<provider>:connection"

Codes are provider-qualified: the provider's own code when its answer carries one
(`whatsapp:131026`, `twilio:21211`, `smtp:550`, `unipile:disconnected_account`), else the
HTTP status (`whatsapp:http_502`). Messages are the provider's own text, with any secret
of the credential masked, never ours to invent.

Order of classification: (1) the provider's code in that provider's table below;
(2) a rule that needs the answer's context, documented where it is used (a WhatsApp
invalid parameter that names the recipient is lead-level; an SMTP refusal of MAIL FROM is
the sender's, so key-level); (3) the HTTP status (`HTTP_STATUS`): 401/402/403 key, 429
rate; (4) anything else — 5xx, and 4xx answers we do not recognise — is transient.

Why an unknown 4xx is transient, not lead or campaign: a code we have not classified says
nothing reliable about the recipient or the template. Calling it lead-level would fail a
person for our ignorance; campaign-level would stop a whole channel on one odd answer.
Transient retries a bounded number of times and then fails the lead, and those failures
count in the failure-rate window, so a code that keeps coming back still stops the channel
(`high_failure_rate`) with the code visible in the campaign's error list — where a person
can add it to a table here.

Where a refusal is about a step's content we chose campaign over lead even if a single
recipient triggered it (WhatsApp 131047 "re-engagement message": a free-form text outside
the 24-hour window, which is every cold lead): holding the channel costs nothing, failing
lead after lead burns them.

No provider used here deduplicates a repeated send by an idempotency key (the WhatsApp
Cloud API, Twilio's Messages/Calls create, SMTP, Unipile document none), so every adapter
has `dedupes_by_idempotency_key = False` and a send cut off by a crash leaves the lead
`in_doubt`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from drumbeat.domain.errors import ErrorClass, SendResult
from drumbeat.domain.key_checks import MarkKind, ProbeOutcome

KEY, RATE, TRANSIENT, LEAD, CAMPAIGN = (ErrorClass.KEY, ErrorClass.RATE, ErrorClass.TRANSIENT,
                                        ErrorClass.LEAD, ErrorClass.CAMPAIGN)

# --- WhatsApp Cloud API (Graph API error.code) ------------------------------------------
# Meta, "WhatsApp Cloud API error codes" (developers.facebook.com/documentation/
# business-messaging/whatsapp/support/error-codes) and Graph API error handling.
WHATSAPP: dict[str, ErrorClass] = {
    # authorization, permissions, the business account and its number
    "whatsapp:0": KEY,        # AuthException: token expired/invalidated
    "whatsapp:3": KEY,        # API method: capability or permission missing
    "whatsapp:10": KEY,       # permission denied / revoked
    "whatsapp:190": KEY,      # access token expired or invalid
    **{f"whatsapp:{code}": KEY for code in range(200, 300)},  # API permission
    "whatsapp:33": KEY,       # the business phone number was deleted
    "whatsapp:368": KEY,      # temporarily blocked for policy violations
    "whatsapp:803": KEY,      # the phone number ID does not exist
    "whatsapp:131030": KEY,   # recipient not in the allowed list: a test number cannot do outreach
    "whatsapp:131031": KEY,   # business account locked
    "whatsapp:131037": KEY,   # the number's display name needs approval
    "whatsapp:131042": KEY,   # business eligibility / payment issue
    "whatsapp:131045": KEY,   # incorrect certificate (number not registered properly)
    "whatsapp:131048": KEY,   # spam rate limit: the number is restricted for its quality
    "whatsapp:133010": KEY,   # phone number not registered on the Cloud API
    # throttles
    "whatsapp:4": RATE,       # application request limit
    "whatsapp:17": RATE,      # user request limit
    "whatsapp:32": RATE,      # page-level throttling
    "whatsapp:613": RATE,     # calls to this API exceeded the rate limit
    "whatsapp:80007": RATE,   # WABA rate limit
    "whatsapp:130429": RATE,  # Cloud API throughput reached
    "whatsapp:131056": RATE,  # too many messages to the same recipient in a short time
    # the provider is unwell
    "whatsapp:1": TRANSIENT,       # API unknown
    "whatsapp:2": TRANSIENT,       # API service: temporary downtime or overload
    "whatsapp:131000": TRANSIENT,  # something went wrong
    "whatsapp:131016": TRANSIENT,  # service unavailable
    "whatsapp:131057": TRANSIENT,  # account in maintenance mode (throughput upgrade)
    "whatsapp:133004": TRANSIENT,  # server temporarily unavailable
    # this recipient
    "whatsapp:131026": LEAD,  # message undeliverable: not on WhatsApp, old app, ToS not accepted
    "whatsapp:131021": LEAD,  # recipient is the sender
    "whatsapp:131049": LEAD,  # Meta chose not to deliver (per-user marketing limit)
    "whatsapp:131050": LEAD,  # the user stopped marketing messages from this business
    "whatsapp:130472": LEAD,  # the user's number is part of a Meta experiment
    "whatsapp:130497": LEAD,  # the business may not message users in this country
    # the step (template / message) itself
    "whatsapp:100": CAMPAIGN,     # invalid parameter (see whatsapp_parameter_class)
    "whatsapp:131008": CAMPAIGN,  # required parameter missing (idem)
    "whatsapp:131009": CAMPAIGN,  # parameter value not valid (idem)
    "whatsapp:131047": CAMPAIGN,  # re-engagement: free-form text outside the 24h window
    "whatsapp:131051": CAMPAIGN,  # unsupported message type
    "whatsapp:132000": CAMPAIGN,  # template parameter count mismatch
    "whatsapp:132001": CAMPAIGN,  # template does not exist (name or language)
    "whatsapp:132005": CAMPAIGN,  # translated text too long
    "whatsapp:132007": CAMPAIGN,  # template format character policy violated
    "whatsapp:132012": CAMPAIGN,  # template parameter format mismatch
    "whatsapp:132015": CAMPAIGN,  # template paused for low quality
    "whatsapp:132016": CAMPAIGN,  # template disabled
    "whatsapp:132068": CAMPAIGN,  # flow is blocked
}

# An invalid-parameter answer (100, 131008, 131009) is the recipient's fault when its text
# names the recipient ("'to'", "recipient"); subcode 33 on code 100 means the phone number
# ID in the path does not exist or the token may not use it (the integration's config).
WHATSAPP_PARAMETER_CODES = frozenset({"whatsapp:100", "whatsapp:131008", "whatsapp:131009"})
_ABOUT_RECIPIENT = re.compile(r"\brecipient\b|['\"]to['\"]|\bparam(?:eter)?\s+to\b|\bto\s+param", re.I)


def whatsapp_parameter_class(code: str, subcode: int | None, text: str) -> ErrorClass:
    if code == "whatsapp:100" and subcode == 33:
        return KEY
    if _ABOUT_RECIPIENT.search(text or ""):
        return LEAD
    return WHATSAPP[code]


# --- Twilio REST API 2010-04-01 (body "code") -------------------------------------------
# twilio.com/docs/api/errors/<code>. 30xxx codes are delivery statuses of a message already
# accepted (status callbacks), never answers to the create call.
TWILIO: dict[str, ErrorClass] = {
    # the account, its credentials, the sender
    "twilio:20003": KEY,   # authentication failed
    "twilio:20005": KEY,   # account not active (no funds, trial not activated)
    "twilio:20008": KEY,   # test credentials cannot use this resource
    "twilio:20404": KEY,   # the account in the path does not exist
    "twilio:10001": KEY,   # account is not active (suspended)
    "twilio:10002": KEY,   # a trial account does not support this
    "twilio:21210": KEY,   # caller ID ('From') not verified
    "twilio:21212": KEY,   # invalid 'From' number
    "twilio:21219": KEY,   # trial: 'To' not verified (a trial sender cannot do outreach)
    "twilio:21601": KEY,   # 'From' is not an SMS-capable number of the account
    "twilio:21603": KEY,   # 'From' is required (the integration lacks config.from)
    "twilio:21606": KEY,   # 'From' is not a valid SMS-capable number of this account
    "twilio:21608": KEY,   # trial: 'To' not verified
    "twilio:21660": KEY,   # 'From' does not belong to the account
    # throttles
    "twilio:20429": RATE,  # too many requests
    "twilio:14107": RATE,  # SMS send rate limit between two numbers
    "twilio:21611": RATE,  # the 'From' queue is full (10 hours of messages)
    "twilio:63017": RATE,  # account-wide rate limit
    # the provider
    "twilio:20500": TRANSIENT,  # internal error
    "twilio:20503": TRANSIENT,  # service unavailable
    # this recipient
    "twilio:21211": LEAD,  # invalid 'To' number
    "twilio:21217": LEAD,  # 'To' does not appear to be valid (calls)
    "twilio:21214": LEAD,  # 'To' cannot be reached (calls)
    "twilio:21215": LEAD,  # geo permissions do not allow calling this number
    "twilio:21265": LEAD,  # 'To' cannot be a short code
    "twilio:21266": LEAD,  # 'To' and 'From' are the same
    "twilio:21408": LEAD,  # SMS not enabled for the region of 'To'
    "twilio:21610": LEAD,  # the recipient replied STOP (see OPT_OUT_CODES)
    "twilio:21612": LEAD,  # 'To' not reachable via SMS
    "twilio:21614": LEAD,  # 'To' is not a mobile number
    # the step
    "twilio:21602": CAMPAIGN,  # message body required (an empty template)
    "twilio:21617": CAMPAIGN,  # body exceeds 1600 characters
}

# --- SMTP reply codes -------------------------------------------------------------------
# RFC 5321 §4.2 and RFC 4954 (AUTH). At RCPT TO and DATA a permanent refusal is about the
# recipient; the same refusal at MAIL FROM is about our sender (SMTP_SENDER_REFUSED).
SMTP: dict[str, ErrorClass] = {
    "smtp:530": KEY,        # authentication required
    "smtp:534": KEY,        # authentication mechanism too weak
    "smtp:535": KEY,        # authentication credentials invalid
    "smtp:538": KEY,        # encryption required for the requested authentication
    "smtp:421": TRANSIENT,  # service not available, closing the channel
    "smtp:450": TRANSIENT,  # mailbox unavailable (busy, greylisting)
    "smtp:451": TRANSIENT,  # local error in processing
    "smtp:454": TRANSIENT,  # temporary authentication / TLS failure
    "smtp:452": RATE,       # insufficient storage / too many recipients for now
    "smtp:501": LEAD,       # syntax error in the address
    "smtp:550": LEAD,       # mailbox unavailable / unknown user
    "smtp:551": LEAD,       # user not local
    "smtp:552": LEAD,       # mailbox full (exceeded storage allocation)
    "smtp:553": LEAD,       # mailbox name not allowed
    "smtp:554": LEAD,       # transaction failed (recipient or content refused)
    "smtp:556": LEAD,       # the domain does not accept mail
}
SMTP_SENDER_REFUSED: dict[str, ErrorClass] = {  # the server refused MAIL FROM: our sender is unusable
    "smtp:501": KEY,
    "smtp:530": KEY,
    "smtp:535": KEY,
    "smtp:550": KEY,
    "smtp:551": KEY,
    "smtp:553": KEY,
    "smtp:554": KEY,
    "smtp:421": TRANSIENT,
    "smtp:451": TRANSIENT,
    "smtp:452": RATE,
}

# --- Unipile (LinkedIn), RFC 7807 body "type": "errors/<name>" ----------------------------
# Unipile API v1 reference (developer.unipile.com): the 401/403/422/429/5xx type enums.
UNIPILE: dict[str, ErrorClass] = {
    # the connected account or the API key (401/403)
    "unipile:missing_credentials": KEY,
    "unipile:invalid_credentials": KEY,
    "unipile:expired_credentials": KEY,
    "unipile:insufficient_privileges": KEY,
    "unipile:disconnected_account": KEY,   # see HEALTH_SIGNALS
    "unipile:disconnected_feature": KEY,
    "unipile:wrong_account": KEY,
    "unipile:multiple_sessions": KEY,
    "unipile:checkpoint_error": KEY,
    "unipile:captcha_not_supported": KEY,
    "unipile:account_restricted": KEY,     # see HEALTH_SIGNALS
    "unipile:account_mismatch": KEY,
    "unipile:insufficient_permissions": KEY,
    "unipile:session_mismatch": KEY,
    "unipile:feature_not_subscribed": KEY,
    "unipile:subscription_required": KEY,
    "unipile:unknown_authentication_context": KEY,
    "unipile:action_required": KEY,
    "unipile:invalid_account": KEY,
    "unipile:insufficient_credits": KEY,   # InMail credits exhausted: a quota
    "unipile:limit_exceeded": KEY,         # the account's invitation/message quota for now
    # throttles
    "unipile:too_many_requests": RATE,
    # the provider
    "unipile:unexpected_error": TRANSIENT,
    "unipile:provider_error": TRANSIENT,
    "unipile:provider_unreachable": TRANSIENT,
    "unipile:network_down": TRANSIENT,
    "unipile:service_unavailable": TRANSIENT,
    "unipile:no_client_session": TRANSIENT,
    "unipile:no_channel": TRANSIENT,
    "unipile:no_handler": TRANSIENT,
    "unipile:request_timeout": TRANSIENT,
    "unipile:realtime_client_not_initialized": TRANSIENT,
    # this recipient
    "unipile:invalid_recipient": LEAD,
    "unipile:resource_not_found": LEAD,    # the profile does not exist
    "unipile:no_connection_with_recipient": LEAD,
    "unipile:blocked_recipient": LEAD,
    "unipile:user_unreachable": LEAD,
    "unipile:recipient_rejected": LEAD,
    "unipile:not_allowed_inmail": LEAD,
    "unipile:cannot_invite_attendee": LEAD,
    "unipile:already_invited_recently": LEAD,
    "unipile:cannot_resend_yet": LEAD,
    "unipile:cannot_resend_within_24hrs": LEAD,
    "unipile:action_already_performed": LEAD,
    # the step
    "unipile:invalid_message": CAMPAIGN,
    "unipile:too_many_characters": CAMPAIGN,
}

# --- HTTP status, when the provider's code is missing or unknown -------------------------
HTTP_STATUS: dict[int, ErrorClass] = {
    401: KEY,   # unauthenticated
    402: KEY,   # payment required
    403: KEY,   # forbidden: the credential may not do this
    429: RATE,  # too many requests
}

TABLES: dict[str, Mapping[str, ErrorClass]] = {
    "whatsapp": WHATSAPP, "twilio": TWILIO, "smtp": SMTP, "unipile": UNIPILE,
}

# Lead-level codes that mean the person opted out (the engine may suppress the address).
OPT_OUT_CODES = frozenset({"twilio:21610", "whatsapp:131050"})

# Key-level codes that say something about the account's health (DESIGN.md §4): the engine
# may turn them into an integration health event.
HEALTH_SIGNALS: dict[str, str] = {
    "unipile:disconnected_account": "disconnected",
    "unipile:expired_credentials": "disconnected",
    "unipile:checkpoint_error": "disconnected",
    "unipile:action_required": "disconnected",
    "unipile:account_restricted": "restricted",
    "whatsapp:368": "restricted",
    "whatsapp:131031": "restricted",
    "twilio:10001": "restricted",
}


# Key-level codes that mean the credential itself was refused (authentication): a
# connection test that passes shows the key works again, so a resume may clear its mark
# (issue 21, domain.key_checks). Every other key-level code — billing, a locked,
# unverified or trial account, a sender that is not ours, an exhausted quota — is an
# account matter a passing read cannot rule out: such a mark waits for a person.
AUTH_KEY_CODES = frozenset({
    "whatsapp:0", "whatsapp:190",          # token expired, invalidated or wrong
    "twilio:20003",                        # authentication failed
    "smtp:530", "smtp:534", "smtp:535", "smtp:538",  # AUTH required / refused
    "unipile:missing_credentials", "unipile:invalid_credentials", "unipile:expired_credentials",
    "sandbox:key",                         # the simulator's scripted key failure
})
# Drumbeat's own codes for a credential or config the integration lacks (misconfigured):
# the probe reads with the very same config, so its passing answers them.
_CONFIG_SUFFIX = ":config"


def key_mark_kind(code: str | None) -> MarkKind:
    """Whether a key's failure mark came from an authentication error (a passing probe
    clears it) or a billing/account one (it waits for a person). Unknown: account."""
    if code and (code in AUTH_KEY_CODES or code.endswith(_CONFIG_SUFFIX) or code.endswith(":http_401")):
        return MarkKind.AUTH
    return MarkKind.ACCOUNT


def probe_outcome(result: SendResult) -> ProbeOutcome:
    """How a connection test ended: passed, refused, or no answer (no_answer's codes)."""
    if result.accepted:
        return ProbeOutcome.OK
    code = result.error_code or ""
    if code.endswith(":timeout"):
        return ProbeOutcome.TIMEOUT
    if code.endswith(":connection"):
        return ProbeOutcome.UNREACHABLE
    return ProbeOutcome.REFUSED

def http_status_class(status: int) -> ErrorClass:
    """The fallback: 401/402/403 key, 429 rate, everything else (5xx, unknown 4xx) transient."""
    return HTTP_STATUS.get(status, TRANSIENT)


def classify(code: str | None, status: int | None = None, table: Mapping[str, ErrorClass] | None = None
             ) -> ErrorClass:
    """The class of a provider-qualified code (its provider's table), else of the HTTP status."""
    if code:
        table = table if table is not None else TABLES.get(code.split(":", 1)[0], {})
        if code in table:
            return table[code]
    return http_status_class(status) if status is not None else TRANSIENT


# --- helpers every adapter uses ------------------------------------------------------------

MAX_MESSAGE = 500


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def mask(text: str | None, secrets: Iterable[object]) -> str | None:
    """The provider's text with any secret value masked, cut to a sane length."""
    if text is None:
        return None
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4:
            text = text.replace(secret, "****")
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def refused(code: str, error_class: ErrorClass, message: str | None, secrets: Iterable[object] = (),
            retry_after_seconds: float | None = None) -> SendResult:
    return SendResult(error_class=error_class, error_code=code, error_message=mask(message, secrets),
                      retry_after_seconds=retry_after_seconds, opt_out=code in OPT_OUT_CODES,
                      health_event=HEALTH_SIGNALS.get(code))


def no_answer(provider: str, exc: BaseException, secrets: Iterable[object] = ()) -> SendResult:
    """A send the provider never answered: transient, `<provider>:timeout` or `:connection`."""
    timed_out = isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__  # httpx's too
    what = "no answer in time" if timed_out else "could not reach the provider"
    detail = f"{type(exc).__name__}: {exc}" if str(exc).strip() else type(exc).__name__
    return refused(f"{provider}:{'timeout' if timed_out else 'connection'}", TRANSIENT, f"{what} ({detail})", secrets)


def misconfigured(provider: str, what: str) -> SendResult:
    """The integration lacks what a send needs: the key is unusable, the lead is not charged."""
    return SendResult(error_class=KEY, error_code=f"{provider}:config",
                      error_message=f"the integration is missing {what}")


def no_address(provider: str) -> SendResult:
    return SendResult(error_class=LEAD, error_code=f"{provider}:no_address",
                      error_message="the lead has no address for this channel")
