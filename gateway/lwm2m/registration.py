"""LwM2M registrations: compact in-memory records, their indexes, expiry, and persistence.

A gateway may hold 100,000 registrations, so a :class:`Registration` is a slotted object of
small fields: the ICCID string is the SIM registry's own object, the link list is interned
(devices of one firmware send the same list, so they share one string), and the device's
remote is the transport's own address object. Parsed link lists are cached by text.

Changes are written to the store in groups (:class:`RegistrationWriter`): everything that
changed while the previous write ran goes into the next transaction, so thousands of
registrations per second cost a few transactions per second. A Register is answered only
after its row is committed (acknowledged means durable, as for uplinks).
"""

from __future__ import annotations

import asyncio
import logging
import base64
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..lwm2m.linkformat import Registration as LinkRegistration
from ..lwm2m.linkformat import parse_registration
from . import storage

log = logging.getLogger("nce.lwm2m.registration")

_MAX_INTERNED = 10_000


class Registration:
    """One registered LwM2M client (endpoint name = the SIM's ICCID).

    ``remote`` is the way back to the device: an ``(ip, port)`` tuple for plain CoAP (the
    request sender builds the transport's remote object when it needs one, which saves an
    object per registration), the transport's remote object for DTLS, or None when the
    device must be heard from first (a DTLS registration restored after a restart).
    Registration and update times are kept in the store only.
    """

    __slots__ = ("id", "iccid", "lifetime", "version", "binding", "queue", "sms", "links", "remote", "expires_ms",
                 "awake_until")

    def __init__(self, reg_id: str, iccid: str, lifetime: int, version: str, binding: str, queue: bool,
                 sms: str | None, links: str, remote: Any, expires_ms: int) -> None:
        self.id = reg_id
        self.iccid = iccid
        self.lifetime = lifetime
        self.version = version
        self.binding = binding
        self.queue = queue
        self.sms = sms
        self.links = links
        self.remote = remote
        self.expires_ms = expires_ms
        self.awake_until = 0.0  # monotonic; queue mode: the device listens until then

    def __repr__(self) -> str:
        return f"<Registration {self.id} {self.iccid} lt={self.lifetime} b={self.binding}>"

    @property
    def address(self) -> tuple[str, int]:
        remote = self.remote
        if type(remote) is tuple:
            return remote
        address = getattr(remote, "address", None)
        if isinstance(address, tuple) and len(address) >= 2:
            return address[0], address[1]
        return getattr(remote, "ip", "") or "", 0

    @property
    def transport(self) -> str:
        remote = self.remote
        if remote is None or type(remote) is tuple:
            return "coap"
        return "coaps" if getattr(remote, "scheme", "coap") == "coaps" else "coap"

    def row(self, now_ms: int) -> tuple:
        """The store row; ``now_ms`` is the update time (and the registration time of a new row)."""
        ip, port = self.address
        return (self.id, self.iccid, self.lifetime, self.version, self.binding, int(self.queue), self.sms,
                self.links, self.transport, ip, port, now_ms, now_ms, self.expires_ms)

    def reachable(self, now: float | None = None) -> bool:
        """Whether a request can be sent now (queue mode: only while the device is awake)."""
        if self.remote is None:
            return False
        if not self.queue:
            return True
        return (time.monotonic() if now is None else now) < self.awake_until

    def to_dict(self) -> dict[str, Any]:
        ip, port = self.address
        return {"registrationId": self.id, "endpoint": self.iccid, "lifetime": self.lifetime,
                "lwm2mVersion": self.version, "binding": self.binding, "queueMode": self.queue, "sms": self.sms,
                "objectLinks": self.links, "transport": self.transport, "ip": ip, "port": port,
                "expires": self.expires_ms}


def compact_remote(remote: Any) -> Any:
    """What a registration keeps of a transport remote: the address of a plain UDP remote."""
    if remote is not None and getattr(remote, "scheme", None) == "coap" and getattr(remote, "psk_identity", None) \
            is None and isinstance(getattr(remote, "address", None), tuple):
        return remote.address
    return remote


