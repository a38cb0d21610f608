"""Password hashing: Argon2id through argon2-cffi (a maintained binding of the reference
implementation), with older scrypt hashes still accepted and replaced at the next sign-in.

Parameters (DRUMBEAT_PASSWORD_HASH_PROFILE):
- `rfc9106_low_memory` (the default): argon2-cffi's own default, RFC 9106's second
  recommended profile — Argon2id, t=3, m=64 MiB, p=4 — above OWASP's current minimum
  (m=19 MiB, t=2, p=1). About a quarter of a second per hash on one busy core.
- `owasp_minimum`: m=19 MiB, t=2, p=1, for a small server that signs in many people.
- `test`: t=1, m=1 MiB — for the test suite only (tests/conftest.py sets it); never in
  production.

A hash made with other parameters than the current ones (a scrypt hash of Drumbeat before
issue 21, or Argon2id with an older profile) verifies as before and `needs_rehash` says so;
the sign-in then stores a new hash (services.dashboard.sign_in_with_password).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from drumbeat.config import Settings

PROFILES = {
    "rfc9106_low_memory": RFC_9106_LOW_MEMORY,
    "owasp_minimum": RFC_9106_LOW_MEMORY.__class__(type=Type.ID, version=19, salt_len=16, hash_len=32,
                                                   time_cost=2, memory_cost=19 * 1024, parallelism=1),
    "test": RFC_9106_LOW_MEMORY.__class__(type=Type.ID, version=19, salt_len=16, hash_len=32,
                                          time_cost=1, memory_cost=1024, parallelism=1),
}
DEFAULT_PROFILE = "rfc9106_low_memory"


@cache
def _hasher(profile: str) -> PasswordHasher:
    if profile not in PROFILES:
        raise ValueError(f"DRUMBEAT_PASSWORD_HASH_PROFILE must be one of {', '.join(PROFILES)}")
    return PasswordHasher.from_parameters(PROFILES[profile])


def hasher() -> PasswordHasher:
    """The hasher of the configured profile (read from the environment, once per profile)."""
    return _hasher(Settings().password_hash_profile)


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    try:
        return hasher().verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True for a hash that is not Argon2id with the current parameters."""
    if not stored.startswith("$argon2id$"):
        return True
    try:
        return hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return True


def dummy_hash() -> str:
    """A hash of nothing anyone knows, verified when no user has the email tried, so a
    sign-in costs the same whether or not the email exists."""
    return _dummy(Settings().password_hash_profile)


@cache
def _dummy(profile: str) -> str:
    return _hasher(profile).hash(base64.b64encode(hashlib.sha256(b"no such user").digest()).decode())


# --- before issue 21: scrypt (N=2^14, r=8, p=1), verified only, never made ------------------

def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        candidate = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                   maxmem=256 * 1024 * 1024)
    except ValueError:
        return False
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def scrypt_hash(password: str, salt: bytes) -> str:
    """An old-style hash, for tests of the upgrade path only."""
    n, r, p = 2**14, 8, 1
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
