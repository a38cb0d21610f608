"""Property-based fuzzing of every documented route (schemathesis over /openapi.json):
whatever the input, no request answers 500. More examples: DRUMBEAT_FUZZ_EXAMPLES=200."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import schemathesis
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from drumbeat.app import create_app
from drumbeat.services.context import Context
from drumbeat.services.workspaces import init_workspace
from drumbeat.store.db import make_engine, migrate
from drumbeat.store.secrets import SecretBox

EXAMPLES = int(os.environ.get("DRUMBEAT_FUZZ_EXAMPLES", "8"))


def _fuzzed_app():
    """A real app on a throwaway SQLite database with one workspace owner."""
    engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp(prefix='drumbeat-fuzz-')) / 'fuzz.db'}")
    migrate(engine)
    ctx = Context(db=engine, box=SecretBox(Fernet.generate_key()))
    return create_app(ctx), init_workspace(ctx, "Fuzz", "owner@fuzz.example")["token"]


APP, TOKEN = _fuzzed_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_route_answer_500(case):
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    case.validate_response(response, checks=[not_a_server_error])
