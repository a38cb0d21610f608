"""Managing the suppression list (API.md v1.1 Consent): search, reason filter, CSV import
and export, delete."""

from __future__ import annotations

import csv
import io
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from drumbeat.app import create_app
from drumbeat.domain.exceptions import NotFound
from drumbeat.services import suppressions as service
from drumbeat.services.context import Principal
from drumbeat.services.workspaces import init_workspace
from drumbeat.store.tables import leads
from drumbeat.store.tables import suppressions as suppression_table
from tests.api.test_bad_input import Body, call
from tests.api.test_leads import EMAIL, WHATSAPP, headers_for, new_campaign, post_json

URL = "/api/v1/suppressions"


def import_csv(client, headers, text: str | bytes):
    body = text.encode() if isinstance(text, str) else text
    return client.post(f"{URL}/import", content=body, headers={**headers, "Content-Type": "text/csv"})


def suppress(ctx, owner, reason="manual", source=None, **address):
    with ctx.db.begin() as conn:
        row, _ = service.suppress(conn, owner["workspace_id"], reason=reason, source=source, now=ctx.clock(),
                                  **address)
    return str(row["id"])


def other_workspace(ctx) -> dict:
    other = init_workspace(ctx, "Other", "owner@other.test")
    return {**other, "headers": {"Authorization": f"Bearer {other['token']}"}}


def test_search_finds_part_of_a_phone_or_email_written_as_typed(client, ctx, owner):
    suppress(ctx, owner, phone="+4915123456701")
    suppress(ctx, owner, phone="+4915123456702", reason="stop_keyword")
    suppress(ctx, owner, email="anna@example.com", reason="bounce")
    suppress(ctx, owner, email="bob@other.test")
    suppress(ctx, other_workspace(ctx), phone="+4915123456703")

    def found(**params):
        r = client.get(URL, params=params, headers=owner["headers"])
        assert r.status_code == 200, r.text
        return [x["phone"] or x["email"] for x in r.json()["items"]]

    assert found(q="0049 151 2345") == ["+4915123456701", "+4915123456702"]
    assert found(q="6701") == ["+4915123456701"]
    assert found(q="ANNA@") == ["anna@example.com"]
    assert found(q="example") == ["anna@example.com"]
    assert found(q="%") == []  # a LIKE wildcard is a character like any other
    assert found(reason="bounce") == ["anna@example.com"]
    assert found(reason="stop_keyword", q="+49") == ["+4915123456702"]
    assert found(reason="import") == []


def test_an_unknown_reason_filter_is_refused(client, owner):
    r = client.get(URL, params={"reason": "spam"}, headers=owner["headers"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


def test_search_results_page_by_cursor_with_reason_and_source(client, ctx, owner):
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP])
    for i in range(5):
        suppress(ctx, owner, phone=f"+491512345670{i}", reason="provider_opt_out",
                 source={"campaign_id": campaign, "lead_id": 7, "channel": "whatsapp"})
    suppress(ctx, owner, email="x@example.com")
    seen, cursor = [], None
    while True:
        params = {"q": "+49", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(URL, params=params, headers=owner["headers"]).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [x["phone"] for x in seen] == [f"+491512345670{i}" for i in range(5)]
    assert all(x["reason"] == "provider_opt_out" for x in seen)
    assert seen[0]["source"] == {"campaign_id": campaign, "lead_id": "7", "channel": "whatsapp"}


def test_import_reports_a_malformed_row_by_number_and_imports_the_rest(client, ctx, owner):
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL])
    post_json(client, owner, campaign, [{"phone": "+4915123456701", "email": "a@example.com"},
                                        {"phone": "+4915123456709", "email": "z@example.com"}])
    suppress(ctx, owner, email="already@example.com")
    text = ("phone,email,reason\n"
            "+4915123456701,,\n"                 # row 1
            ",B@Example.com,bounce\n"            # row 2
            "12345,,\n"                          # row 3: not a phone
            '"+4915123456702,"broken,\n'         # row 4: malformed CSV
            ",c@example.com,spam\n"              # row 5: unknown reason
            ",already@example.com,\n"            # row 6: already on the list
            "0049 151 23456701,,\n"              # row 7: row 1 again
            "\n"
            "+4915123456703,d@example.com,stop_keyword\n"  # row 9: both addresses
            ",,\n")                              # row 10: nothing
    r = import_csv(client, owner["headers"], text)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("accepted", "duplicates", "rejected_total", "leads_opted_out")} == {
        "accepted": 4, "duplicates": 2, "rejected_total": 4, "leads_opted_out": 1}
    assert [(x["row"], x["errors"][0]["field"]) for x in body["rejected"]] == [
        (3, "phone"), (4, "row"), (5, "reason"), (10, "row")]
    assert "malformed CSV" in body["rejected"][1]["errors"][0]["message"]
    listed = client.get(URL, params={"limit": 100}, headers=owner["headers"]).json()["items"]
    got = {(x["phone"] or x["email"]): x["reason"] for x in listed}
    assert got == {"already@example.com": "manual", "+4915123456701": "import", "b@example.com": "bounce",
                   "+4915123456703": "stop_keyword", "d@example.com": "stop_keyword"}
    with ctx.db.begin() as conn:
        states = dict(conn.execute(select(leads.c.phone, leads.c.state).where(leads.c.campaign_id == campaign)).all())
    assert states == {"+4915123456701": "opted_out", "+4915123456709": "not_contacted"}


