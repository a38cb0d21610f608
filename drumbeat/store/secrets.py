"""Provider secrets encrypted at rest with Fernet (cryptography)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import weakref
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection, Engine


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key.encode() if isinstance(key, str) else key

    def derive_key(self, purpose: str) -> bytes:
        """A key for another purpose (e.g. signing dashboard sessions), derived one-way from
        the secret key so one setting serves both and neither reveals the other."""
        return hmac.new(self._key, b"drumbeat:" + purpose.encode(), hashlib.sha256).digest()

    def seal(self, secrets: dict) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, token: str) -> dict:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:  # never echo the ciphertext or the key
            raise RuntimeError("stored credentials cannot be decrypted with DRUMBEAT_SECRET_KEY") from None


def key_beside(sqlite_file: Path) -> str:
    """The embedded default keeps a generated key next to its SQLite file (mode 0600)."""
    path = sqlite_file.with_name(sqlite_file.name + ".secret")
    if path.exists():
        return path.read_text().strip()
    key = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def mask(value: object) -> str:
    """`****f00d`: enough to tell keys apart, never enough to use one."""
    text = str(value or "")
    return "****" + text[-4:] if len(text) > 8 else "****"


# --- the key of suppressions' address hashes ---------------------------------------------
# Store functions that hash an address get a connection, not the secret box; the context
# that owns an engine binds the derived key to it (services.context.Context), so any
# connection of that engine finds it. Weak: a disposed engine takes its key along.
ADDRESS_HASH_PURPOSE = "suppression-address"
_address_keys: weakref.WeakKeyDictionary[Engine, bytes] = weakref.WeakKeyDictionary()


def bind_address_key(engine: Engine, box: SecretBox) -> None:
    _address_keys[engine] = box.derive_key(ADDRESS_HASH_PURPOSE)


def address_key(conn: Connection) -> bytes:
    engine = conn.engine
    key = _address_keys.get(engine) or _address_keys.get(getattr(engine, "_proxied", engine))
    if key is None:
        raise RuntimeError("no secret key bound to this database engine (build a services.context.Context)")
    return key
