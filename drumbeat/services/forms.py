"""Forms that do one thing (issue 19): a dashboard form's one-time nonce is recorded as used
together with its effect, so a second post of the same form — a double click, a reload that
posts again, the same page in two tabs — does nothing and leads to the first one's result.

Two ways, by the effect's shape:
- `joined` (the default), for a use case of one short transaction (create a campaign,
  start or pause it, add an integration): the nonce is inserted in one transaction and the
  use case runs inside it (its own transactions become savepoints), so the nonce is used
  if and only if the effect is committed.
- `joined=False`, for an effect of several transactions or one that waits on a provider
  (an import in batches, a test send, a template sync), which must not hold a transaction
  open that long: the nonce is claimed in its own transaction first, released if the
  effect is refused, and given its result URL when it is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from drumbeat.services.context import Context, Principal
from drumbeat.store import forms as store

FORM_KEEP = timedelta(days=1)  # a form left open longer than this may be posted once more

T = TypeVar("T")


@dataclass(frozen=True)
class Once(Generic[T]):
    """The effect's result, or `repeated` with the first post's result URL (None while that
    one is still under way, or when another workspace holds the nonce)."""
    result: T | None
    repeated: bool = False
    url: str | None = None


class _Joined:
    """Stands in for the engine inside one open transaction: a use case's `begin()` is a
    savepoint of it, so the use case commits (or not) with the form's nonce."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self._conn.begin_nested():
            yield self._conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        yield self._conn


def once(ctx: Context, principal: Principal, nonce: str, effect: Callable[[Context], T],
         url_of: Callable[[T], str], *, joined: bool = True) -> Once[T]:
    """Runs `effect` unless this nonce was used before. An exception from the effect leaves
    the nonce unused (the same form may be posted again) and propagates."""
    if joined:
        with ctx.db.begin() as conn:
            repeated = _claim(ctx, conn, principal, nonce)
            if repeated is not None:
                return repeated
            result = effect(replace(ctx, db=_Joined(conn)))  # type: ignore[arg-type]
            store.finish(conn, nonce, url_of(result))
            return Once(result)
    with ctx.db.begin() as conn:
        repeated = _claim(ctx, conn, principal, nonce)
    if repeated is not None:
        return repeated
    try:
        result = effect(ctx)
    except BaseException:
        with ctx.db.begin() as conn:
            store.release(conn, nonce)
        raise
    with ctx.db.begin() as conn:
        store.finish(conn, nonce, url_of(result))
    return Once(result)


def was_used(ctx: Context, principal: Principal, nonce: str) -> Once[Any] | None:
    """The earlier post of this nonce, if any (for a route that must check before it can
    even start: an import whose upload the first post consumed)."""
    with ctx.db.begin() as conn:
        used, url = store.result_of(conn, nonce, principal.workspace_id)
    return Once(None, True, url) if used else None


def _claim(ctx: Context, conn: Connection, principal: Principal, nonce: str) -> Once[Any] | None:
    now = ctx.clock()
    store.purge_before(conn, now - FORM_KEEP)
    if store.claim(conn, nonce, principal.workspace_id, now):
        return None
    return Once(None, True, store.result_of(conn, nonce, principal.workspace_id)[1])