def test_import_needs_a_phone_or_email_column_and_changes_nothing_otherwise(client, ctx, owner):
    for text in ("name,reason\nAnna,manual\n", "", '"broken\n'):
        r = import_csv(client, owner["headers"], text)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", text
    r = client.post(f"{URL}/import", content=b"phone\n+4915123456701\n",
                    headers={**owner["headers"], "Content-Type": "application/json"})
    assert r.status_code == 422
    assert client.get(URL, headers=owner["headers"]).json()["items"] == []


def test_only_operators_import(client, ctx, owner):
    viewer = headers_for(ctx, owner, "viewer")
    assert import_csv(client, viewer, "phone\n+4915123456701\n").status_code == 403
    operator = headers_for(ctx, owner, "operator")
    assert import_csv(client, operator, "phone\n+4915123456701\n").json()["accepted"] == 1


def test_a_streamed_import_over_its_limit_is_413_and_stops_reading(ctx, owner):
    app = create_app(ctx, max_body_bytes=64 * 1024, max_streamed_bytes=256 * 1024)
    chunk = b"".join(b"+49151234%05d\n" % i for i in range(3000))  # ~45 KiB of valid rows
    body = Body(b"phone\n", chunk, count=1000)
    status, answer = call(app, f"{URL}/import", {**owner["headers"], "Content-Type": "text/csv"}, body)
    assert status == 413 and answer["error"]["code"] == "payload_too_large"
    assert answer["error"]["details"] == {"max_bytes": 256 * 1024}  # the streamed limit, not the JSON one
    assert body.taken <= 2 + (256 * 1024) // len(chunk) + 1


def test_export_lists_every_entry_with_formula_cells_escaped(client, ctx, owner):
    suppress(ctx, owner, phone="+4915123456701", reason="stop_keyword")
    suppress(ctx, owner, email="=cmd|calc!a0@example.com")
    suppress(ctx, other_workspace(ctx), phone="+4915123456702")
    viewer = headers_for(ctx, owner, "viewer")
    r = client.get(f"{URL}/export", headers=viewer)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["phone", "email", "reason", "created_at"]
    assert [row[:3] for row in rows[1:]] == [["'+4915123456701", "", "stop_keyword"],
                                            ["", "'=cmd|calc!a0@example.com", "manual"]]
    assert rows[1][3].endswith("Z")


def test_an_export_imports_back_into_another_workspace_with_its_reasons(client, ctx, owner):
    suppress(ctx, owner, phone="+4915123456701", reason="stop_keyword")
    suppress(ctx, owner, email="a@example.com", reason="bounce")
    exported = client.get(f"{URL}/export", headers=owner["headers"]).text
    other = other_workspace(ctx)
    body = import_csv(client, other["headers"], exported).json()
    assert (body["accepted"], body["rejected"]) == (2, [])
    again = client.get(f"{URL}/export", headers=other["headers"]).text
    assert [r[:3] for r in csv.reader(io.StringIO(again))] == [r[:3] for r in csv.reader(io.StringIO(exported))]


def test_the_owner_deletes_an_entry_and_others_cannot(client, ctx, owner):
    entry = suppress(ctx, owner, phone="+4915123456701")
    for role in ("viewer", "operator"):
        assert client.delete(f"{URL}/{entry}", headers=headers_for(ctx, owner, role)).status_code == 403
    other = other_workspace(ctx)
    theirs = suppress(ctx, other, phone="+4915123456701")
    assert client.delete(f"{URL}/{theirs}", headers=owner["headers"]).status_code == 404
    r = client.delete(f"{URL}/{entry}", headers=owner["headers"])
    assert r.status_code == 204 and r.content == b""
    assert client.get(URL, headers=owner["headers"]).json()["items"] == []
    assert len(client.get(URL, headers=other["headers"]).json()["items"]) == 1
    for missing in (entry, "999999", "abc", "9" * 40):
        r = client.delete(f"{URL}/{missing}", headers=owner["headers"])
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", missing


