"""The workspace's consent settings over HTTP (API.md v1.1: GET and PATCH /workspace)."""

from __future__ import annotations

import pytest

from tests.api.test_campaigns import API, fields_of
from tests.api.test_leads import headers_for


def patch(client, headers, body):
    return client.patch(f"{API}/workspace", json=body, headers=headers)


def test_the_owner_sets_words_cap_and_replies_and_every_role_sees_them(client, ctx, owner):
    body = {"opt_out_words": ["Halt", " Abmelden "], "opt_in_words": ["Anmelden"],
            "contact_cap": {"max": 3, "days": 30}, "auto_replies": {"stop": "You will get no more messages."}}
    r = patch(client, owner["headers"], body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["opt_out_words"] == ["Halt", "Abmelden"] and got["opt_in_words"] == ["Anmelden"]
    assert got["contact_cap"] == {"max": 3, "days": 30}
    assert got["auto_replies"] == {"stop": "You will get no more messages.", "help": None}
    assert "STOP" in got["default_opt_out_words"] and "START" in got["default_opt_in_words"]
    viewer = client.get(f"{API}/workspace", headers=headers_for(ctx, owner, "viewer")).json()
    assert {k: viewer[k] for k in ("opt_out_words", "opt_in_words", "contact_cap", "auto_replies")} == \
        {k: got[k] for k in ("opt_out_words", "opt_in_words", "contact_cap", "auto_replies")}


def test_fields_left_out_stay_and_auto_replies_merge_key_by_key(client, owner):
    h = owner["headers"]
    patch(client, h, {"opt_out_words": ["halt"], "contact_cap": {"max": 2, "days": 7},
                      "auto_replies": {"stop": "Bye", "help": "Reply STOP to stop"}})
    got = patch(client, h, {"auto_replies": {"help": None}}).json()
    assert got["auto_replies"] == {"stop": "Bye", "help": None}
    assert got["opt_out_words"] == ["halt"] and got["contact_cap"] == {"max": 2, "days": 7}
    got = patch(client, h, {"contact_cap": None, "opt_out_words": []}).json()
    assert got["contact_cap"] is None and got["opt_out_words"] == [] and got["auto_replies"]["stop"] == "Bye"
    assert client.get(f"{API}/workspace", headers=h).json()["contact_cap"] is None


@pytest.mark.parametrize("body, field", [
    ({"opt_out_words": [""]}, "opt_out_words.0"),
    ({"opt_out_words": ["  "]}, "opt_out_words.0"),
    ({"opt_in_words": ["x" * 33]}, "opt_in_words.0"),
    ({"opt_out_words": "stop"}, "opt_out_words"),
    ({"opt_out_words": None}, "opt_out_words"),
    ({"contact_cap": {"max": 0, "days": 30}}, "contact_cap.max"),
    ({"contact_cap": {"max": 3, "days": 0}}, "contact_cap.days"),
    ({"contact_cap": {"max": 3, "days": 366}}, "contact_cap.days"),
    ({"contact_cap": {"max": 3}}, "contact_cap.days"),
    ({"contact_cap": {"max": 3, "days": 7, "per": "lead"}}, "contact_cap.per"),
    ({"auto_replies": {"stop": ""}}, "auto_replies.stop"),
    ({"auto_replies": {"goodbye": "x"}}, "auto_replies.goodbye"),
    ({"name": "Renamed"}, "name"),
    ({"opt_out_words": ["weiter"], "opt_in_words": ["Weiter"]}, "opt_in_words"),
    ({"opt_out_words": ["start"]}, "opt_out_words"),
])
def test_bad_settings_are_a_422_naming_the_field_and_change_nothing(client, owner, body, field):
    h = owner["headers"]
    patch(client, h, {"opt_out_words": ["halt"], "contact_cap": {"max": 2, "days": 7}})
    before = client.get(f"{API}/workspace", headers=h).json()
    assert fields_of(patch(client, h, body)) == [field]
    assert client.get(f"{API}/workspace", headers=h).json() == before


def test_only_the_owner_changes_the_settings(client, ctx, owner):
    for role in ("operator", "viewer"):
        r = patch(client, headers_for(ctx, owner, role), {"opt_out_words": ["halt"]})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.get(f"{API}/workspace", headers=owner["headers"]).json()["opt_out_words"] == []
    assert client.patch(f"{API}/workspace", json={"opt_out_words": ["halt"]}).status_code == 401
