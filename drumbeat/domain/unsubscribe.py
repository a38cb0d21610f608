"""One-click unsubscribe tokens (issue 20; RFC 8058): `{public_url}/u/{token}` in every email.

A token names one lead and the day it was issued, signed with HMAC-SHA256 over (workspace,
lead id, issued day) under a key derived from the secret key for this purpose only
(store.secrets.SecretBox.derive_key). It is 27 bytes, URL-safe base64 without padding
(36 characters): the lead id (8 bytes), the issued day (3 bytes, days since 1970-01-01)
and the first 16 bytes of the MAC. Nothing in it can be changed or guessed without the
key, and lead ids in a row give tokens with nothing in common, so tokens cannot be
enumerated. A token is valid for VALID_DAYS days after its issued day: unsubscribe
links are used from old emails, and the worst a stolen one can do is unsubscribe its
own lead.

Pure: the caller reads the lead's workspace (the token does not carry it) and compares
in constant time through `verify`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, timedelta

# A test send's link names no lead (no lead has id 0) and no workspace: it is genuine
# and unsubscribes nobody (a test message in the operator's inbox must not carry a real
# lead's link).
NO_LEAD = 0
TEST_WORKSPACE = ""
VALID_DAYS = 365  # at least 90 (issue 20): a year of old emails still unsubscribe
KEY_PURPOSE = "unsubscribe-token"  # SecretBox.derive_key's label: this key signs nothing else
PATH = "/u/"

_EPOCH = date(1970, 1, 1)
_LEAD_BYTES, _DAY_BYTES, _MAC_BYTES = 8, 3, 16
_TOKEN_BYTES = _LEAD_BYTES + _DAY_BYTES + _MAC_BYTES


@dataclass(frozen=True)
class Claim:
    """What a well-formed token says; `verify` decides whether to believe it."""

    lead_id: int
    issued: date
    mac: bytes


def _mac(key: bytes, workspace_id: str, lead_id: int, issued: date) -> bytes:
    message = b"\x00".join([b"unsubscribe", workspace_id.encode(), str(lead_id).encode(),
                            issued.isoformat().encode()])
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def issue(key: bytes, workspace_id: str, lead_id: int, today: date) -> str:
    day = (today - _EPOCH).days
    raw = lead_id.to_bytes(_LEAD_BYTES, "big") + day.to_bytes(_DAY_BYTES, "big") + \
        _mac(key, workspace_id, lead_id, today)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read(token: str) -> Claim | None:
    """The claim of a well-formed token, else None (wrong length, not base64url)."""
    if len(token) != _TOKEN_BYTES * 4 // 3 or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _TOKEN_BYTES or base64.urlsafe_b64encode(raw).decode() != token:  # one spelling only
        return None
    lead_id = int.from_bytes(raw[:_LEAD_BYTES], "big")
    day = int.from_bytes(raw[_LEAD_BYTES:_LEAD_BYTES + _DAY_BYTES], "big")
    try:
        issued = _EPOCH + timedelta(days=day)
    except OverflowError:
        return None
    return Claim(lead_id, issued, raw[_LEAD_BYTES + _DAY_BYTES:])


def current(claim: Claim, today: date) -> bool:
    """Issued at most VALID_DAYS days ago, and not later than tomorrow (clocks differ)."""
    return today - timedelta(days=VALID_DAYS) <= claim.issued <= today + timedelta(days=1)


def verify(key: bytes, workspace_id: str, claim: Claim, today: date) -> bool:
    """The claim was signed with this key for this workspace's lead, and is still valid."""
    genuine = hmac.compare_digest(claim.mac, _mac(key, workspace_id, claim.lead_id, claim.issued))
    return genuine and current(claim, today)


@dataclass(frozen=True)
class Links:
    """Unsubscribe links for one deployment: its public URL and its signing key."""

    public_url: str
    key: bytes

    def url(self, workspace_id: str, lead_id: int, today: date) -> str:
        return self.public_url.rstrip("/") + PATH + issue(self.key, workspace_id, lead_id, today)

    def test_url(self, today: date) -> str:
        return self.url(TEST_WORKSPACE, NO_LEAD, today)
