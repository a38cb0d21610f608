"""One-time form tokens (web/sessions.py): fresh per form, bound to the session that got them."""

from __future__ import annotations

from drumbeat.web.sessions import Signer


def test_each_form_token_is_new_and_carries_a_nonce_only_its_session_accepts():
    signer = Signer(b"k" * 32)
    first, second = signer.form_token("session-a"), signer.form_token("session-a")
    assert first != second
    nonce = signer.form_nonce("session-a", first)
    assert nonce and first.startswith(nonce + ".")
    assert signer.form_nonce("session-b", first) is None  # another session's
    assert Signer(b"x" * 32).form_nonce("session-a", first) is None  # another server key's


def test_a_tampered_or_malformed_form_token_carries_no_nonce():
    signer = Signer(b"k" * 32)
    value, mac = signer.form_token("s").split(".")
    for token in (f"{value}x.{mac}", f"{value}.{mac[:-1]}", value, f"{value}.{mac}.x", ".", f".{mac}"):
        assert signer.form_nonce("s", token) is None, token
