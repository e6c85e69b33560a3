"""A log line budget: what unauthenticated peers can make us log is bounded.

Failed DTLS handshakes are worth a line each (reason, address, identity) until someone floods
them; then one line per budget refill says how many were left out, and the metrics keep the
exact counts.
"""

from __future__ import annotations

import time


class LogBudget:
    """Token bucket of log lines: ``allow()`` is True while the budget lasts; ``take_suppressed()``
    tells the next logged line how many were dropped since the previous one."""

    __slots__ = ("rate", "burst", "tokens", "stamp", "suppressed")

    def __init__(self, per_second: float, burst: float | None = None) -> None:
        self.rate = per_second
        self.burst = burst if burst is not None else max(1.0, 10.0 * per_second)
        self.tokens = self.burst
        self.stamp = time.monotonic()
        self.suppressed = 0

    def allow(self) -> bool:
        if self.rate <= 0:
            self.suppressed += 1
            return False
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            self.suppressed += 1
            return False
        self.tokens -= 1.0
        return True

    def take_suppressed(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n
