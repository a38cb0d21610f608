"""One-click unsubscribe tokens: signed, naming one lead, valid for VALID_DAYS (issue 20)."""

from __future__ import annotations

import base64
from datetime import date, timedelta

import pytest

from drumbeat.domain.unsubscribe import VALID_DAYS, Links, current, issue, read, verify
from drumbeat.store.secrets import SecretBox

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
WS, OTHER_WS = "a" * 32, "b" * 32
TODAY = date(2026, 3, 2)


def believed(token: str, *, key=KEY, workspace=WS, today=TODAY) -> bool:
    claim = read(token)
    return claim is not None and verify(key, workspace, claim, today)


def test_a_token_names_its_lead_and_the_day_it_was_issued():
    claim = read(issue(KEY, WS, 123456789, TODAY))

    assert (claim.lead_id, claim.issued) == (123456789, TODAY)


def test_a_token_is_verified_with_the_key_and_workspace_it_was_issued_for():
    assert believed(issue(KEY, WS, 42, TODAY))


def test_a_token_is_url_safe_and_compact():
    token = issue(KEY, WS, 2**62, TODAY)

    assert len(token) == 36
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_changing_any_byte_of_a_token_makes_it_invalid():
    raw = bytearray(base64.urlsafe_b64decode(issue(KEY, WS, 42, TODAY)))
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        token = base64.urlsafe_b64encode(bytes(tampered)).decode()
        assert not believed(token), f"byte {i} changed and the token still verified"


def test_changing_any_character_of_a_token_makes_it_invalid():
    token = issue(KEY, WS, 42, TODAY)
    for i, ch in enumerate(token):
        other = "A" if ch != "A" else "B"
        assert not believed(token[:i] + other + token[i + 1:]), f"character {i} changed and the token still verified"


def test_a_token_signed_with_another_key_is_invalid():
    assert not believed(issue(OTHER_KEY, WS, 42, TODAY))


def test_a_token_of_another_workspace_is_invalid_here():
    assert not believed(issue(KEY, OTHER_WS, 42, TODAY))


def test_neighbouring_leads_get_unrelated_signatures():
    macs = {read(issue(KEY, WS, lead_id, TODAY)).mac for lead_id in range(1, 200)}

    assert len(macs) == 199


@pytest.mark.parametrize("token", ["", "abc", "x" * 36, "=" * 36, "é" * 36, "A" * 35 + "=", "A" * 37,
                                   issue(KEY, WS, 42, TODAY) + "A", issue(KEY, WS, 42, TODAY)[:-1]])
def test_a_malformed_token_is_no_claim_at_all(token):
    claim = read(token)

    assert claim is None or not verify(KEY, WS, claim, TODAY)


def test_a_token_stays_valid_for_at_least_ninety_days():
    token = issue(KEY, WS, 42, TODAY)

    assert VALID_DAYS >= 90
    assert believed(token, today=TODAY + timedelta(days=90))
    assert believed(token, today=TODAY + timedelta(days=VALID_DAYS))


def test_a_token_older_than_its_validity_is_invalid():
    token = issue(KEY, WS, 42, TODAY)

    assert not believed(token, today=TODAY + timedelta(days=VALID_DAYS + 1))


def test_a_token_issued_in_the_future_is_invalid():
    claim = read(issue(KEY, WS, 42, TODAY + timedelta(days=5)))

    assert not current(claim, TODAY)


def test_the_signing_key_is_derived_from_the_secret_key_for_this_purpose_only():
    from cryptography.fernet import Fernet

    box = SecretBox(Fernet.generate_key())
    unsubscribe_key = box.derive_key("unsubscribe-token")

    assert unsubscribe_key != box.derive_key("dashboard-session")
    assert not believed(issue(box.derive_key("dashboard-session"), WS, 42, TODAY), key=unsubscribe_key)


def test_a_link_is_the_public_url_with_the_token_under_u():
    links = Links("https://drumbeat.example/", KEY)

    url = links.url(WS, 42, TODAY)

    assert url.startswith("https://drumbeat.example/u/")
    assert believed(url.rsplit("/", 1)[1])
