"""What a campaign's steps make for one lead: shown (preview) and sent to the operator (test send).

Both render through domain.messages.compose, the function the worker sends with, so the
preview is exactly what the lead gets, and a test send is exactly what the lead would get.
A campaign without leads renders with empty lead fields: fallbacks apply and `missing`
names the variables that have none. The preview shows the lead's own unsubscribe link; a
test send carries one that unsubscribes nobody (domain.unsubscribe.NO_LEAD), since it
lands in the operator's inbox; so does a preview without a lead.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from drumbeat.channels import registry, whatsapp
from drumbeat.domain import variants
from drumbeat.domain.channels import ADDRESS_FIELD, Channel
from drumbeat.domain.errors import ErrorClass, SendResult
from drumbeat.domain.exceptions import InvalidTransition, NotFound, RateLimited, ResumeBlocked, ValidationFailed
from drumbeat.domain.gates import evaluate_gates
from drumbeat.domain.lifecycle import TERMINAL_STATUSES, Status
from drumbeat.domain.messages import Composition, OutboundMessage, compose
from drumbeat.services.campaigns import _load as load_campaign
from drumbeat.services.context import Context, Principal
from drumbeat.services.holds import pool_member
from drumbeat.services.integrations import credential_of
from drumbeat.services.leads import _lead_id, check_linkedin_url, normalize_email, normalize_phone
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import content as store
from drumbeat.store import integrations as integration_store
from drumbeat.store import leads as lead_store
from drumbeat.store.workspaces import get_workspace

# Test sends go to any number the operator types: a cap keeps a stolen or careless token
# from pumping SMS to premium numbers (counted in the database: it holds across processes).
MAX_TEST_SENDS = 10
TEST_SEND_WINDOW = timedelta(seconds=60)
_NORMALIZE = {"phone": normalize_phone, "email": normalize_email, "linkedin_url": check_linkedin_url}


# --- preview ------------------------------------------------------------------------------

def preview(ctx: Context, principal: Principal, campaign_id: str, lead_id: str | None = None,
            variant: int | None = None) -> dict:
    """Every step rendered for one lead of the campaign (`lead_id`, else its first lead,
    else empty lead fields). A step with variants renders the lead's own variant, or
    `variant` where given (a step without variants ignores it)."""
    with ctx.db.begin() as conn:
        load_campaign(conn, principal, campaign_id)
        steps = campaign_store.get_steps(conn, campaign_id)
        lead = _lead(conn, campaign_id, lead_id)
    if variant is not None and not any(variant < len(s.get("variants") or []) for s in steps):
        raise ValidationFailed([{"field": "variant", "message": "no step of the campaign has that variant"}])
    url = unsubscribe_url(ctx, principal.workspace_id, lead["id"] if lead else None)
    out = []
    for i, step in enumerate(steps):
        chosen = _variant(step, i, lead, variant if variant is not None and variant < len(step.get("variants") or [])
                          else None)
        out.append({**_step_preview(i, step, compose(step, lead or {}, unsubscribe_url=url, variant=chosen)),
                    "variant": chosen})
    return {"lead_id": str(lead["id"]) if lead else None, "steps": out}


def _variant(step: dict, position: int, lead: dict | None, chosen: int | None) -> int | None:
    """The variant to render: the one chosen, else the lead's own (the first without a lead)."""
    if not variants.has_variants(step):
        return None
    if chosen is not None:
        return chosen
    return variants.variant_of(step, position, lead["id"] if lead else None)


def unsubscribe_url(ctx: Context, workspace_id: str, lead_id: int | None) -> str | None:
    """The lead's link as the worker would put it in a message today; without a lead, a
    test link that unsubscribes nobody; None without DRUMBEAT_PUBLIC_URL."""
    links = ctx.unsubscribe_links()
    if links is None:
        return None
    today = ctx.clock().astimezone(UTC).date()
    return links.url(workspace_id, lead_id, today) if lead_id is not None else links.test_url(today)


def _lead(conn: Connection, campaign_id: str, lead_id: str | None) -> dict | None:
    if lead_id is None:
        first = lead_store.list_leads(conn, campaign_id, states=None, q=None, after_id=None, limit=1)
        return first[0] if first else None
    lead = lead_store.get_lead(conn, campaign_id, _lead_id(lead_id))
    if lead is None:  # another campaign's or workspace's lead is unknown here
        raise NotFound("lead not found", {"id": lead_id})
    return lead


