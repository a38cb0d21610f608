"""One-click unsubscribe (issue 20; RFC 8058): the link in every email, `{public_url}/u/{token}`.

No sign-in: the signed token (domain.unsubscribe) is the recipient's whole right, and it
reaches one lead only. Reading a link (`look_up`) changes nothing; `unsubscribe` puts the
address the lead was contacted on on the workspace's suppression list with reason
`unsubscribe_link`, which opts out every unfinished lead of the workspace with it. A
token that is forged, altered, expired or names a lead that no longer exists is
NotFound, whichever it is (the answer never says which).

A test send's link names no lead (domain.unsubscribe.NO_LEAD): it is genuine, and it
unsubscribes nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from sqlalchemy import Connection

from drumbeat.domain import unsubscribe as tokens
from drumbeat.domain.channels import ADDRESS_FIELD, Channel
from drumbeat.domain.consent import SuppressionReason
from drumbeat.domain.exceptions import NotFound
from drumbeat.services.content import mask_address
from drumbeat.services.context import Context
from drumbeat.services.suppressions import suppress
from drumbeat.store import leads as lead_store
from drumbeat.store.workspaces import get_workspace

SUPPRESSED_KINDS = ("email", "phone")  # what the suppression list holds


@dataclass(frozen=True)
class Link:
    """What a genuine link names: a lead (None for a test send's) and the address it stops."""

    lead: dict | None
    kind: str | None  # "email" | "phone": the address to suppress (None: the lead has none)
    address: str | None
    channel: str | None  # the channel the link came on (the lead's last attempt's)
    sender: str | None = None  # the workspace's name


def _not_found() -> NotFound:
    return NotFound("this unsubscribe link is not valid", {})


def _link(ctx: Context, conn: Connection, token: str) -> Link:
    links = ctx.unsubscribe_links()
    claim = tokens.read(token)
    today = ctx.clock().astimezone(UTC).date()
    if links is None or claim is None or not tokens.current(claim, today):
        raise _not_found()
    if claim.lead_id == tokens.NO_LEAD:
        if not tokens.verify(links.key, tokens.TEST_WORKSPACE, claim, today):
            raise _not_found()
        return Link(None, None, None, None)
    lead = lead_store.lead_anywhere(conn, claim.lead_id)
    # A lead that is gone is checked against a stand-in, so the answer takes the same time.
    workspace_id = lead["workspace_id"] if lead else tokens.TEST_WORKSPACE
    if not tokens.verify(links.key, workspace_id, claim, today) or lead is None:
        raise _not_found()
    channel = lead["last_channel"]
    kind = ADDRESS_FIELD[Channel(channel)] if channel else None
    if kind not in SUPPRESSED_KINDS or not lead.get(kind):  # LinkedIn, or never sent: what the lead has
        kind = next((k for k in SUPPRESSED_KINDS if lead.get(k)), None)
    return Link(lead, kind, lead.get(kind) if kind else None, channel, get_workspace(conn, workspace_id)["name"])


def look_up(ctx: Context, token: str) -> dict:
    """What the page shows before the person confirms: nothing changes."""
    with ctx.db.begin() as conn:
        link = _link(ctx, conn, token)
    return _view(link)


def unsubscribe(ctx: Context, token: str) -> dict:
    """One click: the address the lead was contacted on is suppressed with reason
    `unsubscribe_link` (source: the lead's campaign, the lead, the channel), which opts out
    every unfinished lead of the workspace with it. Clicking again changes nothing more."""
    now = ctx.clock()
    with ctx.db.begin() as conn:
        link = _link(ctx, conn, token)
        lead = link.lead
        if lead is not None and link.kind is not None:
            source = {"campaign_id": lead["campaign_id"], "lead_id": lead["id"], "channel": link.channel or
                      ("email" if link.kind == "email" else None)}
            suppress(conn, lead["workspace_id"], **{link.kind: link.address}, reason=SuppressionReason.UNSUBSCRIBE_LINK,
                     source={k: v for k, v in source.items() if v is not None}, now=now)
    return _view(link)


def _view(link: Link) -> dict:
    """What the page may say: the address masked (the link may have been forwarded)."""
    return {"test": link.lead is None, "sender": link.sender,
            "address": mask_address(link.kind, link.address) if link.kind and link.address else None}
