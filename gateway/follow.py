"""Following changes other processes make in the store (the CLI, another gateway process).

Each followed table has a version number in ``meta`` that triggers bump on every change. One
task checks all of them and reloads the in-memory copy whose version moved: registry, PSKs,
integrations. It checks every ``interval`` seconds (polling), and at once when woken:

- by the control socket (gateway/control.py: the CLI of this host waits for the answer);
- on PostgreSQL, by a notification (``wake()``, called from the store's listener thread,
  inspector/store/pg_listen.py): every process on the database sees a change within
  milliseconds, and polling is only the fallback for when the listening connection is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("nce.follow")

MIN_GAP = 0.05  # seconds between two checks at least


@dataclass
class _Followed:
    name: str
    version: Callable[[], int]  # blocking: read from the store
    current: Callable[[], int]  # the version the in-memory copy was built from
    reload: Callable[[], Awaitable[None]]


class StoreFollower:
    def __init__(self, read: Callable[..., Awaitable[int]], interval: float) -> None:
        self.read = read
        self.interval = interval
        self._followed: list[_Followed] = []
        # the poll loop and the control socket (gateway/control.py) may ask at the same time
        self._checking = asyncio.Lock()
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def follow(self, name: str, version: Callable[[], int], current: Callable[[], int],
               reload: Callable[[], Awaitable[None]]) -> None:
        self._followed.append(_Followed(name, version, current, reload))

    async def check(self) -> None:
        async with self._checking:
            await self._check()

    async def _check(self) -> None:
        for item in self._followed:
            try:
                if await self.read(item.version) != item.current():
                    await item.reload()
                    log.info("%s reloaded from the store", item.name, extra={"event": "reloaded", "what": item.name})
            except Exception:
                log.exception("reloading %s failed", item.name)

    def wake(self, _key: str | None = None) -> None:
        """Check now instead of at the next poll (thread-safe: a listener thread calls it).
        Wakes that arrive during a check make one more check, not one each."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the gateway is gone
                loop.call_soon_threadsafe(self._woken.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._woken.set()  # a check at once: what changed while the gateway was starting
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._woken.wait()
                self._woken.clear()  # before the check: a change committed during it wakes the next
                await self.check()
                # a burst of notifications (RADIUS bindings under load) costs at most one check
                # per MIN_GAP, not one per commit
                await asyncio.sleep(MIN_GAP)
        finally:
            self._loop = None
