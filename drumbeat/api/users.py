"""Users and the workspace (API.md, Users and workspace)."""

from __future__ import annotations

from fastapi import APIRouter

from drumbeat.api.deps import ContextDep, Owner, Viewer
from drumbeat.schemas import (
    SubscriptionUpdate,
    UserCreate,
    UserPublic,
    WorkspacePublic,
    WorkspaceUpdate,
    error_responses,
)
from drumbeat.services import workspaces
from drumbeat.services.passwords import hash_password

router = APIRouter(tags=["users and workspace"])


@router.post("/users", status_code=201, response_model=UserPublic, responses=error_responses(403, 422))
def create_user(body: UserCreate, principal: Owner, ctx: ContextDep):
    """Add a user to the caller's workspace; the answer holds the new user's token (owner)."""
    password_hash = hash_password(body.password) if body.password is not None else None
    return workspaces.create_user(ctx, principal, body.email, body.role.value, password_hash)


@router.get("/workspace", response_model=WorkspacePublic, responses=error_responses())
def get_workspace(principal: Viewer, ctx: ContextDep):
    return workspaces.get_workspace(ctx, principal)


@router.patch("/workspace", response_model=WorkspacePublic, responses=error_responses(403, 422))
def update_workspace(body: WorkspaceUpdate, principal: Owner, ctx: ContextDep):
    """Consent settings (owner): the workspace's own opt-out and opt-in words, the contact
    cap and the SMS auto-replies. Fields left out stay as they are."""
    changes = body.model_dump(exclude_unset=True)
    if body.auto_replies is not None:
        changes["auto_replies"] = body.auto_replies.model_dump(exclude_unset=True)
    return workspaces.update_settings(ctx, principal, changes)


@router.put("/workspace/subscription", response_model=WorkspacePublic, responses=error_responses(403, 422))
def set_subscription(body: SubscriptionUpdate, principal: Owner, ctx: ContextDep):
    """Cancel or renew the subscription (owner). Canceled holds every sending campaign."""
    return workspaces.set_subscription(ctx, principal, body.status)
