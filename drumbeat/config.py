"""Settings from the environment (API.md, Bootstrap). Reading them opens nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_FILE = "drumbeat.db"
LOCAL_URL = "http://127.0.0.1:8000"  # notification links without DRUMBEAT_PUBLIC_URL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRUMBEAT_", extra="ignore")

    database_url: str | None = None
    secret_key: str | None = None
    sweep_seconds: float = 60.0
    tick_seconds: float = 1.0
    max_body_bytes: int = 20 * 1024 * 1024
    lease_seconds: float = 120.0
    # How long start and resume wait for the connection test of a key marked failed in the
    # last run (issue 21): one that does not answer in time keeps its mark.
    probe_timeout_seconds: float = 5.0
    # Where people reach this deployment: unsubscribe links in every email (required for
    # a campaign with an email step) and links in notification emails. Unset means "not
    # configured": notifications then link to LOCAL_URL, and email campaigns are refused.
    public_url: str | None = None
    smtp_url: str | None = None
    # Argon2id parameters for new password hashes (services/passwords.py): the default is
    # argon2-cffi's (RFC 9106 low-memory: t=3, m=64 MiB, p=4); `owasp_minimum` is lighter.
    # `test` is for the test suite only. A wrong value stops every command at start.
    password_hash_profile: Literal["rfc9106_low_memory", "owasp_minimum", "test"] = "rfc9106_low_memory"  # smtp://user:pass@host:port?from=alerts@example.com&starttls=true

    def resolved_database_url(self) -> str:
        """SQLAlchemy URL: plain postgresql:// means psycopg 3; unset means a local SQLite file."""
        url = self.database_url or f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
