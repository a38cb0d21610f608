"""FastAPI dependencies: the service context and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from drumbeat.api.errors import ApiError
from drumbeat.domain.roles import Role, allows
from drumbeat.services import workspaces
from drumbeat.services.context import Context, Principal


def get_context(request: Request) -> Context:
    return request.app.state.ctx


ContextDep = Annotated[Context, Depends(get_context)]


# Declares the bearer scheme in the OpenAPI document (clients and the fuzz test's auth
# check read it); the refusal stays ours, in the API's error envelope.
bearer = HTTPBearer(auto_error=False, description="A user's token (`drumbeat init-workspace`, `POST /users`)")


def current_principal(ctx: ContextDep,
                      credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    token = credentials.credentials.strip() if credentials else ""
    if not token:
        raise ApiError("unauthorized", "a bearer token is required")
    principal = workspaces.authenticate(ctx, token)
    if principal is None:
        raise ApiError("unauthorized", "the token is not valid")
    return principal


def require(role: Role):
    def _check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not allows(principal.role, role):
            raise ApiError("forbidden", f"this action needs the {role.value} role")
        return principal

    return _check


# Each route's role is also in the OpenAPI document, as the scope of its bearer requirement
# (OpenAPI 3.1 lets a non-OAuth scheme list the roles it needs): `security: [{"HTTPBearer":
# ["operator"]}]`. Swagger UI and docs/api-reference.md show it from there.
Viewer = Annotated[Principal, Security(require(Role.VIEWER), scopes=[Role.VIEWER.value])]
Operator = Annotated[Principal, Security(require(Role.OPERATOR), scopes=[Role.OPERATOR.value])]
Owner = Annotated[Principal, Security(require(Role.OWNER), scopes=[Role.OWNER.value])]
