"""Login throttling that holds under concurrency, and fair scheduling of password checks.

**Attempts are counted before they are checked.** :meth:`LoginLimiter.reserve` takes a slot in
the user name's and the client address's window *before* the password is verified and refuses
(429) when either is full; a wrong password keeps its slot, a right one gives its slot back
(and forgets the user's finished failures). So however many requests arrive in parallel, at
most ``per_user`` checks run for one user name and ``per_ip`` for one address per window.
IPv6 clients are counted per /64 (one host usually owns the whole prefix).

**Password checks are served fairly.** argon2id takes ~0.35 s of CPU and runs in one thread
(a login flood must not take both cores from the devices). Checks wait in one queue per client
address and the queues are served round-robin, so a burst from one address delays a login from
another by about one check, not by the whole burst. At most ``max_pending`` checks wait in all;
beyond that a login answers 429 at once instead of growing the queue.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def client_key(address: str) -> str:
    """What the per-address limit counts: the IPv4 address, or the /64 of an IPv6 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(eq=False)
class Attempt:
    """One login attempt holding a slot in its user's and its address's window."""

    username: str
    ip: str
    at: float
    done: bool = False  # the password was checked (and was wrong)


class LoginLimiter:
    """Login attempts per user name and per client address in a sliding window (in memory)."""

    MAX_KEYS = 100_000

    def __init__(self, per_user: int, per_ip: int, window_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_user = per_user
        self.per_ip = per_ip
        self.window = window_seconds
        self.clock = clock
        self._users: OrderedDict[str, deque[Attempt]] = OrderedDict()
        self._ips: OrderedDict[str, deque[Attempt]] = OrderedDict()

    def _recent(self, table: OrderedDict[str, deque[Attempt]], key: str, now: float) -> deque[Attempt] | None:
        attempts = table.get(key)
        if attempts is None:
            return None
        while attempts and attempts[0].at <= now - self.window:
            attempts.popleft()
        if not attempts:
            del table[key]
            return None
        return attempts

    def retry_after(self, username: str, ip: str) -> float:
        """Seconds until a login may be tried again (0: now)."""
        return self._wait(username, client_key(ip), self.clock())

    def _wait(self, username: str, ip: str, now: float) -> float:
        wait = 0.0
        for table, key, limit in ((self._users, username, self.per_user), (self._ips, ip, self.per_ip)):
            attempts = self._recent(table, key, now)
            if attempts is not None and len(attempts) >= limit:
                wait = max(wait, attempts[len(attempts) - limit].at + self.window - now)
        return wait

    def reserve(self, username: str, ip: str) -> Attempt | float:
        """Count an attempt now, before its check: the attempt, or the seconds to wait (429)."""
        now = self.clock()
        key = client_key(ip)
        wait = self._wait(username, key, now)
        if wait > 0:
            return wait
        attempt = Attempt(username, key, now)
        for table, name in ((self._users, username), (self._ips, key)):
            attempts = table.get(name)
            if attempts is None:
                attempts = table[name] = deque()
            else:
                table.move_to_end(name)
            attempts.append(attempt)
            if len(table) > self.MAX_KEYS:
                table.popitem(last=False)
        return attempt

    def failed(self, attempt: Attempt) -> None:
        """The password was wrong (or the user unknown): the slot stays taken for the window."""
        attempt.done = True

    def cancel(self, attempt: Attempt) -> None:
        """No password was checked (the check queue was full): give the slot back."""
        self._drop(attempt)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the slot is given back and the user's finished failures are
        forgotten (checks still running for the user keep their slots)."""
        self._drop(attempt)
        attempts = self._users.get(attempt.username)
        if attempts is not None:
            kept = deque(a for a in attempts if not a.done)
            if kept:
                self._users[attempt.username] = kept
            else:
                del self._users[attempt.username]

    def _drop(self, attempt: Attempt) -> None:
        for table, key in ((self._users, attempt.username), (self._ips, attempt.ip)):
            attempts = table.get(key)
            if attempts is not None and attempt in attempts:
                attempts.remove(attempt)
                if not attempts:
                    del table[key]


class Busy(Exception):
    """Too many password checks are waiting; the caller answers 429 without queueing more."""


@dataclass(eq=False)
class _Job:
    fn: Callable[..., Any]
    args: tuple
    future: asyncio.Future
    capped: bool = field(default=True)


class FairChecks:
    """Runs blocking password work in ``executor`` (``threads`` at a time), one FIFO per source,
    sources served round-robin; ``max_pending`` bounds the capped jobs waiting or running."""

    def __init__(self, executor: Executor, *, threads: int = 1, max_pending: int = 32) -> None:
        self.executor = executor
        self.threads = threads
        self.max_pending = max_pending
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._running = 0
        self._pending = 0  # capped jobs queued or running
        self.refused = 0

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, source: str, fn: Callable[..., T], *args: Any, capped: bool = True) -> T:
        """``fn(*args)`` in the executor when ``source``'s turn comes. ``capped=False`` (password
        hashing by an authenticated administrator) waits in line but is never refused."""
        if capped and self._pending >= self.max_pending:
            self.refused += 1
            raise Busy(f"{self._pending} password checks are waiting")
        job = _Job(fn, args, asyncio.get_running_loop().create_future(), capped)
        if capped:
            self._pending += 1
        queue = self._queues.get(source)
        if queue is None:
            queue = self._queues[source] = deque()
        queue.append(job)
        self._pump()
        try:
            return await job.future
        finally:
            if not job.future.done():  # cancelled while waiting: skipped when its turn comes
                job.future.cancel()

    def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running < self.threads and self._queues:
            source, queue = next(iter(self._queues.items()))
            job = queue.popleft()
            if queue:
                self._queues.move_to_end(source)  # the next source's turn
            else:
                del self._queues[source]
            if job.future.done():  # the request went away before its turn
                self._finish(job)
                continue
            self._running += 1
            work = loop.run_in_executor(self.executor, job.fn, *job.args)
            work.add_done_callback(lambda done, job=job: self._completed(job, done))

    def _finish(self, job: _Job) -> None:
        if job.capped:
            self._pending -= 1

    def _completed(self, job: _Job, work: asyncio.Future) -> None:
        self._running -= 1
        self._finish(job)
        if not job.future.done():
            if work.cancelled():
                job.future.cancel()
            elif work.exception() is not None:
                job.future.set_exception(work.exception())  # type: ignore[arg-type]
            else:
                job.future.set_result(work.result())
        if self._queues:
            self._pump()
