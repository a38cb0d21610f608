"""The workspace contact cap as a pure rule: who may be contacted now, and when the others may."""

from datetime import UTC, datetime, timedelta

import pytest

from drumbeat.domain.contact_cap import ContactCap, contact_cap_wait

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def test_a_person_under_the_cap_may_be_contacted_now():
    cap = ContactCap(max=2, days=7)
    assert contact_cap_wait(cap, [], NOW) is None
    assert contact_cap_wait(cap, [days_ago(1)], NOW) is None


def test_a_person_at_the_cap_waits_until_the_oldest_counted_contact_leaves_the_window():
    cap = ContactCap(max=2, days=7)
    assert contact_cap_wait(cap, [days_ago(1), days_ago(3)], NOW) == days_ago(3) + timedelta(days=7)


def test_contacts_older_than_the_window_do_not_count():
    cap = ContactCap(max=1, days=7)
    assert contact_cap_wait(cap, [days_ago(7), days_ago(30)], NOW) is None  # exactly d days ago: left
    assert contact_cap_wait(cap, [days_ago(6.9)], NOW) == days_ago(6.9) + timedelta(days=7)


def test_a_person_over_the_cap_waits_until_enough_contacts_leave_for_one_more():
    """Over by two (a cap lowered after the contacts): the third oldest must leave too."""
    cap = ContactCap(max=1, days=7)
    contacts = [days_ago(0.5), days_ago(2), days_ago(4)]
    assert contact_cap_wait(cap, contacts, NOW) == days_ago(0.5) + timedelta(days=7)
    at = contact_cap_wait(cap, contacts, NOW)
    assert contact_cap_wait(cap, contacts, at) is None  # and then it may


def test_the_setting_is_read_from_the_workspace_and_null_means_no_cap():
    assert ContactCap.from_setting(None) is None
    assert ContactCap.from_setting({"max": 3, "days": 30}) == ContactCap(3, 30)
    with pytest.raises(ValueError):
        ContactCap.from_setting({"max": 0, "days": 7})
