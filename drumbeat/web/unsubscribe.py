"""The public page behind every email's unsubscribe link, `/u/{token}` (issue 20; RFC 8058).

No session, no cookie, no script, no tracking: the signed token is the recipient's whole
right. `GET` shows one confirm button and changes nothing (mail scanners open links);
`POST` unsubscribes at once, from that button or from the mail client's one-click
(`List-Unsubscribe=One-Click` in the body, which is not required). A link that is not
genuine answers 404 with a page that says so, and nothing changes.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from drumbeat.domain.exceptions import NotFound
from drumbeat.services import unsubscribe
from drumbeat.web.pages import SECURITY_HEADERS, templates

router = APIRouter(include_in_schema=False)

TITLES = {"confirm": "Unsubscribe", "done": "You are unsubscribed", "test": "A test message's link",
          "invalid": "Link not valid"}


def _page(request: Request, token: str, state: str, view: dict | None = None, status: int = 200) -> HTMLResponse:
    view = view or {}
    response = templates.TemplateResponse(request, "unsubscribe.html", {
        "state": state, "title": TITLES[state], "address": view.get("address"),
        "sender": view.get("sender") or "this sender", "action": f"/u/{quote(token, safe='')}"}, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the path
    return response


@router.get("/u/{token}", response_class=HTMLResponse)
async def confirm_page(request: Request, token: str) -> HTMLResponse:
    try:
        view = await run_in_threadpool(unsubscribe.look_up, request.app.state.ctx, token)
    except NotFound:
        return _page(request, token, "invalid", status=404)
    return _page(request, token, "test" if view["test"] else "confirm", view)


@router.post("/u/{token}", response_class=HTMLResponse)
async def one_click(request: Request, token: str) -> HTMLResponse:
    """RFC 8058's one-click POST and the page's button alike; the body is not needed."""
    try:
        view = await run_in_threadpool(unsubscribe.unsubscribe, request.app.state.ctx, token)
    except NotFound:
        return _page(request, token, "invalid", status=404)
    return _page(request, token, "test" if view["test"] else "done", view)
