"""The workspace contact cap (DESIGN.md §9, API.md v1.1 Consent): no person, known by
address (phone, email or LinkedIn profile), is contacted more than `max` times in any
`days` days, across every campaign of the workspace. A lead over the cap waits, as a
campaign cap makes it wait; it never fails.

What counts as a contact: every attempt that may have reached the person (sending, sent,
delivered, read, in doubt), by when it started. Failed and key-error attempts reached
nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from drumbeat.domain.leads import AttemptStatus

COUNTED_ATTEMPT_STATUSES = (AttemptStatus.SENDING, AttemptStatus.SENT, AttemptStatus.DELIVERED,
                            AttemptStatus.READ, AttemptStatus.IN_DOUBT)


@dataclass(frozen=True)
class ContactCap:
    max: int
    days: int

    @classmethod
    def from_setting(cls, setting: dict | None) -> ContactCap | None:
        """The workspace's `contact_cap` setting ({"max", "days"} or null)."""
        if not setting:
            return None
        cap = cls(int(setting["max"]), int(setting["days"]))
        if cap.max < 1 or cap.days < 1:
            raise ValueError("a contact cap allows at least one contact in at least one day")
        return cap

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.days)

    def since(self, now: datetime) -> datetime:
        """Contacts started after this instant count now."""
        return now - self.period


def contact_cap_wait(cap: ContactCap, contacts: list[datetime], now: datetime) -> datetime | None:
    """None when the person may be contacted now; else when they may be: the instant
    enough of the counted contacts (`contacts`: their start times, any order) have left
    the window that one more keeps within `max`. A contact at t counts while now < t + days."""
    counted = sorted(at for at in contacts if at > cap.since(now))
    over = len(counted) - cap.max
    if over < 0:
        return None
    return counted[over] + cap.period