class RegistrationStore:
    """Registrations by id and by ICCID (one per SIM), with expiry."""

    def __init__(self, grace_seconds: float = 60.0, clock: Callable[[], int] | None = None) -> None:
        self.grace_ms = int(grace_seconds * 1000)
        self.by_id: dict[str, Registration] = {}
        self.by_iccid: dict[str, Registration] = {}
        self._links: dict[str, str] = {}
        self._parsed: dict[str, LinkRegistration] = {}
        self._random = bytearray()
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[Registration]:
        return iter(list(self.by_id.values()))

    def get(self, reg_id: str) -> Registration | None:
        return self.by_id.get(reg_id)

    def of(self, iccid: str) -> Registration | None:
        return self.by_iccid.get(iccid)

    def intern_links(self, text: str) -> str:
        cached = self._links.get(text)
        if cached is not None:
            return cached
        if len(self._links) < _MAX_INTERNED:
            self._links[text] = text
        return text

    def parsed_links(self, text: str) -> LinkRegistration:
        """The parsed link list (cached by text; the text was validated when it was stored)."""
        parsed = self._parsed.get(text)
        if parsed is None:
            parsed = parse_registration(text)
            if len(self._parsed) >= 1000:
                self._parsed.clear()
            self._parsed[text] = parsed
        return parsed

    def new_id(self) -> str:
        """8 random URL-safe characters (48 bits); random bytes are fetched 6 KiB at a time."""
        while True:
            if len(self._random) < 6:
                self._random = bytearray(os.urandom(6144))
            reg_id = base64.urlsafe_b64encode(self._random[-6:]).decode("ascii")
            del self._random[-6:]
            if reg_id not in self.by_id:
                return reg_id

    def expiry(self, lifetime: int, now_ms: int) -> int:
        return now_ms + lifetime * 1000

    def add(self, reg: Registration) -> Registration | None:
        """Index a registration; returns the SIM's previous one, which it replaces."""
        old = self.by_iccid.get(reg.iccid)
        if old is not None:
            self.by_id.pop(old.id, None)
        self.by_id[reg.id] = reg
        self.by_iccid[reg.iccid] = reg
        return old

    def remove(self, reg: Registration) -> bool:
        if self.by_id.get(reg.id) is not reg:
            return False
        del self.by_id[reg.id]
        if self.by_iccid.get(reg.iccid) is reg:
            del self.by_iccid[reg.iccid]
        return True

    def expired(self, now_ms: int | None = None) -> list[Registration]:
        """Registrations whose lifetime plus grace period has passed (not removed here)."""
        now_ms = self.clock() if now_ms is None else now_ms
        limit = now_ms - self.grace_ms
        return [reg for reg in list(self.by_id.values()) if reg.expires_ms < limit]


class RegistrationWriter:
    """Group-writes registration changes through the store's writer thread."""

    def __init__(self, write: Callable[..., Any], connection: Callable[[], Any]) -> None:
        self._write = write  # GroupCommitter.write
        self._connection = connection  # the store's per-thread connection
        self._pending: list[tuple[tuple, tuple | None]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._busy = False

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lwm2m-registration-writer")

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def flush(self) -> None:
        while self._pending or self._busy:
            if self._wake is not None:
                self._wake.set()
            await asyncio.sleep(0.002)

    def submit(self, op: tuple, done: tuple | None = None) -> None:
        """Queue one op; ``done`` is ``(callable, *args)``, called with ``first_time`` appended
        once the op is committed."""
        self._pending.append((op, done))
        if self._wake is not None and not self._wake.is_set():
            self._wake.set()

    def _apply(self, ops: list[tuple]) -> list[bool]:
        return storage.apply_registration_ops(self._connection(), ops)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                self._busy = True
                try:
                    first: list[bool | None] = list(await self._write(self._apply, [op for op, _ in batch]))
                except Exception:
                    log.exception("writing %d registration change(s) failed; writing them one by one", len(batch))
                    first = await self._one_by_one(batch)
                self._busy = False
                for (_, done), is_first in zip(batch, first):
                    if done is not None and is_first is not None:
                        try:
                            done[0](*done[1:], is_first)
                        except Exception:
                            log.exception("callback after a registration write failed")

    async def _one_by_one(self, batch: list[tuple[tuple, tuple | None]]) -> list[bool | None]:
        """Each op in its own transaction, so that one op the store refuses fails only its own
        request (None: not stored, not answered; the device retransmits or registers again)."""
        out: list[bool | None] = []
        for op, _ in batch:
            try:
                out.extend(await self._write(self._apply, [op]))
            except Exception:
                log.exception("registration change %s of %s not stored", op[0], op[1][1] if op[0] == "put" else op[1])
                out.append(None)
        return out
