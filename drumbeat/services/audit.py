"""The audit log (API.md v1.1, Consent): who created, changed or deleted what, and every
campaign action, newest first.

`record` is called inside the transaction of the change it records, so a change rolled
back (a 422, a conflict) leaves no entry. Campaign actions are recorded once, where the
campaign timeline is written (store.campaigns.add_timeline). Details never carry a secret
value: a credential change names its keys (domain.audit.changed_keys).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from drumbeat.domain.audit import ActorType, ObjectType, describe
from drumbeat.domain.exceptions import NotFound, ValidationFailed
from drumbeat.services.context import Actor, Context, Principal
from drumbeat.services.leads import parse_cursor
from drumbeat.store import audit as store
from drumbeat.store import workspaces as workspace_store


def record(conn: Connection, workspace_id: str, actor: Principal | Actor, action: str, object_type: str,
           object_id: str, details: dict | None, now: datetime) -> None:
    """One entry, in the caller's transaction. `actor`: the caller (a dashboard user, or an
    API token), or Actor.system(what) for the engine and the sweeper."""
    actor = Actor.of(actor) if isinstance(actor, Principal) else actor
    store.insert_event(conn, workspace_id, at=now, **audit_actor(actor), action=action,
                       object_type=ObjectType(object_type).value, object_id=str(object_id), details=details or {})


def forget_address(conn: Connection, workspace_id: str, *, phone: str | None = None,
                   email: str | None = None) -> int:
    """For an erasure (API.md v1.1, POST /erasures), in its transaction: the log keeps that
    an address was suppressed or lifted, and when, but no longer which."""
    return store.erase_address(conn, workspace_id, phone=phone, email=email)


def audit_actor(actor: Actor) -> dict:
    """The audit row's actor columns: a token call is the token's, on behalf of its user."""
    if actor.type == ActorType.SYSTEM:
        return {"actor_type": "system", "actor_id": actor.id, "user_id": None}
    if actor.token_id is not None:
        return {"actor_type": "token", "actor_id": actor.token_id, "user_id": actor.id}
    return {"actor_type": "user", "actor_id": actor.id, "user_id": actor.id}


def entry_view(row: dict) -> dict:
    actor = {"type": row["actor_type"], "id": row["actor_id"], "user_id": row["user_id"]}
    return {"id": str(row["id"]), "at": row["at"], "actor": actor, "action": row["action"],
            "object_type": row["object_type"], "object_id": row["object_id"], "details": row["details"]}


def list_events(ctx: Context, principal: Principal, *, limit: int = 50, cursor: str | None = None,
                object_type: str | None = None, actor: str | None = None) -> dict:
    """Newest first, `limit` a page; filters: one object type, one user (the entries of
    their dashboard session and of their tokens; one not of this workspace: 404)."""
    before = parse_cursor(cursor)
    if object_type is not None and object_type not in ObjectType.__members__.values():
        raise ValidationFailed([{"field": "query.object_type", "message": "must be one of "
                                 + ", ".join(t.value for t in ObjectType)}])
    with ctx.db.begin() as conn:
        if actor is not None and actor not in store.names(conn, principal.workspace_id, user_ids={actor},
                                                          campaign_ids=set(), integration_ids=set())["user"]:
            raise NotFound("user not found", {"id": actor})  # as any other workspace's id
        rows = store.list_events(conn, principal.workspace_id, before_id=before, limit=limit + 1,
                                 object_type=object_type, user_id=actor)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [entry_view(r) for r in rows], "next_cursor": str(rows[-1]["id"]) if more else None}


def people(ctx: Context, principal: Principal) -> list[dict]:
    """Whose entries the log can be filtered by: the workspace's users, then those removed
    (still named by the log), each {"id", "email", "removed"}, by email."""
    with ctx.db.begin() as conn:
        current = workspace_store.list_users(conn, principal.workspace_id)
        former = store.former_users(conn, principal.workspace_id)
    return ([{"id": u["id"], "email": u["email"], "removed": False} for u in current]
            + sorted(({"id": k, "email": v, "removed": True} for k, v in former.items()),
                     key=lambda u: (u["email"], u["id"])))


def described(ctx: Context, principal: Principal, items: list[dict]) -> list[dict]:
    """Each entry with its sentence (`text`), names read as they are now (dashboard)."""
    ids: dict[str, set[str]] = {"user": set(), "campaign": set(), "integration": set()}
    for item in items:
        if item["actor"].get("user_id"):
            ids["user"].add(item["actor"]["user_id"])
        if item["object_type"] in ids:
            ids[item["object_type"]].add(item["object_id"])
    with ctx.db.begin() as conn:
        found = store.names(conn, principal.workspace_id, user_ids=ids["user"], campaign_ids=ids["campaign"],
                            integration_ids=ids["integration"])
    return [{**item, "text": describe(item, actor_email=found["user"].get(item["actor"].get("user_id") or ""),
                                      object_name=found.get(item["object_type"], {}).get(item["object_id"]))}
            for item in items]
