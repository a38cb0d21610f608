"""Erasure (issue 20; API.md v1.1 Consent): what of a person Drumbeat forgets, and what it
keeps so they are still never contacted.

Every lead of the workspace with the address loses its personal fields: names become the
marker, addresses become empty (an empty address never matches a search, an import or a
claim), attributes become empty. Its state, step, time zone and attempts stay, so the
campaign's counts and history stay right. Texts the person wrote or that may echo their
address (STOP replies, providers' error messages) are blanked. The suppression entry keeps
only the keyed hash of the address (domain.consent), which imports and claims match.
"""

from __future__ import annotations

ERASED = "[erased]"

# The lead columns an erasure writes, and what it writes there.
ERASED_LEAD_FIELDS: dict[str, object] = {
    "first_name": ERASED,
    "last_name": ERASED,
    "phone": None,
    "email": None,
    "linkedin_url": None,
    "attributes": {},
}
