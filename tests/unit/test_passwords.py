"""Password hashing's parameters (services/passwords.py): the default is at least OWASP's
current minimum for Argon2id (m=19 MiB, t=2, p=1), and scrypt hashes of earlier versions
still verify but ask to be replaced. Hashing here uses the suite's cheap profile."""

from __future__ import annotations

from argon2 import Type

from drumbeat.config import Settings
from drumbeat.services import passwords


def test_the_default_profile_is_argon2id_at_or_above_owasps_minimum(monkeypatch):
    monkeypatch.delenv("DRUMBEAT_PASSWORD_HASH_PROFILE", raising=False)
    chosen = passwords.PROFILES[Settings().password_hash_profile]
    assert Settings().password_hash_profile == passwords.DEFAULT_PROFILE == "rfc9106_low_memory"
    assert chosen.type == Type.ID
    assert chosen.memory_cost >= 19 * 1024 and chosen.time_cost >= 2 and chosen.parallelism >= 1
    assert (chosen.memory_cost, chosen.time_cost, chosen.parallelism) == (64 * 1024, 3, 4)
    owasp = passwords.PROFILES["owasp_minimum"]
    assert (owasp.type, owasp.memory_cost, owasp.time_cost, owasp.parallelism) == (Type.ID, 19 * 1024, 2, 1)


def test_a_new_hash_is_argon2id_and_verifies_only_its_password():
    stored = passwords.hash_password("correct horse")
    assert stored.startswith("$argon2id$v=19$")
    assert passwords.verify_password("correct horse", stored)
    assert not passwords.verify_password("wrong horse", stored)
    assert not passwords.needs_rehash(stored)


def test_an_old_scrypt_hash_verifies_and_asks_to_be_replaced():
    old = passwords.scrypt_hash("correct horse", b"0123456789abcdef")
    assert old.startswith("scrypt$16384$8$1$")
    assert passwords.verify_password("correct horse", old)
    assert not passwords.verify_password("wrong horse", old)
    assert passwords.needs_rehash(old)


def test_an_argon2id_hash_of_other_parameters_asks_to_be_replaced():
    weaker = passwords.PasswordHasher(time_cost=1, memory_cost=512, parallelism=1).hash("pw")
    assert passwords.verify_password("pw", weaker)
    assert passwords.needs_rehash(weaker)


def test_garbage_or_no_hash_never_verifies():
    for stored in (None, "", "plain", "scrypt$bad", "$argon2id$v=19$nonsense"):
        assert not passwords.verify_password("pw", stored)
