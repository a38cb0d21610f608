"""Users and the workspace (API.md, Users and workspace)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from drumbeat.api.deps import ContextDep, Owner, Viewer
from drumbeat.schemas import (
    ObjectId,
    SubscriptionUpdate,
    UserCreate,
    UserListed,
    UserPublic,
    UsersPublic,
    UserUpdate,
    WorkspacePublic,
    WorkspaceUpdate,
    error_responses,
)
from drumbeat.services import access, workspaces
from drumbeat.services.passwords import hash_password

router = APIRouter(tags=["users and workspace"])


def _last_owner(action: str, verb: str) -> dict:
    return error_responses(403, 404, 409, 422, examples={409: {"error": {
        "code": "invalid_transition", "message": f"the workspace's last owner cannot be {verb}; make another "
                                                 "user owner first", "details": {"from": "owner", "action": action}}}})


@router.post("/users", status_code=201, response_model=UserPublic, responses=error_responses(403, 422))
def create_user(body: UserCreate, principal: Owner, ctx: ContextDep):
    """Add a user to the caller's workspace; the answer holds the new user's token (owner)."""
    password_hash = hash_password(body.password) if body.password is not None else None
    return workspaces.create_user(ctx, principal, body.email, body.role.value, password_hash)


@router.get("/users", response_model=UsersPublic, responses=error_responses(403))
def list_users(principal: Owner, ctx: ContextDep):
    """The workspace's users by email, with their roles (owner)."""
    return {"items": workspaces.list_users(ctx, principal), "next_cursor": None}


@router.patch("/users/{user_id}", response_model=UserListed, responses=_last_owner("change_role", "demoted"))
def change_role(user_id: ObjectId, body: UserUpdate, principal: Owner, ctx: ContextDep):
    """Give a user another role (owner). The workspace's last owner cannot be demoted: 409
    `invalid_transition`. The new role counts from the user's next request, in the API and
    the dashboard alike."""
    return access.change_role(ctx, principal, user_id, body.role.value)


@router.delete("/users/{user_id}", status_code=204, response_class=Response,
               responses=_last_owner("remove", "removed"))
def remove_user(user_id: ObjectId, principal: Owner, ctx: ContextDep):
    """Remove a user (owner): their API tokens and dashboard sessions end at once. The
    workspace's last owner cannot be removed: 409 `invalid_transition`."""
    access.remove_user(ctx, principal, user_id)
    return Response(status_code=204)


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