def _step_preview(index: int, step: dict, composition: Composition) -> dict:
    size, problem = composition.sms, composition.problem
    return {"step": index, "channel": step["channel"], "rendered": rendered(composition.message),
            "missing": composition.missing,
            "sms": {"encoding": size.encoding, "segments": size.segments, "units": size.units} if size else None,
            "problem": {"code": problem[0], "message": problem[1]} if problem else None}


def rendered(message: OutboundMessage) -> dict:
    """What the provider gets, per channel (WhatsApp: the exact request body the adapter sends)."""
    channel = Channel(message.channel)
    if channel is Channel.WHATSAPP:
        return {"payload": whatsapp.payload(message)}
    if channel is Channel.EMAIL:
        return {"subject": message.subject, "text": message.body, "html": message.html}
    if channel is Channel.LINKEDIN:
        return {"action": message.template.get("action") or "message", "text": message.body}
    return {"text": message.body}


# --- test send ----------------------------------------------------------------------------

def send_test(ctx: Context, principal: Principal, campaign_id: str, *, step: int, to: dict,
              lead_id: str | None = None, variant: int | None = None) -> dict:
    """Send one rendered step (for `lead_id`, else the first lead, else empty lead fields)
    to the operator's own address now, through the campaign's first usable key on the
    step's channel and its real adapter, and answer the provider's verdict.

    Nothing about leads, attempts, counters, caps, detectors, keys or holds changes: a key
    error is reported, not recorded against the key; only the timeline gets a `test_send`
    entry (which is also the rate limit: MAX_TEST_SENDS a minute per workspace). A message
    the worker would refuse for its content (a variable without value or fallback, too
    long) answers `failed` with that lead-level error and the provider is not called:
    the request itself is valid, and the answer is what the worker would do with it.

    Synchronous (the provider call runs in its own event loop): call it from a thread,
    never from a running loop."""
    now = ctx.clock()
    with ctx.db.begin() as conn:
        campaign = load_campaign(conn, principal, campaign_id)
        if Status(campaign["status"]) in TERMINAL_STATUSES:
            raise InvalidTransition(campaign["status"], "test_send")
        steps = campaign_store.get_steps(conn, campaign_id)
        if step >= len(steps):
            raise ValidationFailed([{"field": "step", "message": f"the campaign has steps 0 to {len(steps) - 1}"}])
        channel = steps[step]["channel"]
        kind, address = _recipient(channel, to)
        _refuse_suppressed(conn, principal.workspace_id, kind, address)
        count = len(steps[step].get("variants") or [])
        if variant is not None and variant >= count:
            raise ValidationFailed([{"field": "variant", "message": f"the step has variants 0 to {count - 1}"
                                     if count else "the step has no variants"}])
        lead = _lead(conn, campaign_id, lead_id)
        chosen = _variant(steps[step], step, lead, variant)
        key = _first_usable_key(conn, campaign, channel)
        _reserve(conn, principal.workspace_id, now)
        composition = compose(steps[step], lead or {}, to=address,
                              idempotency_key=f"test.{campaign_id}.{step}.{secrets.token_hex(6)}",
                              unsubscribe_url=unsubscribe_url(ctx, principal.workspace_id, None), variant=chosen)
        details = {"step": step, "channel": channel, "to": mask_address(kind, address), "integration_id": key["id"],
                   "lead_id": str(lead["id"]) if lead else None}
        if chosen is not None:
            details["variant"] = chosen
        if composition.problem is not None:
            result = SendResult(error_class=ErrorClass.LEAD, error_code=composition.problem[0],
                                error_message=composition.problem[1])
            _record(conn, campaign, principal, now, details, result)
            return _answer(result, key["id"], composition)
        entry = _record(conn, campaign, principal, now, details, None)
        credential = credential_of(ctx, key)
    message = composition.message
    result = asyncio.run(registry.once(credential.provider, lambda adapter: adapter.send(credential, message)))
    with ctx.db.begin() as conn:
        store.set_entry_details(conn, entry, _outcome(details, result))
    return _answer(result, key["id"], composition)


