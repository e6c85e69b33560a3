"""Duties that must run in one process only, each guarded by a lease in the store.

Several processes share one store (``[process] workers``, or several gateways on one store).
Each of them receives and commits messages, but some work must be done once:

- ``delivery/<integration id>``: one delivery worker per integration, so events of a SIM go
  out in order (integrators/worker.py keeps the order within the worker);
- ``retention``: the purge of old rows;
- ``sms`` (several workers only): the SMPP session to the SMSC and the MT outbox sender.

(LwM2M registrations need no lease: each is held, restored and expired by the process its
device's datagrams reach, gateway/transports/reuseport.py.)

Every ``lease_seconds / 3`` this process renews the leases it holds and tries to take the
ones it wants (inspector/leases.py). A lease it could not renew for two thirds of its life is
given up here before it can expire in the store, so two processes never both think they hold
it. A holder that dies stops renewing: its lease lapses after ``lease_seconds``, or at once
when the holder ran on this host and its process id is gone (a ``kill -9``; the supervisor
restarts the worker, another one takes over meanwhile).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import Counter, Gauge

from inspector import leases

log = logging.getLogger("nce.duties")

Callback = Callable[[str], Awaitable[None] | None]


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()[:8]
    except OSError:
        return "-"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "-"


def new_holder() -> str:
    """``host:boot:pidns:pid:token``: where the holder runs (to tell a dead holder on this host
    and in this PID namespace: containers sharing a host name must not judge each other's
    process ids), and unique."""
    return f"{socket.gethostname()}:{_boot_id()}:{_pid_namespace()}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_pid(holder: str) -> int | None:
    parts = holder.split(":")
    return int(parts[3]) if len(parts) == 5 and parts[3].isdigit() else None


def dead_local_holder(holder: str, me: str) -> bool:
    """True if ``holder`` ran on this host in this PID namespace and its process is gone."""
    parts, mine = holder.split(":"), me.split(":")
    if len(parts) != 5 or parts[:3] != mine[:3] or holder == me or not parts[3].isdigit():
        return False
    try:
        os.kill(int(parts[3]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Duties:
    """The leases this process wants, holds, and what to do when one is gained or lost."""

    def __init__(self, store: Any, lease_seconds: float, registry: Any = None, holder: str | None = None) -> None:
        self.store = store
        self.ttl_ms = int(lease_seconds * 1000)
        self.interval = lease_seconds / 3
        self.holder = holder or new_holder()
        self.held: dict[str, float] = {}  # name -> monotonic time of the last successful take
        self._active: set[str] = set()  # names whose ``gained`` callback ran (and no ``lost`` since)
        self._static: dict[str, tuple[Callback | None, Callback | None]] = {}
        self._dynamic: list[tuple[Callable[[], Iterable[str]], Callback | None, Callback | None]] = []
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="leases")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
        self._m_changes = self._m_held = None
        if registry is not None:
            self._m_changes = Counter("nce_duty_lease_changes", "Leases gained or lost by this process",
                                      ["change"], registry=registry)
            self._m_held = Gauge("nce_duty_leases_held", "Leases this process holds", registry=registry)
            self._m_held.set_function(lambda: len(self.held))

    # what is wanted ------------------------------------------------------------------------

    def want(self, name: str, gained: Callback | None = None, lost: Callback | None = None) -> None:
        self._static[name] = (gained, lost)

    def want_each(self, names: Callable[[], Iterable[str]], gained: Callback | None = None,
                  lost: Callback | None = None) -> None:
        """A family of leases whose names change (one per integration)."""
        self._dynamic.append((names, gained, lost))

    def holds(self, name: str) -> bool:
        taken = self.held.get(name)
        return taken is not None and (time.monotonic() - taken) * 1000 < self.ttl_ms * 2 / 3

    # taking ------------------------------------------------------------------------------

    async def _store(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.store.write_with, fn, *args)

    async def claim(self, name: str) -> bool:
        """Take ``name`` now if it is free (used when a duty appears, not to wait for a tick)."""
        if self.holds(name):
            return True
        async with self._lock:
            won = await self._take(name)
            if won:
                self._active.add(name)  # the caller starts the duty; its loss is reported as any other
            return won

    async def _take(self, name: str) -> bool:
        try:
            won = await self._store(leases.take, name, self.holder, now_ms(), self.ttl_ms)
        except Exception as exc:
            log.warning("lease %s: the store did not answer (%s)", name, exc,
                        extra={"event": "lease_error", "lease": name})
            return self.holds(name)
        if won:
            if name not in self.held:
                log.debug("lease %s taken", name, extra={"event": "lease_taken", "lease": name, "holder": self.holder})
                if self._m_changes is not None:
                    self._m_changes.labels("gained").inc()
            self.held[name] = time.monotonic()
        else:
            self.held.pop(name, None)
        return won

    async def _free_dead(self) -> None:
        """Release the leases of holders on this host whose process is gone."""
        for lease in await self._store(leases.holders):
            if lease.holder != self.holder and dead_local_holder(lease.holder, self.holder):
                if await self._store(leases.release, lease.name, lease.holder):
                    log.info("lease %s freed: its holder %s is gone", lease.name, lease.holder,
                             extra={"event": "lease_freed", "lease": lease.name})

    def _wanted(self) -> dict[str, tuple[Callback | None, Callback | None]]:
        wanted = dict(self._static)
        for names, gained, lost in self._dynamic:
            for name in names():
                wanted[name] = (gained, lost)
        return wanted

    async def tick(self) -> None:
        """Renew, take and give up; run the callbacks of what changed."""
        async with self._lock:
            wanted = self._wanted()
            try:
                await self._free_dead()
            except Exception as exc:
                log.warning("reading the leases failed: %s", exc, extra={"event": "lease_error"})
            for name in wanted:
                await self._take(name)
            for name in [n for n in self.held if n not in wanted]:  # a duty that went away
                await self._store(leases.release, name, self.holder)
                del self.held[name]
            before = set(self._active)  # now, not at the start: the watcher may have given some up
            after = self._active = {name for name in self.held if self.holds(name)}
        for name in before - after:
            log.warning("lease %s lost", name, extra={"event": "lease_lost", "lease": name})
            if self._m_changes is not None:
                self._m_changes.labels("lost").inc()
            await _call(wanted.get(name, (None, None))[1], name)
        for name in after - before:
            await _call(wanted.get(name, (None, None))[0], name)

    async def start(self) -> None:
        await self.tick()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="duties")
        self._watcher = loop.create_task(self._watch(), name="duties-watch")

    async def _watch(self) -> None:
        """Give up a lease that could not be renewed in time even while a renewal is stuck on a
        busy store: the duty stops here before the lease can expire and move elsewhere."""
        while True:
            await asyncio.sleep(self.interval / 4)
            wanted = None
            for name in [n for n in self._active if not self.holds(n)]:
                self._active.discard(name)
                log.warning("lease %s not renewed in time; giving the duty up", name,
                            extra={"event": "lease_lost", "lease": name})
                if self._m_changes is not None:
                    self._m_changes.labels("lost").inc()
                wanted = wanted or self._wanted()
                await _call(wanted.get(name, (None, None))[1], name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:
                log.exception("duty leases failed")

    async def halt(self) -> None:
        """Stop renewing and taking (a gateway that is stopping starts no new duty)."""
        for task in (self._task, self._watcher):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._watcher = None

    async def stop(self) -> None:
        """Stop renewing and hand every lease back (the others need not wait for expiry)."""
        await self.halt()
        try:
            await self._store(leases.release_all, self.holder)
        except Exception as exc:
            log.warning("releasing the leases failed (they expire by themselves): %s", exc)
        self.held.clear()
        self._thread.shutdown(wait=True)


async def _call(callback: Callback | None, name: str) -> None:
    if callback is None:
        return
    try:
        result = callback(name)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("duty callback for %s failed", name)
