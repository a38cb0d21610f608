"""The audit log's consent entries (issue 20): an owner's delete of a suppression, a CSV
import of the list, and an erasure are recorded with their actor; an erasure leaves the
erased address nowhere in the log. Both databases."""

from __future__ import annotations

from tests.api.test_audit import entries
from tests.api.test_campaigns import API

ADDRESS = "ada@example.com"


def suppression_entries(client, owner) -> list[dict]:
    return entries(client, owner["headers"], object_type="suppression")


def test_deleting_a_suppression_is_recorded_with_its_owner_address_and_reason(client, owner):
    h = owner["headers"]
    added = client.post(f"{API}/suppressions", json={"email": ADDRESS}, headers=h).json()
    assert client.delete(f"{API}/suppressions/{added['id']}", headers=h).status_code == 204

    deleted = suppression_entries(client, owner)[0]
    assert (deleted["action"], deleted["object_id"]) == ("deleted", added["id"])
    assert deleted["actor"]["user_id"] == owner["user_id"]
    assert deleted["details"] == {"email": ADDRESS, "reason": "manual"}


def test_a_refused_delete_records_nothing(client, owner):
    before = suppression_entries(client, owner)
    assert client.delete(f"{API}/suppressions/424242", headers=owner["headers"]).status_code == 404
    assert suppression_entries(client, owner) == before


def test_an_import_is_one_entry_with_its_counts(client, owner):
    body = "email,reason\nada@example.com,\nbob@example.com,bounce\nnot-an-address,\n"
    response = client.post(f"{API}/suppressions/import", content=body.encode(),
                           headers={**owner["headers"], "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text

    imported = [e for e in suppression_entries(client, owner) if e["object_id"] == "import"]
    assert len(imported) == 1
    assert imported[0]["details"] == {"reason": "import", "accepted": 2, "rejected": 1}
    assert imported[0]["actor"]["user_id"] == owner["user_id"]


def test_an_erasure_is_recorded_by_its_owner_and_the_address_is_nowhere_in_the_log(client, owner):
    h = owner["headers"]
    client.post(f"{API}/suppressions", json={"email": ADDRESS}, headers=h)
    response = client.post(f"{API}/erasures", json={"email": ADDRESS}, headers=h)
    assert response.status_code == 200, response.text

    log = client.get(f"{API}/audit", params={"limit": 500}, headers=h)
    assert ADDRESS not in log.text
    erased = suppression_entries(client, owner)[0]
    assert erased["action"] == "updated"
    assert erased["details"] == {"erased": "email", "leads_erased": 0}
    assert erased["actor"]["user_id"] == owner["user_id"]
