"""The one place that builds engines, stores and channels from settings."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from drumbeat.channels.base import ChannelAdapter
from drumbeat.config import Settings
from drumbeat.services.context import Context
from drumbeat.store.db import make_engine, migrate
from drumbeat.store.leads import hash_unhashed_suppressions
from drumbeat.store.secrets import ADDRESS_HASH_PURPOSE, SecretBox, key_beside


def build_context(settings: Settings | None = None, *, run_migrations: bool = True,
                  pre_ping: bool = True) -> Context:
    settings = settings or Settings()
    url = settings.resolved_database_url()
    engine = make_engine(url, pre_ping=pre_ping)
    if run_migrations:
        migrate(engine)
    key = settings.secret_key
    if key is None:
        if engine.dialect.name != "sqlite":
            raise SystemExit("DRUMBEAT_SECRET_KEY is required with PostgreSQL (a Fernet key)")
        key = key_beside(Path(make_url(url).database))
    box = SecretBox(key)
    if run_migrations:  # entries made before migration 0013 get their address hash (it needs the key)
        with engine.begin() as conn:
            hash_unhashed_suppressions(conn, box.derive_key(ADDRESS_HASH_PURPOSE))
    return Context(db=engine, box=box, public_url=settings.public_url,
                   probe_timeout_seconds=settings.probe_timeout_seconds)


def build_adapters(client: httpx.AsyncClient | None = None, *, concurrency: int = 32,
                   public_url: str | None = None) -> dict[str, ChannelAdapter]:
    """One adapter per provider, shared by every campaign a worker serves. The HTTP adapters
    share one client that keeps a connection open for each of the `concurrency` calls a
    worker may have in flight (channels/transport.py); pass one in to choose its timeouts or
    transport."""
    from drumbeat.channels import registry

    return registry.adapters(client if client is not None else registry.client(max(32, concurrency)), public_url)


async def close_adapters(adapters: dict[str, ChannelAdapter]) -> None:
    """Close the HTTP client(s) the adapters share (a worker's, once it has stopped)."""
    for client in {id(c): c for c in (getattr(a, "client", None) for a in adapters.values())
                   if isinstance(c, httpx.AsyncClient)}.values():
        await client.aclose()


def build_worker(ctx: Context, settings: Settings, *, concurrency: int = 32):
    from drumbeat.engine.metrics import process_metrics
    from drumbeat.engine.worker import Worker

    return Worker(ctx, build_adapters(concurrency=concurrency, public_url=settings.public_url), concurrency=concurrency,
                  tick_seconds=settings.tick_seconds, lease_seconds=settings.lease_seconds,
                  metrics=process_metrics())
