"""Pre-shared keys per SIM and protocol, and the onboarding rule of ``GET /bootstrap``.

Keys live in the store; an in-memory copy answers the DTLS handshake (thousands per second)
and follows changes made by other processes the same way the SIM registry does. A key is the
DTLS key as bytes: for a key handed out by onboarding, its printable ASCII bytes (SPEC §1).

One credential per SIM on the DTLS port (docs/dtls.md, "One credential per SIM"): onboarding
hands out the SIM's DTLS key, the LwM2M bootstrap writes that same key into the Security
object, and only an explicit change (rotate, or a key set through the API/CLI) replaces it; the
replaced key stays valid for a grace period, so no device is locked out by a change it has not
heard of yet.
"""

from __future__ import annotations

import logging
import math
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("nce.psk")

PROTOCOLS = ("COAP", "LWM2M")
_ALPHABET = string.ascii_letters + string.digits
#: default length of generated keys: 16 characters fit every common DTLS stack (tinydtls holds
#: at most 16 bytes; Mbed TLS, OpenSSL, GnuTLS more); 16 of 62 symbols are 95 bits of entropy
GENERATED_LENGTH = 16
#: the longest grace period a rotation may give the previous key (10 years)
MAX_GRACE_SECONDS = 10 * 365 * 86400
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


