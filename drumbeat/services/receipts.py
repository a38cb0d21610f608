"""Provider callbacks applied: receipts, replies, accepted invitations, account health.

Idempotent by construction: receipts only move forward (domain.receipts), and a reply
or a failure only changes a lead that can still change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
from drumbeat.services import consent, replies, templates
from drumbeat.services.consent import AutoReply
from drumbeat.services.context import Actor, Context
from drumbeat.services.holds import hold_after_health_change
from drumbeat.services.suppressions import suppress_refused_address
from drumbeat.store import campaigns as campaign_store
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
    for event in events:
        with ctx.db.begin() as conn:
            now = ctx.clock()
            if isinstance(event, StatusEvent):
                changed += _apply_status(conn, integration, event, now)
            elif isinstance(event, ReplyEvent):
                changed += _apply_reply(conn, integration, event, now, auto_replies)
            elif isinstance(event, AcceptedEvent):
                changed += _apply_acceptance(conn, integration, event, now)
            elif isinstance(event, AccountEvent):
                changed += _apply_account(conn, integration, event, now)
            elif isinstance(event, TemplateStatusEvent):
                changed += templates.apply_template_status(conn, integration.id, event, now)
            elif isinstance(event, QualityEvent):
                changed += templates.apply_quality(conn, integration.id, event, now)
    return {"events": len(events), "changed": changed}


def _apply_status(conn, integration: CallbackIntegration, event: StatusEvent, now) -> int:
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
    """A reply stops the sequence of every lead with that address this integration wrote to
    (and of the lead whose message it quotes). An SMS or WhatsApp message that is an
    opt-out or opt-in word is consent, not a reply (services.consent): the number is
    suppressed, or a STOP's entry lifted. Either way the message is kept (services.replies),
    flagged with what it was; a webhook delivered again changes nothing the second time."""
    kind = "reply"
    if event.field == "phone" and integration.channel in CONSENT_CHANNELS and integration.workspace_id:
        kind = consent.apply_keyword(conn, integration.workspace_id, integration_id=integration.id,
                                     channel=integration.channel, phone=event.address, texts=event.texts, now=now)
        if auto_replies is not None and integration.channel == "sms":
            answer = consent.auto_reply(conn, integration.workspace_id, kind, event.address, event.texts)
            if answer:
                auto_replies.append(answer)
    kept = replies.record_inbound(conn, workspace_id=integration.workspace_id, integration_id=integration.id,
                                  channel=integration.channel, event=event, kind=kind, now=now)
    if kind != "reply":
        return 1
    candidates = store.leads_contacted_through(conn, integration.id, event.field, event.address)
    if event.field == "linkedin_url":
        candidates = [(i, url) for i, url in candidates if normalize_profile(url) == event.address]
    lead_ids = {i for i, _ in candidates} | ({kept["lead_id"]} if kept else set())
    return len(store.end_lead(conn, sorted(lead_ids), LeadState.REPLIED, store.REPLYABLE, now))


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
