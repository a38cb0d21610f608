"""Every lead of a campaign as CSV (API.md v1.1, GET /campaigns/{id}/leads.csv), streamed:
a keyset page of leads at a time (store.exports), each written and handed on before the
next is read, so memory stays flat however many leads there are. Cells are made safe to
open in a spreadsheet (domain.spreadsheet)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from drumbeat.domain.exceptions import NotFound
from drumbeat.domain.spreadsheet import safe_row
from drumbeat.services.context import Context, Principal
from drumbeat.store import campaigns as campaign_store
from drumbeat.store import exports as store

HEADER = ("lead_id", "phone", "email", "linkedin_url", "first_name", "last_name", "state", "step", "variant",
          "last_status", "last_error", "replied_at", "opted_out_reason")
PAGE = 2_000


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def export_row(row: dict) -> list:
    return [row["id"], row["phone"], row["email"], row["linkedin_url"], row["first_name"], row["last_name"],
            row["state"], row["current_step"],
            None,  # variant: the variant of the lead's last attempt, once attempts record one (issue 22, variants)
            row["last_status"], row["last_error"], _iso(row["replied_at"]), row["opted_out_reason"]]


def leads_csv(ctx: Context, principal: Principal, campaign_id: str, *, page: int = PAGE) -> Iterator[str]:
    """The campaign is checked before the first byte (another workspace's: NotFound, a 404
    rather than a broken download); then the header and one piece of CSV text per page."""
    with ctx.db.begin() as conn:
        if campaign_store.get_campaign(conn, principal.workspace_id, campaign_id) is None:
            raise NotFound("campaign not found", {"id": campaign_id})
    return _pieces(ctx, principal.workspace_id, campaign_id, page)


def _pieces(ctx: Context, workspace_id: str, campaign_id: str, page: int) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    after = None
    while True:
        with ctx.db.begin() as conn:
            rows = store.export_page(conn, workspace_id, campaign_id, after_id=after, limit=page)
        for row in rows:
            writer.writerow(safe_row(export_row(row)))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(rows) < page:
            return
        after = rows[-1]["id"]
