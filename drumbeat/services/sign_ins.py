"""Failed sign-ins, counted in the database per email and per client address (issue 8;
issue 21 moved them out of each process's memory).

After ThrottleRule.max_failures failures within its window (domain/throttle.py) for the
email tried, or from the client address, POST /login answers 429 without checking the
password, so a password cannot be guessed by trying many, whether one account is attacked
from many addresses or many accounts from one. The failures are rows of
`sign_in_failures`, so every process serving the dashboard sees the same counts, and a
restart forgets nothing.

Keys are stored as SHA-256 hashes ("email:<address>", "client:<address>"): what someone
typed into the email field (sometimes a password) is never kept in clear.

Check and count are one step: the keys are locked for the transaction (PostgreSQL:
transaction-scoped advisory locks, taken in a fixed order; SQLite's transactions are serial
already), so concurrent guesses cannot slip past the limit together, in one process or
many. Behind a reverse proxy, run the server with forwarded headers trusted (uvicorn
--proxy-headers --forwarded-allow-ips) so the client address is the visitor's, not the
proxy's — else all visitors share one address and one limit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from drumbeat.domain.throttle import ThrottleRule, wait_for_any
from drumbeat.services.context import Context
from drumbeat.store import access as store
from drumbeat.store.locks import lock_for_transaction


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def keys(email: str, client: str | None) -> list[str]:
    """The client address always; the email too when one was typed (a pasted token counts
    against the address alone)."""
    out = [_key("client", client or "unknown")]
    if email.strip():
        out.append(_key("email", email.strip().lower()))
    return out


@dataclass(frozen=True)
class SignInThrottle:
    ctx: Context
    rule: ThrottleRule = ThrottleRule()

    def attempt(self, email: str, client: str | None) -> timedelta | None:
        """None means go ahead, and the attempt already counts as a failure until
        `succeeded` says otherwise; else how long to wait (that attempt is not counted)."""
        now = self.ctx.clock()
        wanted = keys(email, client)
        with self.ctx.db.begin() as conn:
            for key in sorted(wanted):
                lock_for_transaction(conn, "sign_in:" + key)
            store.delete_failures_before(conn, now - self.rule.window)
            wait = wait_for_any([[at for _, at in store.failures_since(conn, key, now - self.rule.window)]
                                 for key in wanted], now, self.rule)
            if wait is None:
                store.insert_failures(conn, wanted, now)
        return wait

    def succeeded(self, email: str, client: str | None) -> None:
        """The attempt was right: it is no failure. A correct password also clears that
        email's count; the address keeps its earlier failures (signing in to one's own
        account must not reset the count of guesses at someone else's)."""
        client_key, *email_key = keys(email, client)
        with self.ctx.db.begin() as conn:
            for key in sorted([client_key, *email_key]):
                lock_for_transaction(conn, "sign_in:" + key)
            for key in email_key:
                store.delete_failures_of(conn, key)
            counted = store.failures_since(conn, client_key, self.ctx.clock() - self.rule.window)
            if counted:
                store.delete_failures(conn, [counted[-1][0]])  # this attempt's own, the newest
