"""What providers tell us: webhook signatures and payloads, turned into plain events.

Each parser takes the provider's payload and returns a list of events; the services apply
them. Signatures are checked before any payload is read (constant-time comparisons).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class StatusEvent:
    """A delivery receipt for a message we sent."""

    message_id: str
    status: str  # sent | delivered | read | failed
    error_code: str | None = None
    error_message: str | None = None
    hard_bounce: bool = False  # email: the address does not exist (suppress it), not a full mailbox


@dataclass(frozen=True)
class ReplyEvent:
    """An inbound message from a lead: `field` names the lead address it matches. `texts`:
    what the person sent, read for consent keywords (STOP, START): a message's text, or a
    quick-reply button's text and payload. `text` is what the inbox shows (the message, the
    button's text, a media caption), `media` the provider's reference to an attachment
    ({"type", "id"|"url", "mime_type"?, "filename"?}), `inbound_id` the provider's id of
    this message (a webhook delivered twice is kept once)."""

    field: str  # phone | email | linkedin_url
    address: str
    message_id: str | None = None  # the message replied to, where the provider says
    texts: tuple[str, ...] = ()
    text: str | None = None
    media: dict | None = None
    inbound_id: str | None = None


@dataclass(frozen=True)
class AcceptedEvent:
    """A LinkedIn-style invitation was accepted."""

    profile: str


@dataclass(frozen=True)
class AccountEvent:
    """The provider's account changed health: an event of API.md's health endpoint."""

    event: str  # disconnected | reconnected | restricted | restriction_lifted


@dataclass(frozen=True)
class TemplateStatusEvent:
    """Meta's `message_template_status_update`: a template's new status (APPROVED, PAUSED,
    DISABLED, REJECTED, ...) in one language."""

    name: str
    language: str
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class QualityEvent:
    """Meta's `phone_number_quality_update`: the number was flagged, restricted or its
    messaging limit changed (`current_limit` a tier such as TIER_1K; `max_daily` the
    newer daily number)."""

    event: str
    current_limit: str | None = None
    max_daily: str | None = None
    display_phone_number: str | None = None


Event = StatusEvent | ReplyEvent | AcceptedEvent | AccountEvent | TemplateStatusEvent | QualityEvent


# --- signatures ----------------------------------------------------------------------

def _same(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.strip().encode())


def valid_sha256_signature(body: bytes, secret: str | None, header: str | None) -> bool:
    """`sha256=<hex HMAC-SHA256 of the raw body>` (Meta's X-Hub-Signature-256, our own header)."""
    if not secret:
        return False
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return _same(f"sha256={digest}", header)


def valid_twilio_signature(url: str, params: dict[str, str], auth_token: str | None, header: str | None) -> bool:
    """Twilio: base64 HMAC-SHA1 of the full URL followed by each POST parameter, sorted by
    name, as name+value, keyed with the account's auth token."""
    if not auth_token:
        return False
    payload = url + "".join(k + params[k] for k in sorted(params))
    digest = base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()
    return _same(digest, header)


def sign_sha256(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_twilio(url: str, params: dict[str, str], auth_token: str) -> str:
    payload = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


# --- payloads ------------------------------------------------------------------------

def _e164(digits: str) -> str:
    digits = str(digits).strip()
    return digits if digits.startswith("+") else "+" + digits


def whatsapp_events(payload: dict) -> list[Event]:
    """Meta's webhook: entry[].changes[].value with `statuses` (receipts) and `messages`
    (replies); the business account's fields `message_template_status_update` and
    `phone_number_quality_update` (a RESTRICTED number is also a `restricted` health event)."""
    events: list[Event] = []
    for entry in _list(payload.get("entry")):
        for change in _list(_dict(entry).get("changes")):
            value = _dict(_dict(change).get("value"))
            field = _dict(change).get("field")
            if field == "message_template_status_update":
                events += _template_status(value)
                continue
            if field == "phone_number_quality_update":
                events += _quality(value)
                continue
            for status in _list(value.get("statuses")):
                status = _dict(status)
                if status.get("id") and status.get("status") in ("sent", "delivered", "read", "failed"):
                    error = _dict((_list(status.get("errors")) or [{}])[0])
                    events.append(StatusEvent(
                        str(status["id"]), status["status"],
                        f"whatsapp:{error['code']}" if error.get("code") is not None else None,
                        error.get("message") or error.get("title")))
            for message in _list(value.get("messages")):
                message = _dict(message)
                if message.get("from") and message.get("type") != "system":
                    replied_to = _dict(message.get("context")).get("id")
                    texts = _whatsapp_texts(message)
                    media = _whatsapp_media(message)
                    shown = texts[0] if texts else (media or {}).get("caption")
                    events.append(ReplyEvent("phone", _e164(message["from"]), _text_or_none(replied_to), texts,
                                             text=shown, media=media, inbound_id=_text_or_none(message.get("id"))))
    return events


def _whatsapp_texts(message: dict) -> tuple[str, ...]:
    """A text message's body; a template's quick-reply button (`button`: text and payload);
    an interactive reply (`interactive`: the button's or list row's title and id)."""
    kind = message.get("type")
    if kind == "text":
        found = [_dict(message.get("text")).get("body")]
    elif kind == "button":
        button = _dict(message.get("button"))
        found = [button.get("text"), button.get("payload")]
    elif kind == "interactive":
        interactive = _dict(message.get("interactive"))
        reply = _dict(interactive.get("button_reply") or interactive.get("list_reply"))
        found = [reply.get("title"), reply.get("id")]
    else:
        found = []
    return tuple(t for t in found if isinstance(t, str) and t)


WHATSAPP_MEDIA = ("image", "audio", "video", "document", "sticker")


def _whatsapp_media(message: dict) -> dict | None:
    """The reference Meta gives to a media message (its media id, to download with the
    access token), with the caption and file name where there are."""
    kind = message.get("type")
    if kind not in WHATSAPP_MEDIA:
        return None
    body = _dict(message.get(kind))
    media = {"type": kind, **{k: str(body[k]) for k in ("id", "mime_type", "caption", "filename")
                              if isinstance(body.get(k), str | int) and body.get(k) != ""}}
    return media


def _text_or_none(value) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def _template_status(value: dict) -> list[Event]:
    name, language, status = (value.get(k) for k in ("message_template_name", "message_template_language", "event"))
    if not (isinstance(name, str) and isinstance(language, str) and isinstance(status, str) and name and language):
        return []
    reason = value.get("reason")
    return [TemplateStatusEvent(name, language, status.upper(), str(reason) if reason is not None else None)]


def _quality(value: dict) -> list[Event]:
    event = value.get("event")
    if not isinstance(event, str) or not event:
        return []
    max_daily = value.get("max_daily_conversations_per_business", value.get("max_daily_conversation_per_phone"))
    current = value.get("current_limit")
    phone = value.get("display_phone_number")
    events: list[Event] = [QualityEvent(event.upper(), str(current) if current is not None else None,
                                        str(max_daily) if max_daily is not None else None,
                                        str(phone) if phone is not None else None)]
    if event.upper() == "RESTRICTED":
        events.append(AccountEvent("restricted"))
    return events


TWILIO_STATUS = {
    # messages
    "queued": "sent", "sending": "sent", "sent": "sent", "delivered": "delivered", "read": "read",
    "undelivered": "failed", "failed": "failed",
    # calls
    "initiated": "sent", "ringing": "sent", "in-progress": "delivered", "completed": "delivered",
    "busy": "failed", "no-answer": "failed", "canceled": "failed",
}


def twilio_events(form: dict[str, str]) -> list[Event]:
    """A status callback (MessageSid + MessageStatus, or CallSid + CallStatus) or an inbound message."""
    sid = form.get("MessageSid") or form.get("SmsSid") or form.get("CallSid")
    status = form.get("MessageStatus") or form.get("CallStatus") or form.get("SmsStatus")
    if status == "received" or (status is None and form.get("Body") is not None):
        texts = (form["Body"],) if form.get("Body") else ()
        media = ({"type": form.get("MediaContentType0") or "media", "url": form["MediaUrl0"]}
                 if form.get("MediaUrl0") else None)
        return [ReplyEvent("phone", _e164(form["From"]), texts=texts, text=form.get("Body") or None, media=media,
                           inbound_id=sid or None)] if form.get("From") else []
    if sid and status in TWILIO_STATUS:
        code = form.get("ErrorCode")
        return [StatusEvent(sid, TWILIO_STATUS[status], f"twilio:{code}" if code else None, form.get("ErrorMessage"))]
    return []


UNIPILE_ACCOUNT = {
    "OK": "reconnected", "RECONNECTED": "reconnected", "CREATION_SUCCESS": "reconnected",
    "SYNC_SUCCESS": "reconnected", "CREDENTIALS": "disconnected", "ERROR": "disconnected",
    "STOPPED": "disconnected", "DISCONNECTED": "disconnected", "RESTRICTED": "restricted",
}


def unipile_events(payload: dict) -> list[Event]:
    """Account status ({"AccountStatus": {"message"}}), new relation (invitation accepted)
    and new message events."""
    if "AccountStatus" in payload:
        event = UNIPILE_ACCOUNT.get(str(_dict(payload["AccountStatus"]).get("message", "")).upper())
        return [AccountEvent(event)] if event else []
    kind = payload.get("event")
    if kind == "new_relation":
        profile = payload.get("user_profile_url") or payload.get("user_public_identifier")
        return [AcceptedEvent(normalize_profile(profile))] if profile else []
    if kind in ("message_received", "new_message"):
        sender = _dict(payload.get("sender"))
        profile = sender.get("attendee_profile_url") or payload.get("sender_profile_url")
        if profile and not payload.get("is_sender"):
            text = payload.get("message") if isinstance(payload.get("message"), str) else None
            return [ReplyEvent("linkedin_url", normalize_profile(profile), text=text or None,
                               inbound_id=_text_or_none(payload.get("message_id")))]
    return []


def email_events(payload: dict) -> list[Event]:
    """From an inbound-mail service: {"type": "reply"|"bounce", "message_id"?, "from"?};
    a bounce's `"kind": "hard"|"soft"` (API.md v1.1) says whether the address is gone."""
    kind, message_id, sender = payload.get("type"), payload.get("message_id"), payload.get("from")
    if kind == "reply" and (sender or message_id):
        text = next((payload[k] for k in ("text", "body") if isinstance(payload.get(k), str) and payload[k]), None)
        return [ReplyEvent("email", str(sender or "").strip().lower(), message_id, text=text,
                           inbound_id=_text_or_none(payload.get("id") or payload.get("inbound_id")))]
    if kind == "bounce" and message_id:
        reason = payload.get("reason")
        return [StatusEvent(str(message_id), "failed", "email:bounce", str(reason) if reason is not None else None,
                            hard_bounce=payload.get("kind") == "hard")]
    return []


def normalize_profile(url: str) -> str:
    """Profile URLs compare without scheme case, `www.` or a trailing slash."""
    text = str(url).strip().lower().rstrip("/")
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    return text.removeprefix("www.")


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []
