"""The template catalogue of each WhatsApp integration (a copy of Meta's message templates)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from drumbeat.store.tables import template_catalogue as catalogue

FIELDS = ("name", "language", "status", "category", "parameter_format", "components")


def replace_catalogue(conn: Connection, integration_id: str, entries: list[dict], now: datetime) -> int:
    """The integration's catalogue becomes `entries` (Meta's template definitions): one
    row per name and language, the last one read winning."""
    rows = {(e["name"], e["language"]): {"integration_id": integration_id, "synced_at": now,
                                          **{f: e.get(f) for f in FIELDS}} for e in entries}
    conn.execute(delete(catalogue).where(catalogue.c.integration_id == integration_id))
    if rows:
        conn.execute(insert(catalogue), list(rows.values()))
    return len(rows)


def list_catalogue(conn: Connection, integration_id: str) -> list[dict]:
    query = (select(catalogue).where(catalogue.c.integration_id == integration_id)
             .order_by(catalogue.c.name, catalogue.c.language))
    return [dict(r) for r in conn.execute(query).mappings()]


def catalogues_of(conn: Connection, integration_ids: list[str]) -> dict[str, list[dict]]:
    """integration id -> its catalogue entries, for those of `integration_ids` that have one."""
    out: dict[str, list[dict]] = {}
    if not integration_ids:
        return out
    query = select(catalogue).where(catalogue.c.integration_id.in_(integration_ids))
    for row in conn.execute(query).mappings():
        out.setdefault(row["integration_id"], []).append(dict(row))
    return out


def set_status(conn: Connection, integration_id: str, name: str, language: str, status: str,
               now: datetime) -> str | None:
    """Record a template's new status; returns the status it had (None: not in the catalogue)."""
    key = (catalogue.c.integration_id == integration_id, catalogue.c.name == name, catalogue.c.language == language)
    before = conn.execute(select(catalogue.c.status).where(*key)).scalar()
    if before is not None:
        conn.execute(update(catalogue).where(*key).values(status=status, synced_at=now))
    return before
