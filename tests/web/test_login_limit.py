"""Sign-in throttling at POST /login: after five failures per email or per client address
within fifteen minutes, attempts answer 429 without the password being checked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from drumbeat.app import create_app
from drumbeat.services import dashboard
from drumbeat.web.sessions import SESSION_COOKIE
from tests.web.conftest import PASSWORD, login_csrf


@pytest.fixture
def app(clocked_ctx):
    return create_app(clocked_ctx)


@pytest.fixture
def web(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def attempt(client: TestClient, email: str, password: str, **headers):
    return client.post("/login", data={"csrf": login_csrf(client), "email": email, "password": password},
                       headers=headers, follow_redirects=False)


@pytest.fixture
def password_checks(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = dashboard.sign_in_with_password

    def counting(ctx, email, password):
        seen.append(email)
        return real(ctx, email, password)

    monkeypatch.setattr(dashboard, "sign_in_with_password", counting)
    return seen


def test_after_five_failures_even_the_right_password_is_refused_unchecked(web, users, password_checks):
    for _ in range(5):
        assert attempt(web, "owner@acme.test", "wrong").status_code == 401
    assert len(password_checks) == 5
    refused = attempt(web, "owner@acme.test", PASSWORD)
    assert refused.status_code == 429
    assert len(password_checks) == 5  # the password was not checked
    assert "Too many failed sign-in attempts" in refused.text and "15 minutes" in refused.text
    assert int(refused.headers["Retry-After"]) == 15 * 60
    assert SESSION_COOKIE not in refused.cookies and web.get("/campaigns", follow_redirects=False).status_code == 303


def test_a_script_gets_the_error_envelope_with_retry_after(web, users, clock):
    for _ in range(5):
        attempt(web, "owner@acme.test", "wrong")
    clock.advance(minutes=5)
    refused = attempt(web, "owner@acme.test", "wrong", **{"X-Requested-With": "fetch"})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and error["details"] == {"retry_after_seconds": 600}
    assert refused.headers["Retry-After"] == "600"


def test_the_limit_lifts_once_the_failures_leave_the_window(web, users, clock):
    for _ in range(5):
        attempt(web, "owner@acme.test", "wrong")
    clock.advance(minutes=14, seconds=59)
    assert attempt(web, "owner@acme.test", PASSWORD).status_code == 429
    clock.advance(seconds=1)
    assert attempt(web, "owner@acme.test", PASSWORD).status_code == 303
    assert web.get("/campaigns").status_code == 200


def test_guessing_at_many_accounts_from_one_address_is_limited_too(web, users, password_checks):
    for i in range(5):
        assert attempt(web, f"nobody{i}@acme.test", "guess").status_code == 401
    assert attempt(web, "operator@acme.test", PASSWORD).status_code == 429
    token = web.post("/login", data={"csrf": login_csrf(web), "token": users["viewer"]["token"]},
                     follow_redirects=False)
    assert token.status_code == 429
    assert len(password_checks) == 5


def test_one_account_attacked_from_many_addresses_is_limited(app, users):
    for i in range(5):
        with TestClient(app, client=(f"203.0.113.{i}", 50000)) as c:
            assert attempt(c, "owner@acme.test", "wrong").status_code == 401
    with TestClient(app, client=("198.51.100.7", 50000)) as c:
        assert attempt(c, "owner@acme.test", PASSWORD).status_code == 429
        assert attempt(c, "viewer@acme.test", PASSWORD).status_code == 303  # another account is unaffected


def test_successful_sign_ins_are_not_failures(web, users):
    for _ in range(10):
        assert attempt(web, "owner@acme.test", PASSWORD).status_code == 303
        web.cookies.delete(SESSION_COOKIE)
    assert attempt(web, "owner@acme.test", PASSWORD).status_code == 303
