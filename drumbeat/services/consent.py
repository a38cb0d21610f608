"""Consent read from inbound messages (API.md v1.1 Consent): a STOP suppresses the sender's
number workspace-wide through the one consent path (services.suppressions.suppress), a
START lifts only a STOP's entry. Every such message is kept as a consent event, even from
a number that is no lead."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Connection

from drumbeat.channels import registry
from drumbeat.channels.base import Credential
from drumbeat.domain.consent import Inbound, SuppressionReason, auto_reply_for, classify_texts
from drumbeat.domain.errors import SendResult
from drumbeat.domain.messages import OutboundMessage
from drumbeat.services.suppressions import lift_stop_keyword, suppress
from drumbeat.store import consent as store
from drumbeat.store import receipts as receipt_store
from drumbeat.store.workspaces import get_workspace

log = structlog.get_logger()


@dataclass(frozen=True)
class AutoReply:
    """An SMS answer due to an inbound message (the workspace's `auto_replies`)."""

    to: str
    text: str


def apply_keyword(conn: Connection, workspace_id: str, *, integration_id: str, channel: str, phone: str,
                  texts: tuple[str, ...], now: datetime) -> Inbound:
    """Read an inbound SMS or WhatsApp message for the workspace's opt-out and opt-in words
    and act on it in the caller's transaction. Returns what it was: "reply" changes nothing
    here (the caller marks the lead replied)."""
    workspace = get_workspace(conn, workspace_id)
    kind = classify_texts(texts, workspace["opt_out_words"], workspace["opt_in_words"])
    if kind == "reply":
        return kind
    lead = receipt_store.latest_lead_contacted_through(conn, integration_id, "phone", phone)
    store.insert_consent_event(conn, workspace_id, kind=kind, channel=channel, address=phone,
                               lead_id=lead["id"] if lead else None, integration_id=integration_id,
                               text=texts[0] if texts else None, at=now)
    try:
        if kind == "opt_out":
            source = {"channel": channel, **({"campaign_id": lead["campaign_id"], "lead_id": lead["id"]}
                                             if lead else {})}
            suppress(conn, workspace_id, phone=phone, reason=SuppressionReason.STOP_KEYWORD, source=source, now=now)
        else:
            lift_stop_keyword(conn, workspace_id, phone=phone, now=now)
    except ValueError:
        pass  # not a number a lead can have (a short code, say): nothing to suppress; the event is kept
    return kind


def auto_reply(conn: Connection, workspace_id: str, kind: Inbound, phone: str, texts: tuple[str, ...]
               ) -> AutoReply | None:
    """The answer the workspace set for this inbound SMS (a STOP, a HELP), if any."""
    text = auto_reply_for(get_workspace(conn, workspace_id)["auto_replies"], kind, texts)
    return AutoReply(phone, text) if text else None


async def send_auto_replies(credential: Credential, replies: list[AutoReply]) -> list[SendResult]:
    """Send each auto-reply through the integration that received the message, directly
    through its adapter: not a campaign send, so no attempt, counter, cap or detector is
    touched. A refusal is logged, never retried (the person's opt-out stands either way)."""
    results = []
    for reply in replies:
        message = OutboundMessage(channel=credential.channel, to=reply.to, body=reply.text,
                                  idempotency_key=f"auto-reply.{secrets.token_hex(8)}")
        result = await registry.once(credential.provider, lambda adapter, m=message: adapter.send(credential, m))
        if not result.accepted:
            log.warning("auto-reply refused", integration_id=credential.integration_id,
                        error_code=result.error_code)
        results.append(result)
    return results
