"""Channels, providers and the lead address each channel needs."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    WHATSAPP = "whatsapp"
    SMS = "sms"
    VOICE = "voice"
    EMAIL = "email"
    LINKEDIN = "linkedin"


class Provider(StrEnum):
    WHATSAPP_CLOUD = "whatsapp_cloud"
    TWILIO = "twilio"
    SMTP = "smtp"
    UNIPILE = "unipile"
    SANDBOX = "sandbox"


PROVIDER_CHANNELS: dict[Provider, frozenset[Channel]] = {
    Provider.WHATSAPP_CLOUD: frozenset({Channel.WHATSAPP}),
    Provider.TWILIO: frozenset({Channel.SMS, Channel.VOICE}),
    Provider.SMTP: frozenset({Channel.EMAIL}),
    Provider.UNIPILE: frozenset({Channel.LINKEDIN}),
    Provider.SANDBOX: frozenset(Channel),
}

ADDRESS_FIELD: dict[Channel, str] = {
    Channel.WHATSAPP: "phone",
    Channel.SMS: "phone",
    Channel.VOICE: "phone",
    Channel.EMAIL: "email",
    Channel.LINKEDIN: "linkedin_url",
}


class Health(StrEnum):
    ACTIVE = "active"
    DISCONNECTED = "disconnected"
    RESTRICTED = "restricted"


def integration_state(health: str, enabled: bool) -> str:
    """The state the API shows: `disabled` wins over the provider's health."""
    return health if enabled else "disabled"


# event -> (the health it sets, the healths it applies to). A reconnect does not lift a
# restriction (a person reviews those), and lifting a restriction does not reconnect.
HEALTH_EVENTS: dict[str, tuple[Health, frozenset[Health]]] = {
    "disconnected": (Health.DISCONNECTED, frozenset({Health.ACTIVE})),
    "reconnected": (Health.ACTIVE, frozenset({Health.DISCONNECTED})),
    "restricted": (Health.RESTRICTED, frozenset({Health.ACTIVE, Health.DISCONNECTED})),
    "restriction_lifted": (Health.ACTIVE, frozenset({Health.RESTRICTED})),
}


def health_after(current: str, event: str) -> str:
    """An integration's health after a health event (API call, webhook or send answer)."""
    target, applies_to = HEALTH_EVENTS[event]
    return target.value if Health(current) in applies_to else current


# --- the provider's messaging limit (Meta's tiers) -----------------------------------------

MESSAGING_TIERS: dict[str, int | None] = {
    "TIER_50": 50, "TIER_250": 250, "TIER_1K": 1_000, "TIER_10K": 10_000, "TIER_100K": 100_000,
    "TIER_UNLIMITED": None,
}


def messaging_limit(current_limit: object, max_daily: object = None) -> tuple[bool, int | None]:
    """(known, sends a day) from a quality update: Meta's newer daily number
    (`max_daily_conversations_per_business`) when given, else its tier (`current_limit`);
    unlimited is (True, None), an unknown or missing value (False, None)."""
    if max_daily is not None and str(max_daily).strip().isdigit():
        return True, int(str(max_daily).strip())
    tier = str(current_limit or "").upper()
    if tier in MESSAGING_TIERS:
        return True, MESSAGING_TIERS[tier]
    return False, None


def effective_daily_cap(daily_cap: int | None, provider_limit: int | None) -> int | None:
    """A key's daily cap: the lower of the operator's and the provider's (None: no cap)."""
    caps = [c for c in (daily_cap, provider_limit) if c is not None]
    return min(caps) if caps else None
