"""Replies (API.md v1.1, Learning what works): the workspace's inbox, newest first, and
marking a reply handled (operators and owners; an audit entry)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from drumbeat.api.deps import ContextDep, Operator, Viewer
from drumbeat.domain.channels import Channel
from drumbeat.schemas import Instant, error_responses, examples
from drumbeat.services import replies

router = APIRouter(tags=["replies"])

REPLY_EXAMPLE = {"id": "17", "campaign_id": "c3a8b6f0e1d2c3b4a595f0c2a9b1d7e4", "lead_id": "1", "channel": "whatsapp",
                 "text": "Sounds good, call me tomorrow", "at": "2026-03-02T10:07:00Z", "handled": False,
                 "kind": "reply", "step": 0, "media": None, "handled_at": None}


class ReplyOut(BaseModel):
    model_config = examples(REPLY_EXAMPLE)

    id: str
    campaign_id: str
    lead_id: str
    channel: Channel
    text: str | None = Field(description="what the person wrote (a button's text, a media caption); null for "
                                         "media without a caption, or after an erasure")
    at: Instant = Field(description="when it was received (UTC)")
    handled: bool
    kind: Literal["reply", "opt_out", "opt_in"] = Field(
        description="`opt_out`: an opt-out word (STOP…), which suppressed the number instead of marking the "
                    "lead replied; `opt_in`: START and the like")
    step: int | None = Field(description="the step (from 0) of the message it answers: the one it quotes, else "
                                         "the lead's last attempt before it")
    media: dict[str, Any] | None = Field(description="WhatsApp: `{\"type\", \"id\", \"mime_type\"?, \"caption\"?, "
                                                     "\"filename\"?}` (Meta's media id); Twilio: `{\"type\", "
                                                     "\"url\"}`")
    handled_at: Instant | None


class ReplyPage(BaseModel):
    model_config = examples({"items": [REPLY_EXAMPLE], "next_cursor": None})

    items: list[ReplyOut]
    next_cursor: str | None


@router.get("/replies", response_model=ReplyPage, responses=error_responses(404))
def list_replies(principal: Viewer, ctx: ContextDep,
                 campaign_id: Annotated[str | None, Query(max_length=64, description=(
                     "only this campaign's (another workspace's: 404)"))] = None,
                 channel: Annotated[Channel | None, Query(description="only replies on this channel")] = None,
                 handled: Annotated[bool | None, Query(description="true: handled only; false: still to handle")]
                 = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 cursor: Annotated[str | None, Query(pattern=r"^[0-9]{0,18}$",
                                                     description="`next_cursor` of the previous page")] = None):
    """The workspace's replies, newest first."""
    return replies.list_replies(ctx, principal, campaign_id=campaign_id, channel=channel.value if channel else None,
                                handled=handled, limit=limit, cursor=cursor)


@router.post("/replies/{reply_id}/handled", response_model=ReplyOut, responses=error_responses(403, 404))
def mark_handled(reply_id: str, principal: Operator, ctx: ContextDep):
    """Mark a reply handled (operator or owner; an audit entry). Marking it again answers
    the same and changes nothing."""
    return replies.mark_handled(ctx, principal, reply_id)
