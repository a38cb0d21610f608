"""What the schema fuzz test (test_fuzz.py) found, pinned as plain tests on SQLite and
PostgreSQL: answers the OpenAPI document did not declare, or that broke the contract."""

from __future__ import annotations

API = "/api/v1"


def test_allow_names_every_method_the_path_serves(client, owner):
    # Starlette named only the first route's methods: OPTIONS /campaigns said "POST".
    response = client.options(f"{API}/campaigns", headers=owner["headers"])
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_huge_deliveries_cursor_is_a_422_not_a_500(client, owner):
    webhook = client.post(f"{API}/webhooks", headers=owner["headers"], json={
        "url": "https://hooks.example/x", "secret": "s3cret-s3cret", "events": ["campaign.paused"]}).json()
    response = client.get(f"{API}/webhooks/{webhook['id']}/deliveries?cursor=10000000000000000000",
                          headers=owner["headers"])
    assert response.status_code == 422
    assert response.json()["error"]["details"]["fields"][0]["field"].endswith("cursor")


def test_a_special_use_email_domain_is_valid_syntax_for_suppressions_as_for_users(client, owner):
    # Users took "x@y.test", suppressions refused it: API.md checks emails for syntax only.
    response = client.post(f"{API}/suppressions", headers=owner["headers"], json={"email": "x@example.test"})
    assert response.status_code == 201, response.json()
    assert response.json()["email"] == "x@example.test"


def test_lead_routes_declare_their_errors_in_the_envelope(client):
    spec = client.get("/openapi.json").json()
    resolve = spec["paths"][f"{API}/campaigns/{{campaign_id}}/leads/{{lead_id}}/resolve"]["post"]["responses"]
    assert {"401", "403", "404", "409", "413", "422", "503"} <= set(resolve)
    assert resolve["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ConflictError")
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # no route documents FastAPI's 422
