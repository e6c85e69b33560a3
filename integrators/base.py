"""What every delivery target shares: the states, the sender interface, the error type."""

from __future__ import annotations

from typing import Protocol

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
