"""docs/api-reference.md is the served OpenAPI document rendered (drumbeat/api/reference.py):
every route carries what its reference needs (role, examples, errors), every example is
valid against its own schema, and the committed file cannot go stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from drumbeat.api.reference import COMMAND, operations, problems, render
from drumbeat.app import create_app
from drumbeat.services.context import Context

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "api-reference.md"


@pytest.fixture(scope="module")
def spec() -> dict:
    # The document as served; rendering it needs no database.
    with TestClient(create_app(Context(db=None, box=None))) as client:  # type: ignore[arg-type]
        return client.get("/openapi.json").json()


def test_every_route_has_its_examples_its_role_and_its_error_responses(spec):
    missing = problems(spec)
    assert not missing, ("routes missing what docs/api-reference.md needs:\n  " + "\n  ".join(missing)
                         + f"\nthen regenerate the reference: `{COMMAND}`")


def test_the_committed_reference_equals_a_fresh_render_of_the_served_document(spec):
    fresh = render(spec)
    committed = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    assert committed == fresh, f"docs/api-reference.md is stale: run `{COMMAND}` and commit the file"


def _examples(spec: dict):
    """(where, schema, example) for every example in the document: each component schema's
    own, and each one given on a route's body or answer."""
    for name, schema in spec["components"]["schemas"].items():
        for i, example in enumerate(schema.get("examples", [])):
            yield f"components.schemas.{name}.examples[{i}]", {"$ref": f"#/components/schemas/{name}"}, example
    for method, path, op in operations(spec):
        bodies = [("request", (op.get("requestBody") or {}).get("content", {}))]
        bodies += [(status, r.get("content") or {}) for status, r in op.get("responses", {}).items()]
        for what, content in bodies:
            for media_type, media in content.items():
                if "example" in media:
                    yield f"{method} {path} {what} {media_type}", media.get("schema") or {}, media["example"]


def test_every_example_is_valid_against_its_own_schema(spec):
    checked, invalid = 0, []
    for where, schema, example in _examples(spec):
        validator = jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]})
        invalid += [f"{where}: {e.message} (at {'/'.join(map(str, e.instance_path))})"
                    for e in validator.iter_errors(example)]
        checked += 1
    assert checked > 40  # the models' examples and the routes' own were all found
    assert not invalid, "\n".join(invalid)


def test_a_bad_example_is_caught_by_the_schema_check(spec):
    # The check above can fail: a campaign without steps breaks CampaignCreate.
    validator = jsonschema_rs.Draft202012Validator({"$ref": "#/components/schemas/CampaignCreate",
                                                    "components": spec["components"]})
    assert not validator.is_valid({"name": "No steps"})


def test_roles_are_in_the_document_as_the_scopes_of_the_bearer_requirement(spec):
    paths = spec["paths"]
    assert paths["/api/v1/campaigns/{campaign_id}/pause"]["post"]["security"] == [{"HTTPBearer": ["operator"]}]
    assert paths["/api/v1/users"]["post"]["security"] == [{"HTTPBearer": ["owner"]}]
    assert paths["/api/v1/campaigns"]["get"]["security"] == [{"HTTPBearer": ["viewer"]}]
    assert "security" not in paths["/webhooks/twilio/{integration_id}"]["post"]  # signed, no token


def test_a_route_without_examples_or_errors_is_named_with_what_it_lacks(spec):
    broken = json.loads(json.dumps(spec))
    op = broken["paths"]["/api/v1/campaigns/{campaign_id}/pause"]["post"]
    op["responses"]["200"]["content"]["application/json"]["schema"] = {"type": "object"}
    del op["responses"]["403"]
    found = problems(broken)
    assert any(p.startswith("POST /api/v1/campaigns/{campaign_id}/pause: no example of the 200 response")
               for p in found), found
    assert "POST /api/v1/campaigns/{campaign_id}/pause: error 403 not declared " \
           "(responses=error_responses(...))" in found


def test_the_reference_shows_a_routes_role_example_and_error_envelope(spec):
    text = render(spec)
    section = text.split("### `POST /api/v1/campaigns/{campaign_id}/cancel`", 1)[1].split("\n### ", 1)[0]
    assert "Role: **operator**" in section
    assert '"confirm": "Spring promo"' in section  # the request example
    assert "| 409 | `invalid_transition`, `resume_blocked`, `confirmation_required` |" in section
    assert '"code": "invalid_transition"' in section  # the example envelope of its own error


def test_the_command_writes_the_reference_and_check_fails_when_it_is_stale(tmp_path):
    out = tmp_path / "ref.md"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "drumbeat.cli", "docs", "api-reference", "--output", str(out),
                               *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert run("--check").returncode == 1  # no file yet
    assert run().returncode == 0
    assert out.read_text(encoding="utf-8") == REFERENCE.read_text(encoding="utf-8")
    assert run("--check").returncode == 0
    out.write_text(out.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")
    stale = run("--check")
    assert stale.returncode == 1 and COMMAND in stale.stderr
