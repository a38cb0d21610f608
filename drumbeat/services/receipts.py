"""Provider callbacks applied: receipts, replies, accepted invitations, account health.

Idempotent by construction: receipts only move forward (domain.receipts), and a reply
or a failure only changes a lead that can still change. And by record: a status or an
inbound message that changed something is noted (provider_events, keyed by the
provider's ids) in the same transaction, so the same delivery again changes nothing.
A status naming an attempt still `sending` or `in_doubt` settles it (services.in_doubt).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, IntegrityError

from drumbeat.channels.base import Credential
from drumbeat.channels.inbound import (
    AcceptedEvent,
    AccountEvent,
    Event,
    QualityEvent,
    ReplyEvent,
    StatusEvent,
    TemplateStatusEvent,
    normalize_profile,
)
from drumbeat.domain.exceptions import NotFound
from drumbeat.domain.leads import AttemptStatus, LeadState
from drumbeat.domain.receipts import status_after_receipt
from drumbeat.services import consent, in_doubt, templates
from drumbeat.services.consent import AutoReply
from drumbeat.services.context import Actor, Context
from drumbeat.services.holds import hold_after_health_change
from drumbeat.services.suppressions import suppress_refused_address
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import in_doubt as in_doubt_store
from drumbeat.store import integrations as integration_store
from drumbeat.store import receipts as store
from drumbeat.store.leads import release_invitation_wait

CONSENT_CHANNELS = ("sms", "whatsapp")  # where a STOP reply is the carriers' and Meta's opt-out


@dataclass(frozen=True)
class CallbackIntegration:
    id: str
    provider: str
    channel: str
    credentials: dict
    workspace_id: str | None = None
    config: dict = field(default_factory=dict)

    def credential(self) -> Credential:
        return Credential(self.id, self.provider, self.channel, self.credentials, self.config)


def integration_for_callback(ctx: Context, integration_id: str, provider: str) -> CallbackIntegration:
    """The integration a callback URL names, with its secrets to check the signature."""
    with ctx.db.connect() as conn:
        row = store.get_integration(conn, integration_id) if len(integration_id) <= 64 else None
    if row is None or row["provider"] != provider:
        raise NotFound("integration not found", {"id": integration_id})
    return CallbackIntegration(row["id"], row["provider"], row["channel"], ctx.box.open(row["credentials_encrypted"]),
                               row["workspace_id"], row["config"] or {})


def apply_events(ctx: Context, integration: CallbackIntegration, events: list[Event],
                 auto_replies: list[AutoReply] | None = None) -> dict:
    """Apply each event in its own transaction; returns how many changed something. SMS
    answers the workspace set for what came in (STOP, HELP) are appended to `auto_replies`
    when a list is given, for the caller to send once the changes are committed."""
    changed = 0
    if any(isinstance(event, StatusEvent) for event in events):
        with ctx.db.begin() as conn:  # statuses arrive here: silence on this integration means something
            in_doubt_store.note_status_received(conn, integration.id, ctx.clock())
    for event in events:
        for tries in range(1, DEADLOCK_TRIES + 1):
            replies: list[AutoReply] = []
            try:
                changed += _apply_once(ctx, integration, event, replies if auto_replies is not None else None)
            except IntegrityError:
                break  # the same event applied meanwhile by a concurrent delivery: nothing changes
            except DBAPIError as exc:  # a deadlock victim (a status and lease recovery locking the same rows)
                if tries == DEADLOCK_TRIES or getattr(exc.orig, "pgcode", None) not in RETRIED_PGCODES:
                    raise
                continue
            if auto_replies is not None:
                auto_replies.extend(replies)
            break
    return {"events": len(events), "changed": changed}


DEADLOCK_TRIES = 3
RETRIED_PGCODES = ("40P01", "40001")  # deadlock detected, serialization failure


def event_key(event: Event) -> str | None:
    """The provider's identity of a status or an inbound message (None: not deduplicated)."""
    if isinstance(event, StatusEvent):
        text = f"status\x00{event.message_id}\x00{event.status}\x00{event.attempt_key or ''}"
    elif isinstance(event, ReplyEvent) and event.inbound_id:
        text = f"message\x00{event.inbound_id}"
    else:
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def _apply_once(ctx: Context, integration: CallbackIntegration, event: Event,
                auto_replies: list[AutoReply] | None) -> int:
    key = event_key(event)
    with ctx.db.begin() as conn:
        now = ctx.clock()
        if key is not None and in_doubt_store.seen(conn, integration.id, key):
            return 0
        if isinstance(event, StatusEvent):
            changed = _apply_status(conn, integration, event, now)
        elif isinstance(event, ReplyEvent):
            changed = _apply_reply(conn, integration, event, now, auto_replies)
        elif isinstance(event, AcceptedEvent):
            changed = _apply_acceptance(conn, integration, event, now)
        elif isinstance(event, AccountEvent):
            changed = _apply_account(conn, integration, event, now)
        elif isinstance(event, TemplateStatusEvent):
            changed = templates.apply_template_status(conn, integration.id, event, now)
        elif isinstance(event, QualityEvent):
            changed = templates.apply_quality(conn, integration.id, event, now)
        else:
            changed = 0
        # Noted only when it changed something: a status for a message not recorded yet may
        # apply when the provider delivers it again.
        if key is not None and changed:
            in_doubt_store.remember(conn, integration.id, key, now)
        return changed