def generate_key(length: int = GENERATED_LENGTH) -> bytes:
    """A printable random key of ``length`` letters and digits (log2(62) = 5.95 bits each)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length)).encode("ascii")


def key_entropy_bits(length: int) -> float:
    """Entropy of a generated key of ``length`` characters, in bits."""
    return length * math.log2(len(_ALPHABET))


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


_MAX_PREFERENCES = 10_000


class PskService:
    def __init__(self, store: Any, *, write: Callable[..., Awaitable[Any]], read: Callable[..., Awaitable[Any]],
                 regenerate_after_seconds: float = 0.0, generated_length: int = GENERATED_LENGTH,
                 grace_seconds: float = 7 * 86400.0) -> None:
        self.store = store
        self.write = write
        self.read = read
        self.regenerate_after_seconds = regenerate_after_seconds
        self.generated_length = generated_length
        self.grace_seconds = grace_seconds
        self._keys: dict[tuple[str, str], Psk] = {}
        self._previous: dict[str, tuple[bytes, int]] = {}  # iccid -> (key, valid until ms)
        # (iccid, source IP) whose last handshake needs the previous key (see dtls_key_for)
        self._prefer_previous: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.version = -1

    def reload(self) -> None:
        """Rebuild the in-memory copy (blocking; run in a reader thread)."""
        version = self.store.psks_version()
        self._keys = {(iccid, protocol): Psk(key, user_set, created)
                      for iccid, protocol, key, user_set, created in self.store.all_psks()}
        self._previous = {iccid: (key, until) for iccid, key, until in self.store.previous_psks()}
        self.version = version

    def new_key(self) -> bytes:
        return generate_key(self.generated_length)

    def previous_key(self, iccid: str, now_ms: int | None = None) -> bytes | None:
        """The SIM's DTLS key before its last change, while its grace period lasts."""
        previous = self._previous.get(iccid)
        if previous is None:
            return None
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        return previous[0] if now_ms < previous[1] else None

    def previous_until_ms(self, iccid: str) -> int | None:
        previous = self._previous.get(iccid)
        return previous[1] if previous is not None and self.previous_key(iccid) is not None else None

    def dtls_key_for(self, iccid: str, ip: str) -> bytes | None:
        """The key a handshake of ``iccid`` from ``ip`` is offered: the current DTLS key, or the
        previous one during a grace period when the last handshake from there needed it.

        Mbed TLS asks for one key per handshake and only the peer's Finished shows whether it
        was the right one, so during a grace period a device holding the other key fails once
        (bad_record_mac) and gets in on its next attempt (:meth:`handshake_result`)."""
        current = self.dtls_key(iccid)
        if (iccid, ip) in self._prefer_previous:
            previous = self.previous_key(iccid)
            if previous is not None:
                return previous
        return current

    def handshake_result(self, iccid: str, ip: str, key: bytes | None, ok: bool) -> None:
        """Learn from a finished handshake (ok) or one that failed because of the key (not ok)
        which key this SIM at this address holds."""
        previous = self.previous_key(iccid)
        entry = (iccid, ip)
        if previous is None or key is None:
            self._prefer_previous.pop(entry, None)
            return
        used_previous = key == previous
        if used_previous == ok:  # worked with the previous key, or failed with the current one
            self._prefer_previous[entry] = None
            self._prefer_previous.move_to_end(entry)
            while len(self._prefer_previous) > _MAX_PREFERENCES:
                self._prefer_previous.popitem(last=False)
        else:
            self._prefer_previous.pop(entry, None)

    def _handed_out(self, iccid: str) -> None:
        """The device was just given the current key: offer it first from now on."""
        for entry in [e for e in self._prefer_previous if e[0] == iccid]:
            del self._prefer_previous[entry]

    def get(self, iccid: str, protocol: str) -> Psk | None:
        return self._keys.get((iccid, protocol))

    def dtls_key(self, iccid: str) -> bytes | None:
        """The key a DTLS handshake on the CoAPs port uses for this SIM.

        CoAP and LwM2M share the port, and the handshake comes before any path, so a SIM has
        one active DTLS key there: the one set last, whether by CoAP onboarding (COAP) or by
        the LwM2M bootstrap server (LWM2M). A device normally uses one of the two.
        """
        psk = self._dtls_psk(iccid)
        return psk.key if psk is not None else None

    def key(self, iccid: str, protocol: str) -> bytes | None:
        psk = self._keys.get((iccid, protocol))
        return psk.key if psk is not None else None

    async def set(self, iccid: str, protocol: str, key: bytes, *, user_set: bool = True,
                  grace_seconds: float | None = None) -> Psk:
        """Store a key (durably) and use it at once. If it replaces the SIM's DTLS key, the old
        one stays valid for ``grace_seconds`` (default: the configured grace period)."""
        if protocol not in PROTOCOLS:
            raise PskError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        if not 0 <= grace <= MAX_GRACE_SECONDS:
            raise PskError(f"the grace period must be 0 to {MAX_GRACE_SECONDS} seconds (10 years)")
        created = time.time_ns() // 1_000_000
        old = self.dtls_key(iccid)
        await self.write(self.store.set_psk, iccid, protocol, key, user_set, created, int(grace * 1000))
        psk = self.remember(iccid, protocol, key, user_set, created, int(grace * 1000), old)
        log.info("PSK set", extra={"event": "psk_set", "iccid": iccid, "protocol": protocol, "user_set": user_set})
        return psk

    def remember(self, iccid: str, protocol: str, key: bytes, user_set: bool, created_ms: int, grace_ms: int,
                 old: bytes | None) -> Psk:
        """Use a key the store now holds (``old``: the SIM's DTLS key before it), as :meth:`set`
        does after its write; a bulk import (gateway/psk_import.py) calls it for each key it wrote."""
        psk = Psk(key, user_set, created_ms)
        self._keys[(iccid, protocol)] = psk
        if old is not None and old != key:
            if grace_ms > 0:
                self._previous[iccid] = (old, created_ms + grace_ms)
            else:
                self._previous.pop(iccid, None)
        return psk

    async def rotate(self, iccid: str, protocol: str = "COAP", *, grace_seconds: float | None = None) -> Psk:
        """Replace the SIM's DTLS key with a new generated one (explicit rotation); the old one
        stays valid for the grace period. Devices learn the new key from ``GET /bootstrap`` or
        their next LwM2M bootstrap."""
        return await self.set(iccid, protocol, self.new_key(), user_set=False, grace_seconds=grace_seconds)

    def _dtls_psk(self, iccid: str) -> Psk | None:
        coap = self._keys.get((iccid, "COAP"))
        lwm2m = self._keys.get((iccid, "LWM2M"))
        if coap is None or lwm2m is None:
            return coap or lwm2m
        return lwm2m if lwm2m.created_ms > coap.created_ms else coap

    async def for_bootstrap(self, iccid: str, protocol: str = "COAP") -> bytes:
        """The key a ``GET /bootstrap`` hands out: the SIM's DTLS key (the one the CoAPs port
        accepts, whichever protocol set it), a new one when there is none, or a rotated one
        when the existing generated key is older than ``regenerate_after_seconds`` (1NCE OS
        behaviour; 0 turns it off; the old key keeps its grace period). A user's key is kept."""
        psk = self._dtls_psk(iccid)
        if psk is not None:
            age = time.time() - psk.created_ms / 1000
            if psk.user_set or self.regenerate_after_seconds <= 0 or age < self.regenerate_after_seconds:
                self._handed_out(iccid)
                return psk.key
        key = (await self.set(iccid, protocol, self.new_key(), user_set=False)).key
        self._handed_out(iccid)
        return key

    async def for_lwm2m_server(self, iccid: str) -> bytes:
        """The key the LwM2M bootstrap writes into the device's Security object: the SIM's
        current DTLS key (a new one only if it has none), recorded as its LWM2M key too. Not a
        fresh key: the device keeps the credential it bootstrapped with, so a device that
        bootstraps again with its onboarding key always gets in; after a rotation the device
        gets the new key here."""
        current = self.dtls_key(iccid)
        if current is None:
            current = self.new_key()
        lwm2m = self.get(iccid, "LWM2M")
        if lwm2m is None or lwm2m.key != current:
            dtls = self._dtls_psk(iccid)  # a user's key stays a user's key under its new name
            await self.set(iccid, "LWM2M", current, user_set=dtls.user_set if dtls is not None else False)
        self._handed_out(iccid)
        return current
