"""What every delivery target shares: the states, the sender interface, the error type."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

ROLLOUT_STARTED = "ROLLOUT_STARTED"
ROLLOUT_DONE = "ROLLOUT_DONE"
ROLLOUT_FAILED = "ROLLOUT_FAILED"
INTEGRATION_ACTIVE = "INTEGRATION_ACTIVE"
INTEGRATION_FAILED = "INTEGRATION_FAILED"
STATES = (ROLLOUT_STARTED, ROLLOUT_DONE, ROLLOUT_FAILED, INTEGRATION_ACTIVE, INTEGRATION_FAILED)

DISABLED_MESSAGE = "CloudIntegrator[IntegrationDisabled]"


class DeliveryError(Exception):
    """One failed delivery attempt; the message is what an operator needs to read.

    ``permanent`` marks failures that no retry can fix for this event (e.g. a payload over the
    target's size limit): the event is given up with an ERROR event instead of blocking the queue.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    """Delivers one rendered event to one target."""

    #: whether ``send`` uses the event's device (placeholders, topics); the worker parses the
    #: stored envelope only for senders that need it
    needs_device: bool

    async def send(self, body: str, device: dict[str, str] | None, event_type: str) -> None:
        """Return when the target confirmed the event; raise DeliveryError otherwise."""

    async def close(self) -> None: ...


PROBLEM_MESSAGES = {
    "connection": "CloudIntegrator[ConnectionFailed]",
    "publish": "CloudIntegrator[PublishDenied]",
    "credentials": "CloudIntegrator[CredentialsFailed]",
}


class ProblemReporter:
    """Early ERROR events for failures a sender sees outside a single delivery attempt.

    A connection that cannot be made (certificate refused, CA wrong, broker down) would
    otherwise surface only after the last retry, half an hour later with the default schedule.
    Each *distinct* problem (by ``key``) is reported once as an ERROR event (type INTEGRATION);
    at most ``burst`` reports per ``min_interval`` seconds (more than one, so that a transient
    first failure, such as a broker resetting the connection before its TLS alert, cannot hold
    back the report that names the real cause), the same problem again only after
    ``repeat_after`` seconds, and everything is forgotten after a success (``clear``), so the
    next outage is reported again.
    """

    def __init__(self, name: str, emit: Callable[[Any], None] | None, *, min_interval: float = 60.0,
                 repeat_after: float = 3600.0, burst: int = 3, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.emit = emit
        self.min_interval = min_interval
        self.repeat_after = repeat_after
        self.clock = clock
        self._reported: dict[str, float] = {}
        self._recent: deque[float] = deque(maxlen=max(1, burst))

    def report(self, kind: str, key: str, description: str) -> bool:
        """Emit an ERROR event unless this problem was just reported; returns whether it did."""
        now = self.clock()
        seen = self._reported.get(key)
        if seen is not None and now - seen < self.repeat_after:
            return False
        if len(self._recent) == self._recent.maxlen and now - self._recent[0] < self.min_interval:
            return False
        self._reported[key] = now
        self._recent.append(now)
        if self.emit is not None:
            from gateway import events  # here: base stays importable without the gateway package

            self.emit(events.error(None, time.time_ns() // 1_000_000, error_type="INTEGRATION",
                                   message=PROBLEM_MESSAGES.get(kind, "CloudIntegrator[Error]"),
                                   description=f"Integration {self.name}: {description}", payload_exists=False))
        return True

    def clear(self) -> None:
        self._reported.clear()


@dataclass
class SenderContext:
    """What a sender may use besides its config: its integration's name, the gateway's metrics
    and a way to raise early ERROR events."""

    name: str
    metrics: Any = None
    emit: Callable[[Any], None] | None = None
    problems: ProblemReporter | None = None
    targets: Any = None  # integrators.targets.TargetPolicy: the addresses it may connect to

    def __post_init__(self) -> None:
        if self.problems is None:
            self.problems = ProblemReporter(self.name, self.emit)