def _apply_status(conn, integration: CallbackIntegration, event: StatusEvent, now) -> int:
    settled = in_doubt.settle_by_status(conn, integration.id, event, now)
    if settled is not None:
        return settled
    attempt = store.attempt_by_message(conn, integration.id, event.message_id)
    if attempt is None:
        return 0  # not ours, or not recorded yet: ignored (API.md)
    new = status_after_receipt(attempt["status"], event.status)
    if new is None:
        return 0
    store.set_attempt_status(conn, attempt["id"], new, now, error_code=event.error_code,
                             error_message=event.error_message)
    if new is AttemptStatus.FAILED:
        failed = store.end_lead(conn, [attempt["lead_id"]], LeadState.FAILED, store.UNFINISHED, now,
                                last_error=event.error_code or "failed receipt")
        if event.hard_bounce and integration.workspace_id:  # the address is gone: never write to it again
            lead = store.lead_address(conn, attempt["lead_id"])
            suppress_refused_address(conn, workspace_id=integration.workspace_id, campaign_id=attempt["campaign_id"],
                                     lead=lead, channel=integration.channel, opt_out=False, hard_bounce=True, now=now)
        if failed:
            campaign_store.add_timeline(conn, attempt["campaign_id"], now=now, action="lead_failed_by_receipt",
                                        actor_type="system", actor_id=integration.provider,
                                        details={"lead_id": str(attempt["lead_id"]), "error_code": event.error_code})
    return 1


def _apply_reply(conn, integration: CallbackIntegration, event: ReplyEvent, now,
                 auto_replies: list[AutoReply] | None = None) -> int:
    """A reply stops the sequence of every lead with that address this integration wrote to.
    An SMS or WhatsApp message that is an opt-out or opt-in word is consent, not a reply
    (services.consent): the number is suppressed, or a STOP's entry lifted."""
    if event.field == "phone" and integration.channel in CONSENT_CHANNELS and integration.workspace_id:
        kind = consent.apply_keyword(conn, integration.workspace_id, integration_id=integration.id,
                                     channel=integration.channel, phone=event.address, texts=event.texts, now=now)
        if auto_replies is not None and integration.channel == "sms":
            answer = consent.auto_reply(conn, integration.workspace_id, kind, event.address, event.texts)
            if answer:
                auto_replies.append(answer)
        if kind != "reply":
            return 1
    candidates = store.leads_contacted_through(conn, integration.id, event.field, event.address)
    if event.field == "linkedin_url":
        candidates = [(i, url) for i, url in candidates if normalize_profile(url) == event.address]
    return len(store.end_lead(conn, [i for i, _ in candidates], LeadState.REPLIED, store.REPLYABLE, now))


def _apply_acceptance(conn, integration: CallbackIntegration, event: AcceptedEvent, now) -> int:
    candidates = store.leads_contacted_through(conn, integration.id, "linkedin_url", event.profile,
                                               states=(LeadState.IN_PROGRESS,))
    ids = [i for i, url in candidates if normalize_profile(url) == event.profile]
    return release_invitation_wait(conn, ids, now)


def _apply_account(conn, integration: CallbackIntegration, event: AccountEvent, now) -> int:
    changed = integration_store.apply_health_event(conn, integration.id, event.event)
    if changed:
        hold_after_health_change(conn, integration.id, now, Actor.system(f"health:{event.event}"))
    return int(changed)