ROUND_TRIP = 100_000
REASONS = ["manual", "stop_keyword", "provider_opt_out", "unsubscribe_link", "bounce", "import"]


def round_trip_row(i: int) -> tuple[str, str, str]:
    return (f"+49151{i:08d}", "", REASONS[i % 6]) if i % 2 else ("", f"p{i}@example.com", REASONS[i % 6])


@pytest.mark.slow
def test_a_hundred_thousand_entries_round_trip_through_import_and_export_in_flat_memory(ctx, owner):
    """Through the service the routes stream into and out of, memory traced: neither side
    holds the list (100,000 entries held as rows would take some 30 MB)."""
    principal = Principal(owner["user_id"], owner["workspace_id"], "owner")

    def body():
        yield b"phone,email,reason\n"
        for lo in range(0, ROUND_TRIP, 5_000):
            yield "".join("{},{},{}\n".format(*round_trip_row(i)) for i in range(lo, lo + 5_000)).encode()

    tracemalloc.start()
    try:
        result = service.import_csv(ctx, principal, body())
        import_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        rows, wrong = 0, []
        for piece in service.export_csv(ctx, principal):
            for cells in csv.reader(io.StringIO(piece)):
                if cells[0] == "phone":
                    continue
                phone, email, reason, _created = cells
                if (phone.removeprefix("'"), email, reason) != round_trip_row(rows):
                    wrong.append(rows)
                rows += 1
        export_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (result["accepted"], result["duplicates"], result["rejected_total"]) == (ROUND_TRIP, 0, 0)
    assert rows == ROUND_TRIP and wrong == []
    assert import_peak < 8 * 2**20 and export_peak < 8 * 2**20, (import_peak, export_peak)


def test_a_campaigns_opted_out_leads_are_counted_by_the_reason_that_holds_them(client, ctx, owner):
    campaign = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL])
    other = new_campaign(ctx, owner, steps=[WHATSAPP, EMAIL], name="Other")
    people = [{"phone": f"+491512345670{i}", "email": f"p{i}@example.com"} for i in range(6)]
    post_json(client, owner, campaign, people)
    post_json(client, owner, other, people[:1])
    suppress(ctx, owner, phone="+4915123456700", reason="stop_keyword")
    suppress(ctx, owner, phone="+4915123456701", reason="stop_keyword")
    suppress(ctx, owner, email="p2@example.com", reason="bounce")
    deleted = suppress(ctx, owner, email="p3@example.com", reason="unsubscribe_link")
    suppress(ctx, owner, phone="+4915123456704", reason="provider_opt_out")
    suppress(ctx, owner, email="p4@example.com", reason="manual")  # the phone's entry is the one shown
    assert client.delete(f"{URL}/{deleted}", headers=owner["headers"]).status_code == 204
    principal = Principal(owner["user_id"], owner["workspace_id"], "viewer")
    assert service.opted_out_by_reason(ctx, principal, campaign) == {
        "stop_keyword": 2, "bounce": 1, "provider_opt_out": 1, None: 1}
    assert service.opted_out_by_reason(ctx, principal, other) == {"stop_keyword": 1}
    theirs = other_workspace(ctx)
    with pytest.raises(NotFound):
        service.opted_out_by_reason(ctx, Principal(theirs["user_id"], theirs["workspace_id"], "owner"), campaign)


def test_two_imports_of_overlapping_lists_at_once_keep_each_address_once(ctx, owner):
    """Two real threads, each its own connections; the second file lists the addresses in
    the opposite order (the order that deadlocks on PostgreSQL's unique index, then retries)."""
    principal = Principal(owner["user_id"], owner["workspace_id"], "operator")
    numbers = [f"+49151{i:08d}" for i in range(3_000)]
    files = [numbers[:2_000], list(reversed(numbers[1_000:]))]
    barrier = threading.Barrier(2)

    def run(phones):
        barrier.wait()
        return service.import_csv(ctx, principal, iter([("phone\n" + "\n".join(phones) + "\n").encode()]))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, files))
    assert sum(r["accepted"] for r in results) == 3_000
    assert sum(r["duplicates"] for r in results) == 1_000
    with ctx.db.begin() as conn:
        stored = conn.execute(select(suppression_table.c.phone)).scalars().all()
    assert sorted(stored) == sorted(numbers)
