"""Access that can be taken back (issue 21): the rules alone.

Pure: counts, roles and times are handed in (services/access.py reads and writes them).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from drumbeat.domain.roles import Role

# A token's last use is written at most this often: one conditional UPDATE a minute per
# token, not one per request.
LAST_USED_EVERY = timedelta(minutes=1)


def leaves_no_owner(role_before: str, role_after: str | None, owners: int) -> bool:
    """Would this change leave the workspace without an owner? `role_after` None means the
    user is removed; `owners` counts the workspace's owners before the change."""
    return role_before == Role.OWNER and role_after != Role.OWNER and owners <= 1


def may_manage_tokens_of(caller_id: str, caller_role: str, user_id: str) -> bool:
    """Anyone manages their own tokens; an owner, those of every user of the workspace."""
    return user_id == caller_id or caller_role == Role.OWNER


def last_use_is_stale(last_used_at: datetime | None, now: datetime, every: timedelta = LAST_USED_EVERY) -> bool:
    """Whether a token's use now should be written (never written, or longer ago than `every`)."""
    return last_used_at is None or now - last_used_at >= every
