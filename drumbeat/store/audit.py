"""The audit log's rows (table audit_events): written in the change's own transaction,
read newest first per workspace."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, literal, select, update

from drumbeat.store.tables import audit_events, campaigns, integrations, users


def insert_event(conn: Connection, workspace_id: str, *, at: datetime, actor_type: str, actor_id: str | None,
                 user_id: str | None, action: str, object_type: str, object_id: str, details: dict) -> None:
    conn.execute(insert(audit_events).values(
        workspace_id=workspace_id, at=at, actor_type=actor_type, actor_id=actor_id, user_id=user_id,
        action=action, object_type=object_type, object_id=object_id, details=details))


def insert_campaign_event(conn: Connection, campaign_id: str, *, at: datetime, actor_type: str,
                          actor_id: str | None, user_id: str | None, action: str, details: dict) -> None:
    """One statement: the campaign's workspace is read by the insert itself."""
    columns = ("workspace_id", "at", "actor_type", "actor_id", "user_id", "action", "object_type", "object_id",
               "details")
    values = select(campaigns.c.workspace_id, literal(at, audit_events.c.at.type),
                    literal(actor_type, audit_events.c.actor_type.type),
                    literal(actor_id, audit_events.c.actor_id.type), literal(user_id, audit_events.c.user_id.type),
                    literal(action, audit_events.c.action.type), literal("campaign", audit_events.c.object_type.type),
                    literal(campaign_id, audit_events.c.object_id.type),
                    literal(details, audit_events.c.details.type)).where(campaigns.c.id == campaign_id)
    conn.execute(insert(audit_events).from_select(columns, values))


def erase_address(conn: Connection, workspace_id: str, *, phone: str | None = None,
                  email: str | None = None) -> int:
    """Blank one address in the workspace's suppression entries (an erasure forgets the
    person here too); returns the entries changed. Erasures are rare: read, then rewrite."""
    key, value = ("phone", phone) if phone is not None else ("email", email)
    rows = conn.execute(select(audit_events.c.id, audit_events.c.details).where(
        audit_events.c.workspace_id == workspace_id, audit_events.c.object_type == "suppression",
        audit_events.c.details[key].as_string() == value)).all()
    for entry_id, details in rows:
        conn.execute(update(audit_events).where(audit_events.c.id == entry_id)
                     .values(details={**details, key: None, "erased": True}))
    return len(rows)


def list_events(conn: Connection, workspace_id: str, *, before_id: int | None, limit: int,
                object_type: str | None = None, user_id: str | None = None) -> list[dict]:
    """Newest first; `before_id` is the last id of the previous page."""
    query = select(audit_events).where(audit_events.c.workspace_id == workspace_id)
    if before_id is not None:
        query = query.where(audit_events.c.id < before_id)
    if object_type is not None:
        query = query.where(audit_events.c.object_type == object_type)
    if user_id is not None:
        query = query.where(audit_events.c.user_id == user_id)
    return [dict(r) for r in conn.execute(query.order_by(audit_events.c.id.desc()).limit(limit)).mappings()]


def names(conn: Connection, workspace_id: str, *, user_ids: set[str], campaign_ids: set[str],
          integration_ids: set[str]) -> dict[str, dict[str, str]]:
    """Current names for the entries' sentences: {"user": {id: email}, "campaign": {id:
    name}, "integration": {id: label}}, this workspace's only."""
    out: dict[str, dict[str, str]] = {"user": {}, "campaign": {}, "integration": {}}
    for kind, table, column, ids in (("user", users, users.c.email, user_ids),
                                     ("campaign", campaigns, campaigns.c.name, campaign_ids),
                                     ("integration", integrations, integrations.c.label, integration_ids)):
        if ids:
            rows = conn.execute(select(table.c.id, column).where(table.c.workspace_id == workspace_id,
                                                                 table.c.id.in_(ids)))
            out[kind] = {r[0]: r[1] for r in rows}
    missing = user_ids - set(out["user"])
    if missing:  # removed users: named as the log itself recorded them
        out["user"].update({k: v for k, v in former_users(conn, workspace_id).items() if k in missing})
    return out


def former_users(conn: Connection, workspace_id: str) -> dict[str, str]:
    """Users of the workspace who were removed, {id: email}, as their own entries (added,
    removed) recorded them: the log still names them after their row is gone."""
    query = (select(audit_events.c.object_id, audit_events.c.details)
             .where(audit_events.c.workspace_id == workspace_id, audit_events.c.object_type == "user",
                    audit_events.c.action == "deleted", audit_events.c.object_id.not_in(
                        select(users.c.id).where(users.c.workspace_id == workspace_id)))
             .order_by(audit_events.c.id))
    return {object_id: details["email"] for object_id, details in conn.execute(query)
            if isinstance(details, dict) and isinstance(details.get("email"), str)}
