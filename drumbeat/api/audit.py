"""The audit log (API.md v1.1, Consent): who created, changed or deleted what, and every
campaign action, newest first (owner)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from drumbeat.api.deps import ContextDep, Owner
from drumbeat.domain.audit import ObjectType
from drumbeat.schemas import Instant, error_responses, examples
from drumbeat.services import audit

router = APIRouter(tags=["audit"])


class AuditActor(BaseModel):
    type: Literal["user", "token", "system"] = Field(
        description="`user`: in the dashboard; `token`: an API call with that token; `system`: the engine, "
                    "the sweeper or a provider's callback")
    id: str | None = Field(description="the user's id, the token's id, or what acted for the system "
                                       "(`engine`, `sweeper`, `health:disconnected`…)")
    user_id: str | None = Field(None, description="the user behind a `user` or `token` actor")


class AuditEntry(BaseModel):
    id: str = Field(description="the entry's id (pages resume after it)")
    at: Instant = Field(description="when the change was made (UTC)")
    actor: AuditActor
    action: str = Field(description="`created`, `updated`, `deleted`, or the campaign's action "
                                    "(`start`, `pause`, `auto_pause`, `resume`, `cancel`, `schedule`, `edit`…)")
    object_type: ObjectType = Field(description="what was changed")
    object_id: str = Field(description="its id")
    details: dict[str, Any] = Field(description="what changed; never a secret value (credentials are named by "
                                                "key: `{\"credentials\": [\"access_token\"]}`)")


ENTRY_EXAMPLE = {"id": "42", "at": "2026-03-02T10:00:00Z",
                 "actor": {"type": "token", "id": "5f0c2a9b1d7e4c3a8b6f0e1d2c3b4a59",
                           "user_id": "9b1d7e4c3a8b6f0e1d2c3b4a595f0c2a"},
                 "action": "updated", "object_type": "integration", "object_id": "1d7e4c3a8b6f0e1d2c3b4a595f0c2a9b",
                 "details": {"label": "Acme WA", "credentials": ["access_token"]}}


class AuditPage(BaseModel):
    model_config = examples({"items": [ENTRY_EXAMPLE, {
        "id": "41", "at": "2026-03-02T09:58:00Z", "actor": {"type": "system", "id": "engine", "user_id": None},
        "action": "auto_pause", "object_type": "campaign", "object_id": "c3a8b6f0e1d2c3b4a595f0c2a9b1d7e4",
        "details": {"from": "sending", "to": "paused", "reason": "all_keys_failed"}}], "next_cursor": "41"})
    items: list[AuditEntry] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page; null on the last")


@router.get("/audit", response_model=AuditPage, responses=error_responses(403, 404))
def list_audit(principal: Owner, ctx: ContextDep,
               limit: Annotated[int, Query(ge=1, le=500, description="entries per page")] = 50,
               cursor: Annotated[str | None, Query(pattern=r"^[0-9]{0,18}$",
                                                   description="`next_cursor` of the previous page")] = None,
               object_type: Annotated[ObjectType | None, Query(description="only this kind of object")] = None,
               actor: Annotated[str | None, Query(
                   pattern=r"^[A-Za-z0-9_-]{1,64}$",
                   description="only what this user did (their dashboard and their tokens): a user id of the "
                               "workspace; another's → 404")] = None):
    """The workspace's audit log, newest first (owner)."""
    return audit.list_events(ctx, principal, limit=limit, cursor=cursor or None,
                             object_type=object_type.value if object_type else None, actor=actor)
