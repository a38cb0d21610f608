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
