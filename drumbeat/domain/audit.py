"""The audit log (API.md v1.1, Consent): what counts as an entry, what an entry may say,
and each entry as one sentence for the dashboard.

Pure: an entry is the dict the API returns ({"at", "actor", "action", "object_type",
"object_id", "details"}); names (users' emails, campaigns' and integrations' current
names) are looked up by the caller and passed in.
"""

from __future__ import annotations

from enum import StrEnum

from drumbeat.domain.consent import REASON_PHRASES
from drumbeat.domain.explanations import CHANNEL_NAMES
from drumbeat.domain.reasons import PauseReason


class ObjectType(StrEnum):
    INTEGRATION = "integration"
    USER = "user"
    TOKEN = "token"
    WEBHOOK = "webhook"
    SUPPRESSION = "suppression"
    WORKSPACE = "workspace"
    CAMPAIGN = "campaign"
    REPLY = "reply"  # a lead's reply in the inbox, marked handled (issue 22)


class ActorType(StrEnum):
    USER = "user"  # signed in to the dashboard
    TOKEN = "token"  # an API call with that user's bearer token
    SYSTEM = "system"  # the engine, the sweeper, a provider's callback; actor id names which


CREATED = "created"
UPDATED = "updated"
DELETED = "deleted"

# The campaign timeline's actions that are the audit log's too: what a person did to a
# campaign, and every change of status or of a channel's hold, whoever made it. Left out:
# the engine's bookkeeping (re-clamps, in-doubt leads, a provider's quality signal).
CAMPAIGN_ACTIONS = frozenset({
    "create", "edit", "duplicate", "schedule", "unschedule", "start", "pause", "auto_pause", "resume",
    "cancel", "complete", "fail", "hold_placed", "hold_lifted", "leads_canceled", "lead_resolved", "test_send",
})


def changed_keys(before: dict, after: dict) -> list[str]:
    """The keys whose value was added, replaced or removed — names only, never values, so
    a credential's change can be logged without its secret."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k) or
                  (k in before) != (k in after))


def field_changes(before: dict, after: dict, fields: tuple[str, ...]) -> dict:
    """{field: {"from", "to"}} for each of `fields` whose value differs (not secrets)."""
    return {f: {"from": before.get(f), "to": after[f]} for f in fields if f in after and before.get(f) != after[f]}


# --- in words ------------------------------------------------------------------------------

_CAMPAIGN_VERBS = {
    "create": "created", "edit": "edited", "schedule": "scheduled", "unschedule": "unscheduled",
    "start": "started", "pause": "paused", "auto_pause": "paused", "resume": "resumed", "cancel": "canceled",
    "complete": "completed", "fail": "marked as failed", "test_send": "sent a test message of",
    "leads_canceled": "canceled leads of", "lead_resolved": "settled an in-doubt lead of",
}

_FIELD_WORDS = {"label": "the label", "daily_cap": "the daily cap", "config": "the settings",
                "health": "the health", "role": "the role", "events": "the events", "url": "the address",
                "opt_out_words": "the opt-out words", "opt_in_words": "the opt-in words",
                "contact_cap": "the contact cap", "auto_replies": "the automatic replies"}


def actor_words(actor: dict, email: str | None) -> str:
    """Who acted: the user's email ("(API token)" after it for an API call), or Drumbeat."""
    if actor.get("type") == ActorType.SYSTEM:
        return "Drumbeat"
    who = email or f"user {actor.get('user_id') or actor.get('id')}"
    return f"{who} (API token)" if actor.get("type") == ActorType.TOKEN else who


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _object_words(object_type: str, object_id: str, details: dict, name: str | None) -> str:
    if object_type == ObjectType.INTEGRATION:
        return f"integration '{name or details.get('label') or object_id}'"
    if object_type == ObjectType.CAMPAIGN:
        return f"campaign '{name or details.get('name') or object_id}'"
    if object_type == ObjectType.USER:
        return f"user {details.get('email') or name or object_id}"
    if object_type == ObjectType.WEBHOOK:
        return f"webhook {details.get('url') or name or object_id}"
    if object_type == ObjectType.TOKEN:
        owner = details.get("user_email") or name
        return f"an API token of {owner}" if owner else "an API token"
    if object_type == ObjectType.SUPPRESSION:
        return f"the suppression of {_address(details, object_id)}"
    if object_type == ObjectType.REPLY:
        return f"a reply in campaign '{name or details.get('campaign_name') or details.get('campaign_id') or '?'}'"
    return f"workspace '{details['name']}'" if details.get("name") else "the workspace"


def _address(details: dict, object_id: str) -> str:
    if details.get("erased"):
        return "an erased address"
    return details.get("phone") or details.get("email") or f"entry {object_id}"


