"""Integration rows (credentials stay encrypted here) and per-run key failure marks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from drumbeat.domain.channels import effective_daily_cap, health_after
from drumbeat.store.ids import new_id
from drumbeat.store.tables import integrations, key_failures


def insert_integration(conn: Connection, workspace_id: str, data: dict, sealed_credentials: str,
                       now: datetime) -> str:
    integration_id = new_id()
    conn.execute(insert(integrations).values(
        id=integration_id, workspace_id=workspace_id, channel=data["channel"], provider=data["provider"],
        label=data["label"], credentials_encrypted=sealed_credentials, config=data.get("config") or {},
        daily_cap=data.get("daily_cap"), health="active", enabled=True, created_at=now,
    ))
    return integration_id


def get_integration(conn: Connection, workspace_id: str, integration_id: str):
    query = select(integrations).where(integrations.c.id == integration_id,
                                       integrations.c.workspace_id == workspace_id)
    return conn.execute(query).mappings().first()


def get_integration_by_id(conn: Connection, integration_id: str):
    return conn.execute(select(integrations).where(integrations.c.id == integration_id)).mappings().first()


def list_integrations(conn: Connection, workspace_id: str, channel: str | None = None) -> list:
    query = select(integrations).where(integrations.c.workspace_id == workspace_id)
    if channel is not None:
        query = query.where(integrations.c.channel == channel)
    return list(conn.execute(query.order_by(integrations.c.created_at, integrations.c.id)).mappings())


def update_integration(conn: Connection, integration_id: str, **values) -> None:
    conn.execute(update(integrations).where(integrations.c.id == integration_id).values(**values))


def pool_rows(conn: Connection, campaign, channels: set[str], run: int | None) -> list:
    """The campaign's key pools on `channels`: its integration_ids, or, when null, every
    integration of the workspace on the channel (read now, so a key added later counts).
    Each row carries `failed_in_run`: the key answered a key-level error in `run`."""
    failed = (select(key_failures.c.integration_id)
              .where(key_failures.c.campaign_id == campaign["id"], key_failures.c.run == run,
                     key_failures.c.integration_id == integrations.c.id).exists())
    query = select(integrations, failed.label("failed_in_run")).where(
        integrations.c.workspace_id == campaign["workspace_id"], integrations.c.channel.in_(channels))
    if campaign["integration_ids"] is not None:
        query = query.where(integrations.c.id.in_(campaign["integration_ids"]))
    return list(conn.execute(query.order_by(integrations.c.created_at, integrations.c.id)).mappings())


def pools_of(conn: Connection, campaigns: list) -> dict[str, list]:
    """campaign id -> the rows pool_rows gives for it on every channel (in the run it is
    in), for several campaigns in two queries."""
    if not campaigns:
        return {}
    candidates = list(conn.execute(select(integrations).where(
        integrations.c.workspace_id.in_({c["workspace_id"] for c in campaigns}))
        .order_by(integrations.c.created_at, integrations.c.id)).mappings())
    failed = {tuple(r) for r in conn.execute(
        select(key_failures.c.campaign_id, key_failures.c.run, key_failures.c.integration_id)
        .where(key_failures.c.campaign_id.in_([c["id"] for c in campaigns])))}
    out = {}
    for c in campaigns:
        chosen = c["integration_ids"]
        out[c["id"]] = [{**row, "failed_in_run": (c["id"], c["run"], row["id"]) in failed} for row in candidates
                        if row["workspace_id"] == c["workspace_id"] and (chosen is None or row["id"] in chosen)]
    return out


def failed_keys(conn: Connection, campaign_id: str, run: int) -> dict[str, dict]:
    """integration id -> its key failure in the run (code, message, at), with its label."""
    rows = conn.execute(select(key_failures, integrations.c.label)
                        .join(integrations, integrations.c.id == key_failures.c.integration_id)
                        .where(key_failures.c.campaign_id == campaign_id, key_failures.c.run == run)).mappings()
    return {r["integration_id"]: dict(r) for r in rows}


def labels_of(conn: Connection, integration_ids: list[str]) -> dict[str, str]:
    rows = conn.execute(select(integrations.c.id, integrations.c.label).where(integrations.c.id.in_(integration_ids)))
    return {r.id: r.label for r in rows}


def mark_key_failed(conn: Connection, campaign_id: str, run: int, integration_id: str, code: str | None,
                    message: str | None, now: datetime) -> None:
    exists = conn.execute(select(key_failures.c.integration_id).where(
        key_failures.c.campaign_id == campaign_id, key_failures.c.run == run,
        key_failures.c.integration_id == integration_id)).first()
    if exists is None:
        conn.execute(insert(key_failures).values(campaign_id=campaign_id, run=run, integration_id=integration_id,
                                                 error_code=code, error_message=message, at=now))


def carry_key_failures(conn: Connection, campaign_id: str, from_run: int, to_run: int,
                       integration_ids: list[str]) -> None:
    """Keys whose mark stays into a new run (a resume whose probe did not clear it): the
    same failure (code, message, when) is their mark in `to_run`."""
    if not integration_ids:
        return
    rows = conn.execute(select(key_failures).where(
        key_failures.c.campaign_id == campaign_id, key_failures.c.run == from_run,
        key_failures.c.integration_id.in_(integration_ids))).mappings().all()
    for r in rows:
        mark_key_failed(conn, campaign_id, to_run, r["integration_id"], r["error_code"], r["error_message"], r["at"])


def marked_rows(conn: Connection, campaign_id: str, run: int) -> list:
    """The integrations marked failed in the campaign's run, enabled and active (those a
    probe could bring back)."""
    query = (select(integrations).join(key_failures, key_failures.c.integration_id == integrations.c.id)
             .where(key_failures.c.campaign_id == campaign_id, key_failures.c.run == run,
                    integrations.c.enabled.is_(True), integrations.c.health == "active")
             .order_by(integrations.c.id))
    return list(conn.execute(query).mappings())


def apply_health_event(conn: Connection, integration_id: str, event: str) -> bool:
    """Set the integration's health after a health event; False when nothing changed."""
    current = conn.execute(select(integrations.c.health).where(integrations.c.id == integration_id)).scalar()
    new = health_after(current, event) if current is not None else None
    if new is None or new == current:
        return False
    conn.execute(update(integrations).where(integrations.c.id == integration_id).values(health=new))
    return True


def daily_cap_of(row) -> int | None:
    """The daily cap a key is held to: the lower of the operator's `daily_cap` and the
    provider's messaging limit for the number (`provider_daily_limit`)."""
    return effective_daily_cap(row["daily_cap"], row.get("provider_daily_limit"))


def set_messaging_limit(conn: Connection, integration_id: str, limit: int | None, quality: dict) -> None:
    conn.execute(update(integrations).where(integrations.c.id == integration_id)
                 .values(provider_daily_limit=limit, messaging_quality=quality))


def set_messaging_quality(conn: Connection, integration_id: str, quality: dict) -> None:
    conn.execute(update(integrations).where(integrations.c.id == integration_id).values(messaging_quality=quality))
