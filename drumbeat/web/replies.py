"""The replies inbox in the browser (issues 22 and 23): the workspace's replies newest
first, filtered by campaign, channel and handled; the conversation of the selected reply's
lead beside them; "Mark handled" for operators. Also the leads' CSV export of a campaign's
leads page. Every action goes through the API's own services; forms work without
JavaScript (POST, then redirect back), and the server checks the role whatever the page showed.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from drumbeat.domain.exceptions import DomainError, NotFound
from drumbeat.domain.roles import Role
from drumbeat.services import campaigns, lead_export, leads, replies
from drumbeat.web import present
from drumbeat.web.pages import Session, _ctx, _guard_post, _page, _problem, _safe_next, _session, _status_of, _to_login

router = APIRouter(include_in_schema=False)

PER_PAGE = 30
CAMPAIGNS_IN_FILTER = 500
HANDLED_CHOICES = {"": "All", "false": "To handle", "true": "Handled"}


def _id(value: str) -> str:
    return value if value.isascii() and value.isdigit() and len(value) <= 18 else ""


@router.get("/replies", response_class=HTMLResponse)
def inbox(request: Request, campaign: str = "", channel: str = "", handled: str = "", cursor: str = "",
          reply: str = ""):
    s = _session(request)
    if s is None:
        return _to_login(request)
    ctx = _ctx(request)
    channel = channel if channel in present.CHANNEL_WORDS else ""
    handled = handled if handled in HANDLED_CHOICES else ""
    campaign = campaign.strip()[:64]
    cursor, reply = _id(cursor), _id(reply)
    try:
        page = replies.list_replies(ctx, s.principal, campaign_id=campaign or None, channel=channel or None,
                                    handled=handled or None, limit=PER_PAGE, cursor=cursor or None, with_names=True)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such campaign in this workspace.", 404)
    except DomainError as exc:
        return _problem(request, s, exc.code, exc.message, _status_of(exc))
    filters = {k: v for k, v in {"campaign": campaign, "channel": channel, "handled": handled}.items() if v}
    selected = None
    if reply:
        try:
            selected = replies.get_reply(ctx, s.principal, reply)
        except NotFound:
            selected = None
    elif page["items"]:
        selected = page["items"][0]
    lead = None
    if selected is not None:
        lead = leads.get_lead(ctx, s.principal, selected["campaign_id"], selected["lead_id"])
    kept = {**filters, **({"cursor": cursor} if cursor else {})}
    here = "/replies" + (f"?{urlencode({**kept, **({'reply': reply} if reply else {})})}" if kept or reply else "")
    next_link = ("/replies?" + urlencode({**filters, "cursor": page["next_cursor"]})) if page["next_cursor"] else None
    choices = campaigns.list_campaigns(ctx, s.principal, limit=CAMPAIGNS_IN_FILTER)["items"]
    rows = [{**item, "who": _who(item["lead"], item["lead_id"]),
             "link": "/replies?" + urlencode({**kept, "reply": item["id"]})} for item in page["items"]]
    return _page(request, s, "replies.html", rows=rows, filters=filters, campaign=campaign, channel=channel,
                 handled=handled, handled_choices=HANDLED_CHOICES, channels=present.CHANNEL_WORDS,
                 campaigns=[(c["id"], c["name"]) for c in choices], next_link=next_link, selected=selected,
                 lead=lead, lead_who=_who(lead, lead["id"]) if lead else "", here=here)


def _who(lead: dict, lead_id: str) -> str:
    name = " ".join(p for p in (lead.get("first_name"), lead.get("last_name")) if p)
    address = lead.get("phone") or lead.get("email") or lead.get("linkedin_url") or ""
    return " · ".join(p for p in (name, address) if p) or f"lead {lead_id}"


@router.post("/replies/{reply_id}/handled")
async def mark_handled(request: Request, reply_id: str):
    form = await request.form()
    guard = _guard_post(request, str(form.get("csrf", "")), request.headers.get("x-csrf-token"), Role.OPERATOR)
    if not isinstance(guard, Session):
        return guard
    try:
        await run_in_threadpool(replies.mark_handled, _ctx(request), guard.principal, reply_id)
    except NotFound:
        return _problem(request, guard, "not_found", "There is no such reply in this workspace.", 404)
    back = _safe_next(str(form.get("back", "")) or "/replies")
    return RedirectResponse(back + ("&" if "?" in back else "?") + "done=reply-handled", status_code=303)


@router.get("/campaigns/{campaign_id}/leads.csv")
def export_leads(request: Request, campaign_id: str) -> Response:
    s = _session(request)
    if s is None:
        return _to_login(request)
    try:
        pieces = lead_export.leads_csv(_ctx(request), s.principal, campaign_id)
    except NotFound:
        return _problem(request, s, "not_found", "There is no such campaign in this workspace.", 404)
    return StreamingResponse(pieces, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="leads-{campaign_id}.csv"'})