def _change_words(details: dict) -> list[str]:
    """What an update changed: fields with their old and new values where they are short,
    credentials and settings by key name only."""
    parts = []
    for field, change in (details.get("changes") or {}).items():
        words = _FIELD_WORDS.get(field, f"the {field.replace('_', ' ')}")
        short = all(isinstance(change.get(k), str | int | None) and len(str(change.get(k))) <= 40
                    for k in ("from", "to"))
        parts.append(f"{words} from {change['from']} to {change['to']}" if short else words)
    if details.get("credentials"):
        parts.append(f"the credentials ({', '.join(details['credentials'])})")
    if details.get("config"):
        parts.append(f"the settings ({', '.join(details['config'])})")
    return parts


def _update_words(who: str, what: str, details: dict) -> str:
    changes = details.get("changes") or {}
    if "templates_synced" in details:
        n = details["templates_synced"]
        return f"{who} synced the message templates of {what} ({n} template{'' if n == 1 else 's'})"
    if "subscription_status" in changes:
        return f"{who} {'canceled' if changes['subscription_status']['to'] == 'canceled' else 'renewed'} " \
               "the subscription"
    if set(changes) == {"enabled"} and not details.get("credentials") and not details.get("config"):
        return f"{who} {'enabled' if changes['enabled']['to'] else 'disabled'} {what}"
    parts = _change_words({**details, "changes": {k: v for k, v in changes.items() if k != "enabled"}})
    toggled = "" if "enabled" not in changes else " and enabled it" if changes["enabled"]["to"] else " and disabled it"
    return (f"{who} changed {_join(parts)} of {what}" if parts else f"{who} changed {what}") + toggled


def describe(entry: dict, *, actor_email: str | None = None, object_name: str | None = None) -> str:
    """One entry as a sentence: "ops@acme.test changed the credentials (access_token) of
    integration 'Acme WA'", "ops@acme.test paused campaign 'Spring'"."""
    who = actor_words(entry["actor"], actor_email)
    details = entry.get("details") or {}
    action, kind = entry["action"], entry["object_type"]
    what = _object_words(kind, entry["object_id"], details, object_name)
    if kind == ObjectType.CAMPAIGN:
        return who + " " + _campaign_words(action, what, details)
    if kind == ObjectType.SUPPRESSION:
        if action == CREATED and entry["object_id"] == "import":
            return f"{who} imported {details.get('accepted', 0)} addresses to the suppression list"
        if action == UPDATED and details.get("erased"):
            return (f"{who} erased a person at their request (by {details['erased']}; "
                    f"{details.get('leads_erased', 0)} leads erased, the address kept only as a hash)")
        address = _address(details, entry["object_id"])
        if action == CREATED:
            why = REASON_PHRASES.get(details.get("reason") or "")
            return f"{who} suppressed {address}" + (f" ({why})" if why else "")
        if action == DELETED and details.get("opted_in"):
            return f"{who} lifted {what}: the person opted back in (START)"
        if action == DELETED:
            return f"{who} deleted {what}; {address} may be contacted again"
    if action == CREATED:
        if kind == ObjectType.USER and details.get("role"):
            return f"{who} added {what} as {details['role']}"
        if kind in (ObjectType.TOKEN, ObjectType.WORKSPACE):
            return f"{who} created {what}"
        return f"{who} added {what}"
    if action == DELETED and kind == ObjectType.USER and "tokens_revoked" in details:
        n = details["tokens_revoked"]
        return f"{who} removed {what} ({n} API token{'' if n == 1 else 's'} revoked, signed out everywhere)"
    if action == DELETED:
        return f"{who} {'revoked' if kind == ObjectType.TOKEN else 'removed'} {what}"
    if action == UPDATED and kind == ObjectType.REPLY and "handled" in (details.get("changes") or {}):
        return f"{who} marked {what} as handled"
    if action == UPDATED and kind == ObjectType.USER and set(details.get("changes") or {}) == {"role"}:
        role = details["changes"]["role"]
        return f"{who} made {what} {role['to']} (was {role['from']})"
    if action == UPDATED:
        return _update_words(who, what, details)
    return f"{who} {action.replace('_', ' ')} {what}"


def _campaign_words(action: str, what: str, details: dict) -> str:
    reason = details.get("reason")
    channel = CHANNEL_NAMES.get(details.get("channel") or "", details.get("channel") or "a")
    try:
        why = f" ({PauseReason(reason).value.replace('_', ' ')})" if reason else ""
    except ValueError:
        why = ""
    if action == "hold_placed":
        return f"held the {channel} channel of {what}{why}"
    if action == "hold_lifted":
        return f"lifted the hold on the {channel} channel of {what}"
    if action == "duplicate":
        return f"created {what} as a copy"
    verb = _CAMPAIGN_VERBS.get(action, action.replace("_", " "))
    return f"{verb} {what}{why if action in ('pause', 'auto_pause') and reason != 'manual' else ''}"
