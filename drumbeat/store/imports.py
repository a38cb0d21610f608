"""CSV lead imports and their rejected rows (the rejected.csv download)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from drumbeat.store.tables import import_rejections, imports


def insert_import(conn: Connection, import_id: str, workspace_id: str, campaign_id: str, columns: list[str],
                  now: datetime) -> None:
    conn.execute(insert(imports).values(id=import_id, workspace_id=workspace_id, campaign_id=campaign_id,
                                        columns=columns, counts=None, created_at=now))


def set_counts(conn: Connection, import_id: str, counts: dict) -> None:
    conn.execute(update(imports).where(imports.c.id == import_id).values(counts=counts))


def insert_rejections(conn: Connection, rows: list[dict]) -> None:
    """rows: {"import_id", "row", "workspace_id", "cells", "reasons", "created_at"}."""
    if rows:
        conn.execute(insert(import_rejections), rows)


def get_import(conn: Connection, workspace_id: str, import_id: str, since: datetime) -> dict | None:
    """The workspace's import, if made at or after `since` (older ones are expired)."""
    row = conn.execute(select(imports).where(imports.c.id == import_id, imports.c.workspace_id == workspace_id,
                                             imports.c.created_at >= since)).mappings().first()
    return dict(row) if row else None


def rejections_after(conn: Connection, import_id: str, after_row: int, limit: int) -> list[dict]:
    query = (select(import_rejections.c.row, import_rejections.c.cells, import_rejections.c.reasons)
             .where(import_rejections.c.import_id == import_id, import_rejections.c.row > after_row)
             .order_by(import_rejections.c.row).limit(limit))
    return [dict(r) for r in conn.execute(query).mappings()]


def delete_imports_before(conn: Connection, before: datetime) -> int:
    """Imports made before `before`, with their rejected rows."""
    old = select(imports.c.id).where(imports.c.created_at < before).scalar_subquery()
    conn.execute(delete(import_rejections).where(import_rejections.c.import_id.in_(old)))
    return conn.execute(delete(imports).where(imports.c.created_at < before)).rowcount
