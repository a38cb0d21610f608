"""The rules of revocable access (domain/access.py): the last owner, whose tokens one may
manage, and when a token's last use is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drumbeat.domain.access import last_use_is_stale, leaves_no_owner, may_manage_tokens_of

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("before", "after", "owners", "refused"), [
    ("owner", "operator", 1, True),   # demoting the only owner
    ("owner", None, 1, True),         # removing the only owner
    ("owner", "viewer", 2, False),    # another owner remains
    ("owner", None, 2, False),
    ("owner", "owner", 1, False),     # no change is no demotion
    ("operator", None, 1, False),     # removing someone else
    ("viewer", "owner", 1, False),    # promoting
])
def test_only_a_change_that_leaves_no_owner_is_refused(before, after, owners, refused):
    assert leaves_no_owner(before, after, owners) is refused


def test_anyone_manages_their_own_tokens_and_an_owner_everyones():
    assert may_manage_tokens_of("u1", "viewer", "u1")
    assert not may_manage_tokens_of("u1", "viewer", "u2")
    assert not may_manage_tokens_of("u1", "operator", "u2")
    assert may_manage_tokens_of("u1", "owner", "u2")


def test_a_tokens_use_is_written_when_never_written_or_a_minute_old():
    assert last_use_is_stale(None, NOW)
    assert not last_use_is_stale(NOW - timedelta(seconds=59), NOW)
    assert last_use_is_stale(NOW - timedelta(seconds=60), NOW)