def _recipient(channel: str, to: dict) -> tuple[str, str]:
    """(address kind, normalised address) for a step on `channel`, or a 422 naming `to.<kind>`."""
    given = {k: v for k, v in to.items() if v is not None}
    needed = ADDRESS_FIELD[Channel(channel)]
    if set(given) != {needed}:
        raise ValidationFailed([{"field": f"to.{needed}",
                                 "message": f"a {channel} step is sent to a {needed} (give exactly that one)"}])
    try:
        return needed, _NORMALIZE[needed](given[needed])
    except ValueError as exc:
        raise ValidationFailed([{"field": f"to.{needed}", "message": str(exc)}]) from None


def _refuse_suppressed(conn: Connection, workspace_id: str, kind: str, address: str) -> None:
    if kind not in ("phone", "email"):
        return  # the suppression list holds phones and emails only
    phones, emails = lead_store.suppressed_among(conn, workspace_id, [address] if kind == "phone" else [],
                                                 [address] if kind == "email" else [])
    if phones or emails:
        raise ValidationFailed([{"field": f"to.{kind}", "message": "is on the workspace's suppression list"}])


def _first_usable_key(conn: Connection, campaign, channel: str):
    """The first usable key of the campaign's pool on `channel` (failure marks of the
    current run aside, as the gates judge a start), or 409 `resume_blocked` with the gates."""
    rows = integration_store.pool_rows(conn, campaign, {channel}, None)
    usable = [r for r in rows if pool_member(r).usable]
    active = get_workspace(conn, campaign["workspace_id"])["subscription_status"] == "active"
    if usable and active:
        return usable[0]
    report = evaluate_gates(subscription_active=active, status=campaign["status"],
                            pools={channel: [pool_member(r) for r in rows]})
    raise ResumeBlocked(f"no test send: nothing may send on {channel} now",
                        {"gates": [g.as_dict() for g in report.gates]})


def _reserve(conn: Connection, workspace_id: str, now: datetime) -> None:
    """Refuse the test send past MAX_TEST_SENDS in TEST_SEND_WINDOW. The count and the
    entry that records this send are written under the workspace's lock, so concurrent
    requests cannot both take the last place."""
    store.lock_workspace(conn, workspace_id)
    recent = store.recent_test_sends(conn, workspace_id, now - TEST_SEND_WINDOW)
    if len(recent) >= MAX_TEST_SENDS:
        wait = max(1, math.ceil((recent[-MAX_TEST_SENDS] + TEST_SEND_WINDOW - now).total_seconds()))
        raise RateLimited(f"at most {MAX_TEST_SENDS} test sends a minute per workspace",
                          {"limit": MAX_TEST_SENDS, "window_seconds": int(TEST_SEND_WINDOW.total_seconds()),
                           "retry_after_seconds": wait})


def _record(conn: Connection, campaign, principal: Principal, now: datetime, details: dict,
            result: SendResult | None) -> int:
    """The timeline entry; without a result yet it says `sending` until the answer is in."""
    return campaign_store.add_timeline(conn, campaign["id"], now=now, action=store.TEST_SEND,
                                       from_status=campaign["status"], to_status=campaign["status"],
                                       actor_type="user", actor_id=principal.user_id, token_id=principal.token_id,
                                       details=_outcome(details, result))


def _outcome(details: dict, result: SendResult | None) -> dict:
    if result is None:
        return {**details, "status": "sending", "error_code": None}
    return {**details, "status": "accepted" if result.accepted else "failed", "error_code": result.error_code,
            "provider_message_id": result.provider_message_id}


def _answer(result: SendResult, integration_id: str, composition: Composition) -> dict:
    error = None if result.accepted else {"code": result.error_code, "message": result.error_message}
    return {"status": "accepted" if result.accepted else "failed", "provider_message_id": result.provider_message_id,
            "error": error, "integration_id": integration_id, "missing": composition.missing}


def mask_address(kind: str, address: str) -> str:
    """Enough of an address to recognise it on the timeline, not enough to read it back:
    `+49********5678`, `j***@example.com`, `https://www.linkedin.com/in/j***`."""
    if kind == "phone":
        return address[:3] + "*" * max(0, len(address) - 7) + address[-4:]
    if kind == "email":
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    head, _, last = address.rstrip("/").rpartition("/")
    return f"{head}/{last[:1]}***"
