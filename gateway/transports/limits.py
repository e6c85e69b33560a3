"""Small bounded structures for traffic from peers the gateway does not trust.

Each one has a fixed most memory, whatever the peers send: a token bucket per key with a
bounded table, a set of recently seen keys with a bounded size, and a log line that is written
at most once per interval with a count of what it stood for.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class RateTable:
    """A token bucket per key: ``rate`` per second, bursts of ``burst``, at most ``max_keys``
    keys. When the table is full, keys whose bucket has refilled are dropped (at most once per
    second, so a flood of new keys costs no scan per datagram); a new key that still finds no
    room is refused, which is the safe answer for unauthenticated peers."""

    def __init__(self, rate: float, burst: float, max_keys: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[Hashable, list[float]] = {}  # key -> [tokens, stamp]
        self._next_prune = 0.0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable, now: float) -> bool:
        """Use one token of ``key``'s bucket; False when there is none."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys and not self._prune(now):
                return False
            bucket = self._buckets[key] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _prune(self, now: float) -> bool:
        if now < self._next_prune:
            return False
        self._next_prune = now + 1.0
        refill = (self.burst - 1.0) / self.rate  # a bucket idle this long has more than a token left
        for key in [k for k, b in self._buckets.items() if now - b[1] >= refill]:
            del self._buckets[key]
        return len(self._buckets) < self.max_keys


class RecentKeys:
    """Keys seen within ``lifetime`` seconds, at most ``max_keys`` of them (the oldest are
    forgotten first)."""

    def __init__(self, lifetime: float, max_keys: int) -> None:
        self.lifetime = lifetime
        self.max_keys = max_keys
        self._expiry: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, key: Hashable, now: float) -> bool:
        """True if ``key`` was seen within the lifetime; otherwise remember it and say False."""
        expiry = self._expiry
        known = expiry.get(key)
        if known is not None and known > now:
            return True
        if known is not None:
            del expiry[key]
        expiry[key] = now + self.lifetime
        while expiry and (len(expiry) > self.max_keys or next(iter(expiry.values())) <= now):
            expiry.popitem(last=False)
        return False


class LogSummary:
    """One log line per ``interval`` at most for an event that anyone can cause at datagram rate.

    The first occurrence is logged at once; later ones within the interval are only counted,
    and the next line says how many there were. The metrics count every one."""

    def __init__(self, logger: logging.Logger, message: str, *, level: int = logging.WARNING,
                 interval: float = 60.0) -> None:
        self.logger = logger
        self.message = message
        self.level = level
        self.interval = interval
        self.suppressed = 0
        self._next = 0.0

    def note(self, detail: str, exc_info: Any = None, **fields: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self.suppressed += 1
            return
        self._next = now + self.interval
        count, self.suppressed = self.suppressed + 1, 0
        self.logger.log(self.level, "%s (%d since the last report; the latest: %s)", self.message, count, detail,
                        exc_info=exc_info, extra={"occurrences": count, **fields})
