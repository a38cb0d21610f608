"""Dashboard session cookies and CSRF tokens, signed with HMAC-SHA256 (standard library only).

The session itself lives on the server (services.access, table `web_sessions`, issue 21):
the cookie holds `<payload>.<signature>`, payload = base64url JSON of the session's random
secret and an expiry, and the database holds only the secret's SHA-256. Signing out or
removing the user deletes the row, so a copied cookie answers as signed-out at once. The
signature lets a forged or tampered cookie be refused before any look-up. The cookie is
HttpOnly (scripts cannot read it, so an injected script cannot steal it) and SameSite=Lax
(other sites' forms do not carry it on POST). The user and their role are read from the
database on every request, never from the cookie.

CSRF: every form and every script POST carries a token = HMAC(key, "csrf:" + nonce), nonce
= the session's id (not its secret), which a page of another origin cannot know. Before
sign-in, the login form is protected the same way by a short-lived pre-session cookie (no
login CSRF).

One-time form nonces: a form that creates or acts also carries `form_nonce`, a random value
signed for the session, which the server records as used with the form's effect
(services.forms), so posting the same form twice does one thing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from drumbeat.services.access import SESSION_LIFETIME

SESSION_COOKIE = "drumbeat_session"
LOGIN_COOKIE = "drumbeat_login"
SESSION_SECONDS = int(SESSION_LIFETIME.total_seconds())
LOGIN_SECONDS = 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def sign(self, payload: dict) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def unsign(self, value: str | None) -> dict | None:
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            payload = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(payload, dict) or int(payload.get("e", 0)) < time.time():
            return None
        return payload

    # --- sessions ---------------------------------------------------------------------

    def session_cookie(self, secret: str) -> str:
        """The cookie value for a session the server opened (services.access.open_session)."""
        return self.sign({"s": secret, "e": int(time.time()) + SESSION_SECONDS})

    def session_secret(self, value: str | None) -> str | None:
        """The secret a genuine, unexpired cookie carries; whether it is still a session is
        the database's answer (services.access.find_session)."""
        payload = self.unsign(value)
        return payload["s"] if payload is not None and isinstance(payload.get("s"), str) else None

    def csrf_token(self, nonce: str) -> str:
        return self._mac("csrf:" + nonce)

    def csrf_ok(self, nonce: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token, self.csrf_token(nonce))

    # --- one-time form nonces (issue 19: a double-submitted form does one thing) ------

    def form_token(self, session_nonce: str) -> str:
        """A fresh nonce for one rendered form, `<random>.<mac>`, signed for this session."""
        value = secrets.token_urlsafe(18)
        return f"{value}.{self._mac('form:' + session_nonce + ':' + value)}"

    def form_nonce(self, session_nonce: str, token: str) -> str | None:
        """The nonce a form token carries, if this session's key signed it."""
        if token.count(".") != 1:
            return None
        value, mac = token.split(".")
        ok = value and hmac.compare_digest(mac, self._mac("form:" + session_nonce + ":" + value))
        return value if ok else None

    # --- before sign-in -----------------------------------------------------------------

    def new_login_nonce(self) -> tuple[str, str]:
        """(cookie value, the nonce it carries)."""
        nonce = secrets.token_urlsafe(16)
        return self.sign({"n": nonce, "e": int(time.time()) + LOGIN_SECONDS}), nonce

    def login_nonce(self, value: str | None) -> str | None:
        payload = self.unsign(value)
        return payload.get("n") if payload and isinstance(payload.get("n"), str) else None
