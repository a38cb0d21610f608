"""The audit log page (owner): every creation, change and deletion and every campaign
action in words, newest first, filtered by object type and by user (services.audit)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from drumbeat.domain.audit import ObjectType
from drumbeat.domain.exceptions import DomainError
from drumbeat.services import audit, workspaces
from drumbeat.web.pages import _ctx, _page, _problem, _session, _status_of, _to_login

router = APIRouter(include_in_schema=False)
PER_PAGE = 50

OBJECT_TYPE_LABELS = {ObjectType.CAMPAIGN: "Campaigns", ObjectType.INTEGRATION: "Integrations",
                      ObjectType.USER: "Users", ObjectType.TOKEN: "API tokens", ObjectType.WEBHOOK: "Webhooks",
                      ObjectType.SUPPRESSION: "Suppressions", ObjectType.WORKSPACE: "Workspace",
                      ObjectType.REPLY: "Replies"}


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, object_type: str = "", actor: str = "", cursor: str = ""):
    s = _session(request)
    if s is None:
        return _to_login(request)
    if not s.is_owner:
        return _problem(request, s, "forbidden", "the audit log needs the owner role", 403)
    ctx = _ctx(request)
    users = workspaces.list_users(ctx, s.principal)
    # A filter value the page never offers is dropped, as the other list pages do.
    object_type = object_type if object_type in OBJECT_TYPE_LABELS else ""
    actor = actor if any(u["id"] == actor for u in users) else ""
    cursor = cursor if cursor.isascii() and cursor.isdigit() and len(cursor) <= 18 else ""
    try:
        page = audit.list_events(ctx, s.principal, limit=PER_PAGE, cursor=cursor or None,
                                 object_type=object_type or None, actor=actor or None)
    except DomainError as exc:
        return _problem(request, s, exc.code, exc.message, _status_of(exc))
    filters = {k: v for k, v in {"object_type": object_type, "actor": actor}.items() if v}
    next_link = f"/audit?{urlencode({**filters, 'cursor': page['next_cursor']})}" if page["next_cursor"] else None
    newest_link = ("/audit?" + urlencode(filters) if filters else "/audit") if cursor else None
    return _page(request, s, "audit.html", entries=audit.described(ctx, s.principal, page["items"]),
                 object_types=OBJECT_TYPE_LABELS, users=users, object_type=object_type, actor=actor,
                 next_link=next_link, newest_link=newest_link)
