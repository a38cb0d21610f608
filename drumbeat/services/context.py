"""What every use case is handed: the database, the secret box and the clock."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from drumbeat.clock import Clock, utcnow
from drumbeat.domain import unsubscribe
from drumbeat.store.secrets import SecretBox, bind_address_key


@dataclass(frozen=True)
class Context:
    db: Engine
    box: SecretBox
    clock: Clock = utcnow
    # DRUMBEAT_PUBLIC_URL: where recipients reach this deployment. Without it no email has
    # an unsubscribe link, so no campaign with an email step may start (gate `unsubscribe`).
    public_url: str | None = None
    # The bound on each connection test a start or resume runs on a key marked failed in
    # the last run (DRUMBEAT_PROBE_TIMEOUT_SECONDS; services.key_checks).
    probe_timeout_seconds: float = 5.0

    def unsubscribe_links(self) -> unsubscribe.Links | None:
        if not self.public_url:
            return None
        return unsubscribe.Links(self.public_url, self.box.derive_key(unsubscribe.KEY_PURPOSE))

    def __post_init__(self) -> None:
        # Suppressions hash addresses with a key derived from the secret key (store.secrets).
        # A context without a database (rendering the API reference) has nothing to hash.
        if self.db is not None:
            bind_address_key(self.db, self.box)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: one user of one workspace."""

    user_id: str
    workspace_id: str
    role: str
    email: str = ""
    token_id: str | None = None  # the API token that authenticated the call; None in the dashboard


@dataclass(frozen=True)
class Actor:
    type: str  # "user" | "system"
    id: str | None
    token_id: str | None = None  # a user's action made through the API: the audit log names the token

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls("user", principal.user_id, principal.token_id)

    @classmethod
    def system(cls, detector: str) -> Actor:
        return cls("system", detector)
