"""Dashboard tests run on SQLite only: the storage and engine suites already cover
PostgreSQL, and these test pages, sessions and the browser."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from drumbeat.services import workspaces
from drumbeat.services.context import Principal
from drumbeat.services.passwords import hash_password
from drumbeat.store.db import make_engine, migrate

PASSWORD = "correct horse battery"


@pytest.fixture
def db_url(tmp_path) -> Iterator[str]:  # overrides the two-engine fixture of tests/conftest.py
    url = f"sqlite:///{tmp_path / 'drumbeat.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url


@pytest.fixture
def users(ctx) -> dict[str, dict]:
    """One workspace with an owner, an operator and a viewer, each with a password."""
    boot = workspaces.init_workspace(ctx, "Acme", "owner@acme.test", hash_password(PASSWORD))
    owner = Principal(boot["user_id"], boot["workspace_id"], "owner", "owner@acme.test")
    out = {"owner": {**boot, "email": "owner@acme.test", "principal": owner}}
    for role in ("operator", "viewer"):
        user = workspaces.create_user(ctx, owner, f"{role}@acme.test", role, hash_password(PASSWORD))
        out[role] = {**user, "principal": Principal(user["id"], boot["workspace_id"], role, user["email"])}
    return out


def login_csrf(client: TestClient) -> str:
    page = client.get("/login")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    response = client.post("/login", data={"csrf": login_csrf(client), "email": email, "password": password},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def page_csrf(client: TestClient) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/campaigns").text).group(1)
