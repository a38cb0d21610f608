"""Workspaces, users, tokens and the subscription."""

from __future__ import annotations

from drumbeat.domain.audit import CREATED, UPDATED, field_changes
from drumbeat.domain.consent import OPT_IN_WORDS, OPT_OUT_WORDS, keyword_conflicts
from drumbeat.domain.exceptions import ValidationFailed
from drumbeat.services import access, audit
from drumbeat.services.context import Actor, Context, Principal
from drumbeat.services.holds import hold_for_subscription
from drumbeat.store import workspaces as store


def init_workspace(ctx: Context, name: str, owner_email: str, password_hash: str | None = None) -> dict:
    now = ctx.clock()
    with ctx.db.begin() as conn:
        workspace_id = store.insert_workspace(conn, name, now)
        user_id, token = store.insert_user(conn, workspace_id, owner_email, "owner", password_hash, now)
        setup = Actor.system("init_workspace")
        audit.record(conn, workspace_id, setup, CREATED, "workspace", workspace_id, {"name": name}, now)
        _record_user(conn, workspace_id, setup, user_id, owner_email, "owner", now)
    return {"workspace_id": workspace_id, "user_id": user_id, "token": token}


def create_user(ctx: Context, principal: Principal, email: str, role: str, password_hash: str | None) -> dict:
    with ctx.db.begin() as conn:
        if store.user_exists(conn, principal.workspace_id, email):
            raise ValidationFailed([{"field": "email", "message": "a user with this email already exists"}])
        now = ctx.clock()
        user_id, token = store.insert_user(conn, principal.workspace_id, email, role, password_hash, now)
        _record_user(conn, principal.workspace_id, principal, user_id, email, role, now)
    return {"id": user_id, "email": email, "role": role, "token": token}


def _record_user(conn, workspace_id: str, actor: Principal | Actor, user_id: str, email: str, role: str,
                 now) -> None:
    """A new user, and the first token made with it (store.insert_user)."""
    audit.record(conn, workspace_id, actor, CREATED, "user", user_id, {"email": email, "role": role}, now)
    audit.record(conn, workspace_id, actor, CREATED, "token", store.token_ids(conn, user_id)[-1],
                 {"user_id": user_id, "user_email": email}, now)


def list_users(ctx: Context, principal: Principal) -> list[dict]:
    """The workspace's users by email: {"id", "email", "role"}."""
    with ctx.db.begin() as conn:
        return store.list_users(conn, principal.workspace_id)


def authenticate(ctx: Context, token: str) -> Principal | None:
    """The token's user (its last use noted at most once a minute: services.access)."""
    return access.authenticate(ctx, token)


def workspace_view(row) -> dict:
    replies = row["auto_replies"] or {}
    return {"id": row["id"], "name": row["name"], "subscription_status": row["subscription_status"],
            "opt_out_words": list(row["opt_out_words"] or []), "opt_in_words": list(row["opt_in_words"] or []),
            "default_opt_out_words": [w.upper() for w in OPT_OUT_WORDS],
            "default_opt_in_words": [w.upper() for w in OPT_IN_WORDS],
            "contact_cap": row["contact_cap"],
            "auto_replies": {"stop": replies.get("stop"), "help": replies.get("help")}}


def get_workspace(ctx: Context, principal: Principal) -> dict:
    with ctx.db.begin() as conn:
        row = store.get_workspace(conn, principal.workspace_id)
    return workspace_view(row)


SETTINGS = ("opt_out_words", "opt_in_words", "contact_cap", "auto_replies")


def update_settings(ctx: Context, principal: Principal, changes: dict) -> dict:
    """The workspace's consent settings (API.md v1.1, PATCH /workspace), validated by the
    API's model (schemas.WorkspaceUpdate): `changes` holds only the fields given;
    `auto_replies` merges key by key. A word may not be both an opt-out and an opt-in word
    (the defaults included): 422, nothing changes."""
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise ValidationFailed([{"field": k, "message": "unknown field"} for k in unknown])
    with ctx.db.begin() as conn:
        row = store.get_workspace(conn, principal.workspace_id)
        values = dict(changes)
        if "auto_replies" in changes:
            values["auto_replies"] = {**{"stop": None, "help": None}, **(row["auto_replies"] or {}),
                                      **changes["auto_replies"]}
        words_out = values.get("opt_out_words", row["opt_out_words"]) or []
        words_in = values.get("opt_in_words", row["opt_in_words"]) or []
        both = keyword_conflicts(words_out, words_in)
        if both:
            field = "opt_in_words" if "opt_in_words" in changes else "opt_out_words"
            raise ValidationFailed([{"field": field, "message": "a word cannot both opt out and opt in: "
                                     + ", ".join(sorted(both))}])
        if values:
            store.set_consent_settings(conn, principal.workspace_id, **values)
        changed = field_changes(row, values, SETTINGS)
        if changed:
            audit.record(conn, principal.workspace_id, principal, UPDATED, "workspace", principal.workspace_id,
                         {"changes": changed}, ctx.clock())
        row = store.get_workspace(conn, principal.workspace_id)
    return workspace_view(row)


def set_subscription(ctx: Context, principal: Principal, status: str) -> dict:
    """Canceled: every channel of every sending campaign is held (`subscription_canceled`)
    in the same transaction, so nothing more is sent; scheduled and paused campaigns cannot
    start or resume (the subscription gate). Active again changes no campaign by itself:
    the sweeper lifts those holds and resumes what they paused (DESIGN.md §4, §5)."""
    with ctx.db.begin() as conn:
        before = store.get_workspace(conn, principal.workspace_id)["subscription_status"]
        store.set_subscription(conn, principal.workspace_id, status)
        if status != before:
            audit.record(conn, principal.workspace_id, principal, UPDATED, "workspace", principal.workspace_id,
                         {"changes": {"subscription_status": {"from": before, "to": status}}}, ctx.clock())
        if status == "canceled" and before != "canceled":
            hold_for_subscription(conn, principal.workspace_id, ctx.clock(), Actor.system("subscription_canceled"))
    return get_workspace(ctx, principal)
