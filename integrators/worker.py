"""The delivery worker of one integration: outbox → target, in order per SIM, with retries.

Rows are loaded from the outbox in sequence order into one queue per SIM. A fixed number of
coroutines take SIMs whose head event is due; a SIM is held by at most one coroutine at a time,
so its events go out strictly in order while different SIMs proceed in parallel. A delivered
event's outbox row is deleted afterwards (in batches): a crash in between delivers it again,
never loses it (at-least-once). When an event's last attempt fails, the integration becomes
INTEGRATION_FAILED, an ERROR event is raised, and the worker waits. A restart (CLI, API)
replaces the worker and its sender: every waiting event starts again from attempt 1
(``IntegrationManager``), and this worker's last attempt counts can no longer reach the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway import events
from inspector.records import OutboxItem, Sim

from .base import DISABLED_MESSAGE, INTEGRATION_FAILED, DeliveryError, Sender

log = logging.getLogger("nce.delivery")

REJECTED_MESSAGE = "CloudIntegrator[EventRejected]"


def _sim_of(device: dict[str, str] | None) -> Sim | None:
    """The SIM an ERROR event about a delivery belongs to (none for TEST_MESSAGE)."""
    if not device:
        return None
    return Sim(iccid=device["iccid"], imsi=device["imsi"], ip_address=device["ip"])


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class IntegrationHandle:
    """What the running gateway knows of one integration (a row of the store, parsed)."""

    id: int
    uuid: str
    name: str
    kind: str
    origin: str
    state: str
    config: dict[str, Any]
    event_types: frozenset[str] = field(default_factory=frozenset)
    restarts: int = 0  # the store's restart count this handle was read with

    @property
    def retry_schedule(self) -> list[float]:
        return [float(s) for s in self.config.get("retry_schedule", [150, 180, 420, 1020])]

    @property
    def json_payload_enabled(self) -> bool:
        return bool(self.config.get("json_payload_enabled", False))


class _Round:
    """The in-memory state of one active period of a worker (discarded when it fails or stops)."""

    def __init__(self) -> None:
        self.queues: dict[str | None, deque[OutboxItem]] = {}
        self.ready: asyncio.Queue[str | None] = asyncio.Queue()
        self.loaded_upto = 0
        self.in_memory = 0
        self.tasks: list[asyncio.Task] = []
        self.alive = True  # timers of a dead round still fire, into a queue nobody reads


class DeliveryWorker:
    def __init__(self, handle: IntegrationHandle, sender: Sender, *, store: Any,
                 read: Callable[..., Awaitable[Any]], write: Callable[..., Awaitable[Any]],
                 emit: Callable[[Any], None], metrics: Any, concurrency: int = 64, window: int = 20000,
                 poll_seconds: float = 1.0, clock: Callable[[], int] = now_ms) -> None:
        self.handle = handle
        self.sender = sender
        self.store = store
        self.read = read
        self.write = write
        self.emit = emit
        self.metrics = metrics
        self.concurrency = max(1, concurrency)
        self.window = window
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.needs_device = sender.needs_device
        self._round: _Round | None = None
        self._wake = asyncio.Event()
        self._loader: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None
        self._done: list[int] = []
        self._attempts: list[tuple[int, int, int]] = []
        self._flush_lock = asyncio.Lock()
        self._label = handle.name
        # bound once: labels() costs more than the increment, and this runs per event
        self._m_delivered = metrics.delivered.labels(self._label)
        self._m_latency = metrics.delivery_latency.labels(self._label)
        self.delivered = 0
        #: (epoch ms, reason) of the latest failed attempt, shown by the API and the console
        self.last_error: tuple[int, str] | None = None

    # life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self.handle.state != INTEGRATION_FAILED:
            self._begin_round()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name=f"flush-{self._label}")

    def _begin_round(self) -> None:
        loop = asyncio.get_running_loop()
        rnd = _Round()
        self._round = rnd
        rnd.tasks = [loop.create_task(self._deliver_loop(rnd), name=f"deliver-{self._label}")
                     for _ in range(self.concurrency)]
        self._loader = loop.create_task(self._load_loop(rnd), name=f"load-{self._label}")

    async def _end_round(self) -> None:
        rnd, self._round = self._round, None
        if rnd is None:
            return
        rnd.alive = False
        tasks = [*rnd.tasks, *([self._loader] if self._loader else [])]
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)
        self.metrics.queue_depth.labels(self._label).set(0)

    async def stop(self) -> None:
        await self._end_round()
        if self._flusher:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()
        await self.sender.close()

    def notify(self) -> None:
        """New outbox rows were committed for this integration."""
        self._wake.set()

    # loading --------------------------------------------------------------------------

    async def _load_loop(self, rnd: _Round) -> None:
        while rnd.alive:
            self._wake.clear()  # before reading: a commit during the read wakes the next wait
            room = self.window - rnd.in_memory
            items: list[OutboxItem] = []
            if room > 0:
                try:
                    items = await self.read(self.store.load_outbox, self.handle.id, rnd.loaded_upto, room)
                except Exception:
                    log.exception("loading the outbox of %s failed", self._label)
            if items:
                log.debug("loaded outbox rows %d..%d of %s", items[0].seq, items[-1].seq, self._label)
            for item in items:
                queue = rnd.queues.get(item.iccid)
                if queue is None:
                    rnd.queues[item.iccid] = queue = deque()
                    rnd.ready.put_nowait(item.iccid)
                queue.append(item)
                rnd.loaded_upto = item.seq
            rnd.in_memory += len(items)
            self.metrics.queue_depth.labels(self._label).set(rnd.in_memory)
            if len(items) < room or room <= 0:
                try:
                    async with asyncio.timeout(self.poll_seconds):  # not wait_for: see mqtt.connect
                        await self._wake.wait()
                except TimeoutError:
                    pass

    # delivering -----------------------------------------------------------------------

    async def _deliver_loop(self, rnd: _Round) -> None:
        loop = asyncio.get_running_loop()
        while rnd.alive:
            key = await rnd.ready.get()
            queue = rnd.queues.get(key)
            if not queue:
                rnd.queues.pop(key, None)
                continue
            item = queue[0]
            wait_ms = item.next_attempt_ms - self.clock()
            if wait_ms > 0:
                loop.call_later(wait_ms / 1000, rnd.ready.put_nowait, key)
                continue
            try:
                body = events.render_for_integration(item.body, item.event_type, self.handle.json_payload_enabled)
                device = json.loads(item.body).get("device") if self.needs_device else None
                await self.sender.send(body, device, item.event_type)
            except DeliveryError as exc:
                if not rnd.alive:
                    return
                if await self._attempt_failed(rnd, key, item, exc):
                    continue
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a sender bug must not kill delivery silently
                log.exception("sender of %s raised", self._label)
                if not rnd.alive:
                    return
                if await self._attempt_failed(rnd, key, item, DeliveryError(f"internal error: {exc!r}")):
                    continue
                return
            self._done.append(item.seq)  # delivered: recorded even if the round ended meanwhile
            log.debug("delivered outbox row %d to %s", item.seq, self._label)
            if not rnd.alive:
                return
            queue.popleft()
            rnd.in_memory -= 1
            self.delivered += 1
            self._m_delivered.inc()
            self._m_latency.observe(max(0, self.clock() - item.created_ms) / 1000)
            if queue:
                rnd.ready.put_nowait(key)
            else:
                del rnd.queues[key]
                if rnd.in_memory < self.window // 2:
                    self._wake.set()

    async def _attempt_failed(self, rnd: _Round, key: str | None, item: OutboxItem, exc: DeliveryError) -> bool:
        """Record a failed attempt; returns False when the integration was disabled."""
        item.attempts += 1
        self.last_error = (time.time_ns() // 1_000_000, str(exc))
        schedule = self.handle.retry_schedule
        log.warning("delivery to %s failed (attempt %d of %d): %s", self._label, item.attempts,
                    len(schedule) + 1, exc, extra={"event": "delivery_failed", "integration": self._label,
                                                    "attempt": item.attempts, "iccid": item.iccid})
        if exc.permanent:
            rnd.queues[key].popleft()
            rnd.in_memory -= 1
            self._done.append(item.seq)
            self.metrics.failed.labels(self._label).inc()
            envelope = json.loads(item.body)
            self.emit(events.error(_sim_of(envelope.get("device")), self.clock(), error_type="INTEGRATION",
                                   message=REJECTED_MESSAGE,
                                   description=f"{self.handle.name}: event {envelope.get('id')} "
                                               f"cannot be delivered: {exc}", payload_exists=False))
            if rnd.queues[key]:
                rnd.ready.put_nowait(key)
            else:
                del rnd.queues[key]
            return True
        if item.attempts > len(schedule):
            if rnd.alive:  # only the first SIM to exhaust its attempts disables the integration
                rnd.alive = False
                await self._disable(item, exc)
            return False
        delay = schedule[item.attempts - 1]
        item.next_attempt_ms = self.clock() + int(delay * 1000)
        self._attempts.append((item.seq, item.attempts, item.next_attempt_ms))
        self.metrics.retried.labels(self._label).inc()
        asyncio.get_running_loop().call_later(delay, rnd.ready.put_nowait, key)
        return True

    async def _disable(self, item: OutboxItem, exc: DeliveryError) -> None:
        self.metrics.failed.labels(self._label).inc()
        self.metrics.integration_state.labels(self._label).set(1)
        self._attempts.append((item.seq, item.attempts, 0))
        await self._flush()  # the counts are in the store before anyone can see FAILED and restart
        log.error("integration %s disabled after %d failed attempts: %s", self._label, item.attempts, exc,
                  extra={"event": "integration_failed", "integration": self._label})
        await self.write(self.store.set_integration_state, self.handle.id, INTEGRATION_FAILED)
        self.handle.state = INTEGRATION_FAILED  # after the store has it: readers see one truth
        sim = _sim_of(json.loads(item.body).get("device"))
        self.emit(events.error(sim, self.clock(), error_type="INTEGRATION", message=DISABLED_MESSAGE,
                               description=f"Integration {self.handle.name} was disabled after "
                                           f"{item.attempts} failed delivery attempts; last error: {exc}",
                               payload_exists=False))
        asyncio.get_running_loop().create_task(self._end_round())

    # bookkeeping ------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            # shielded: stop() cancels this loop, and a cancelled write still queued behind a
            # busy writer thread would be dropped with the rows it took (delivered again later)
            await asyncio.shield(self._flush())

    async def _flush(self) -> None:
        async with self._flush_lock:
            if not self._done and not self._attempts:
                return
            done, self._done = self._done, []
            attempts, self._attempts = self._attempts, []
            try:
                await self.write(self.store.finish_outbox, done, attempts, self.handle.restarts)
            except Exception:
                log.exception("recording deliveries of %s failed; they may be delivered again", self._label)
