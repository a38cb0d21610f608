"""Two owners demoting or removing each other at the same moment, on SQLite and PostgreSQL:
one wins, the other is refused, and the workspace always keeps an owner."""

from __future__ import annotations

from drumbeat.domain.exceptions import LastOwner
from drumbeat.services import access, workspaces
from drumbeat.services.context import Principal
from tests.services.test_lifecycle_races import race


def two_owners(ctx) -> tuple[Principal, Principal]:
    boot = workspaces.init_workspace(ctx, "Acme", "a@acme.test")
    a = Principal(boot["user_id"], boot["workspace_id"], "owner", "a@acme.test")
    made = workspaces.create_user(ctx, a, "b@acme.test", "owner", None)
    return a, Principal(made["id"], boot["workspace_id"], "owner", "b@acme.test")


def owners(ctx, p: Principal) -> list[str]:
    return [u["email"] for u in workspaces.list_users(ctx, p) if u["role"] == "owner"]


def test_two_owners_demoting_each_other_at_once_leave_one_owner(ctx):
    for _ in range(5):
        a, b = two_owners(ctx)
        results = race([lambda a=a, b=b: access.change_role(ctx, a, b.user_id, "viewer"),
                        lambda a=a, b=b: access.change_role(ctx, b, a.user_id, "viewer")])
        assert sorted(type(r).__name__ for r in results) == ["LastOwner", "dict"]
        assert len(owners(ctx, a)) == 1


def test_two_owners_removing_each_other_at_once_leave_one_owner(ctx):
    for _ in range(5):
        a, b = two_owners(ctx)
        results = race([lambda a=a, b=b: access.remove_user(ctx, a, b.user_id),
                        lambda a=a, b=b: access.remove_user(ctx, b, a.user_id)])
        refused = [r for r in results if isinstance(r, LastOwner)]
        assert len(refused) == 1 and refused[0].details == {"from": "owner", "action": "remove"}
        assert len(workspaces.list_users(ctx, a)) == 1 and len(owners(ctx, a)) == 1
