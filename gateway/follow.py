"""Following changes other processes make in the store (the CLI, another gateway instance).

Each followed table has a version number in ``meta`` that triggers bump on every change. One
task polls all of them and reloads the in-memory copy whose version moved: registry, PSKs,
integrations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("nce.follow")


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

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()
