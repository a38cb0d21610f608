"""API tokens (API.md v1.1, Trust without a person): created (shown once), listed and
revoked. Anyone manages their own; an owner, every user's of the workspace."""

from __future__ import annotations

from fastapi import APIRouter, Response

from drumbeat.api.deps import ContextDep, Viewer
from drumbeat.schemas import ObjectId, TokenCreate, TokenCreated, TokensPublic, error_responses
from drumbeat.services import access

router = APIRouter(prefix="/tokens", tags=["users and workspace"])


@router.post("", status_code=201, response_model=TokenCreated, responses=error_responses(403, 404, 422))
def create_token(principal: Viewer, ctx: ContextDep, body: TokenCreate | None = None):
    """A new token for the caller, or (owner) for `user_id`, another user of the workspace.
    The token is in this answer only; Drumbeat keeps its hash."""
    return access.create_token(ctx, principal, body.user_id if body else None)


@router.get("", response_model=TokensPublic, responses=error_responses())
def list_tokens(principal: Viewer, ctx: ContextDep):
    """The caller's tokens; for an owner, every user's of the workspace. Never the tokens
    themselves: their ids, whose they are, and when each was made and last used."""
    return access.list_tokens(ctx, principal)


@router.delete("/{token_id}", status_code=204, response_class=Response, responses=error_responses(403, 404))
def revoke_token(token_id: ObjectId, principal: Viewer, ctx: ContextDep):
    """Revoke a token (one's own; an owner: anyone's in the workspace). It answers 401 from
    the next request on."""
    access.revoke_token(ctx, principal, token_id)
    return Response(status_code=204)
