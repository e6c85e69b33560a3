"""Optional encryption of the store's secrets at rest.

With a key (``NCE_SECRETS_KEY``, or the file named by ``[store] secrets_key_file``) the store
keeps its secrets encrypted: the token signing keys, the PSKs, webhook header values and AWS
external ids. Each value is sealed with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) and marked with :data:`MARK`, so values written before a key was set are
still read, and are sealed the next time the gateway opens the store with the key. A store
with sealed values cannot be opened without the key (the error says so), and a wrong key is
refused, never silently used.

The key is 32 random bytes in URL-safe base64 (``Fernet.generate_key()``, what
``nce-gateway secrets-key`` prints). Keep it outside the store's folder and its backups:
whoever has both the store and the key has the secrets.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken

MARK = b"nce-sealed:v1:"
_MARK_TEXT = MARK.decode()


class SecretsKeyError(ValueError):
    """The key is malformed, or does not open the store's secrets."""


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        text = key.strip() if isinstance(key, str) else key.strip().decode("ascii", "replace")
        try:
            if len(base64.urlsafe_b64decode(text.encode("ascii"))) != 32:
                raise ValueError
            self._fernet = Fernet(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise SecretsKeyError("the secrets key must be 32 bytes in URL-safe base64 "
                                  "(make one with `nce-gateway secrets-key`)") from None

    def seal(self, data: bytes) -> bytes:
        if data.startswith(MARK):
            return data
        return MARK + self._fernet.encrypt(data)

    def open(self, data: bytes) -> bytes:
        if not data.startswith(MARK):
            return data  # written before the key was set
        try:
            return self._fernet.decrypt(data[len(MARK):])
        except InvalidToken:
            raise SecretsKeyError("the secrets key does not open the store's secrets (another key sealed "
                                  "them)") from None

    def seal_text(self, text: str) -> str:
        return self.seal(text.encode("utf-8")).decode("ascii")

    def open_text(self, text: str) -> str:
        return self.open(text.encode("utf-8")).decode("utf-8") if text.startswith(_MARK_TEXT) else text


def is_sealed(value: bytes | str) -> bool:
    return value.startswith(MARK if isinstance(value, bytes) else _MARK_TEXT)
