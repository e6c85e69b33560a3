"""Pre-shared keys per SIM and protocol, and the onboarding rule of ``GET /bootstrap``.

Keys live in the store; an in-memory copy answers the DTLS handshake (thousands per second)
and follows changes made by other processes the same way the SIM registry does. A key is the
DTLS key as bytes: for a key handed out by onboarding, its printable ASCII bytes (SPEC §1).
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("nce.psk")

PROTOCOLS = ("COAP", "LWM2M")
_ALPHABET = string.ascii_letters + string.digits
GENERATED_LENGTH = 32
#: the longest key a DTLS handshake can use: Mbed TLS' MBEDTLS_PSK_MAX_LEN (the engine's MAX_PSK_LEN)
MAX_KEY_LENGTH = 32
FORMATS = ("STRING", "HEX")


class PskError(ValueError):
    """A key or a request about keys that cannot be accepted; the message says why."""


@dataclass(frozen=True, slots=True)
class Psk:
    key: bytes
    user_set: bool
    created_ms: int


def generate_key() -> bytes:
    """A printable random key: 32 letters and digits (about 190 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(GENERATED_LENGTH)).encode("ascii")


def parse_key(secret: str, fmt: str = "STRING") -> bytes:
    """The key bytes of an API/CLI ``secretKey`` in format STRING (its UTF-8 bytes) or HEX."""
    if fmt == "STRING":
        key = secret.encode("utf-8")
    elif fmt == "HEX":
        try:
            key = bytes.fromhex(secret)
        except ValueError:
            raise PskError("secretKey is not valid hex") from None
    else:
        raise PskError(f"format must be STRING or HEX, not {fmt!r}")
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise PskError(f"a PSK must be 1 to {MAX_KEY_LENGTH} bytes long (Mbed TLS' limit), not {len(key)}")
    return key


def format_key(key: bytes) -> tuple[str, str]:
    """``(format, text)`` showing a stored key: STRING with its text when it is printable UTF-8,
    else HEX (the store keeps the bytes, not the format they were given in)."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return "HEX", key.hex()
    return ("STRING", text) if text and text.isprintable() else ("HEX", key.hex())


class PskService:
    def __init__(self, store: Any, *, write: Callable[..., Awaitable[Any]], read: Callable[..., Awaitable[Any]],
                 regenerate_after_seconds: float = 300.0) -> None:
        self.store = store
        self.write = write
        self.read = read
        self.regenerate_after_seconds = regenerate_after_seconds
        self._keys: dict[tuple[str, str], Psk] = {}
        self.version = -1

    def reload(self) -> None:
        """Rebuild the in-memory copy (blocking; run in a reader thread)."""
        version = self.store.psks_version()
        self._keys = {(iccid, protocol): Psk(key, user_set, created)
                      for iccid, protocol, key, user_set, created in self.store.all_psks()}
        self.version = version

    def get(self, iccid: str, protocol: str) -> Psk | None:
        return self._keys.get((iccid, protocol))

    def dtls_key(self, iccid: str) -> bytes | None:
        """The key a DTLS handshake on the CoAPs port uses for this SIM.

        CoAP and LwM2M share the port, and the handshake comes before any path, so a SIM has
        one active DTLS key there: the one set last, whether by CoAP onboarding (COAP) or by
        the LwM2M bootstrap server (LWM2M). A device normally uses one of the two.
        """
        coap = self._keys.get((iccid, "COAP"))
        lwm2m = self._keys.get((iccid, "LWM2M"))
        if coap is None or lwm2m is None:
            found = coap or lwm2m
            return found.key if found is not None else None
        return (lwm2m if lwm2m.created_ms > coap.created_ms else coap).key

    def key(self, iccid: str, protocol: str) -> bytes | None:
        psk = self._keys.get((iccid, protocol))
        return psk.key if psk is not None else None

    async def set(self, iccid: str, protocol: str, key: bytes, *, user_set: bool = True) -> Psk:
        """Store a key (durably) and use it at once."""
        if protocol not in PROTOCOLS:
            raise PskError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        created = time.time_ns() // 1_000_000
        await self.write(self.store.set_psk, iccid, protocol, key, user_set, created)
        psk = Psk(key, user_set, created)
        self._keys[(iccid, protocol)] = psk
        log.info("PSK set", extra={"event": "psk_set", "iccid": iccid, "protocol": protocol, "user_set": user_set})
        return psk

    async def for_bootstrap(self, iccid: str, protocol: str = "COAP") -> bytes:
        """The key a ``GET /bootstrap`` hands out: the existing one, a new one when there is none,
        or a fresh one when the existing generated key is older than ``regenerate_after_seconds``
        (1NCE OS behaviour; 0 turns regeneration off). A key a user set is never replaced."""
        psk = self.get(iccid, protocol)
        if psk is not None:
            age = time.time() - psk.created_ms / 1000
            if psk.user_set or self.regenerate_after_seconds <= 0 or age < self.regenerate_after_seconds:
                return psk.key
        return (await self.set(iccid, protocol, generate_key(), user_set=False)).key
