"""Who may do what (DESIGN.md §1): owner > operator > viewer."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    OPERATOR = "operator"
    VIEWER = "viewer"


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.OWNER: 2}


def allows(role: str, needed: Role) -> bool:
    return _RANK[Role(role)] >= _RANK[needed]
