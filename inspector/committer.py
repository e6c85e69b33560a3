"""Group commit: many uplinks, one transaction, then their acknowledgements.

Uplinks are appended to a list from the event loop (no task, no future per message). One
coroutine takes everything that is pending, commits it in the store's writer thread, and then
runs each uplink's ``ack``. Whatever arrives while a commit runs goes into the next one, so
the batch grows with the load and the cost of a commit (and its fsync) is shared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .records import Pending

log = logging.getLogger("nce.store")
T = TypeVar("T")


class CommitObserver:
    """Hooks the committer calls after each commit (metrics, delivery wake-up)."""

    def committed(self, batch: list[Pending], seconds: float) -> None:  # pragma: no cover - interface
        pass


class GroupCommitter:
    def __init__(self, store: Any, *, max_batch: int = 5000,
                 observers: list[CommitObserver] | None = None) -> None:
        self._store = store
        self._max_batch = max_batch
        self._pending: list[Pending] = []
        self.observers = observers or []
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._idle: asyncio.Event | None = None
        self.commits = 0
        self.failures = 0

    # life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Commit what is pending, then stop."""
        await self.flush()
        if getattr(self._store, "device_index_due", None) is not None:
            try:  # leave no tail for the next start to index (it would, from the mark, if killed)
                await asyncio.get_running_loop().run_in_executor(self._writer, self._store.fill_device_index)
            except Exception:
                log.exception("device index fill at stop failed; the next start catches up")
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._writer.shutdown(wait=True)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (used by tests and shutdown)."""
        while self._pending or (self._idle is not None and not self._idle.is_set()):
            if self._pending and self._wake is not None:
                self._wake.set()
            await asyncio.sleep(0.002)

    # the hot path -----------------------------------------------------------------------

    def submit(self, pending: Pending) -> None:
        self._pending.append(pending)
        wake = self._wake
        if wake is not None and not wake.is_set():
            wake.set()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run any other write in the writer thread, serialised with the group commits."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def _run(self) -> None:
        assert self._wake is not None and self._idle is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                self._idle.clear()
                if len(self._pending) <= self._max_batch:
                    batch, self._pending = self._pending, []
                else:
                    batch = self._pending[: self._max_batch]
                    del self._pending[: self._max_batch]
                started = time.perf_counter()
                try:
                    await loop.run_in_executor(self._writer, self._store.commit, batch)
                except Exception:
                    # Nothing of this batch is acknowledged: CoAP clients retransmit, and the
                    # failure is visible in logs and metrics. Retry once after a pause.
                    self.failures += 1
                    log.exception("group commit of %d uplinks failed; retrying once", len(batch))
                    await asyncio.sleep(0.5)
                    try:
                        await loop.run_in_executor(self._writer, self._store.commit, batch)
                    except Exception:
                        log.exception("group commit failed again; %d uplinks not stored", len(batch))
                        continue
                seconds = time.perf_counter() - started
                self.commits += 1
                for pending in batch:
                    ack = pending.ack
                    if ack is not None:
                        try:
                            ack[0](*ack[1:])
                        except Exception:  # an ack must never stop the committer
                            log.exception("acknowledgement after commit failed")
                for observer in self.observers:
                    observer.committed(batch, seconds)
                await self._fill_device_index(loop)
            self._idle.set()

    async def _fill_device_index(self, loop: asyncio.AbstractEventLoop) -> None:
        """Index the messages of the last commits by device when due (every ~0.5 s under load),
        in the writer thread between two commits (store.fill_device_index): after the
        acknowledgements, so no answer waits for it. A failure only delays the index (history
        reads the messages above its mark from the table itself); the next fill catches up."""
        due = getattr(self._store, "device_index_due", None)
        if due is None or not due():
            return
        try:
            await loop.run_in_executor(self._writer, self._store.fill_device_index)
        except Exception:
            log.exception("device index fill failed; the next one catches up")
