"""From an uplink to stored events: translation, envelopes, routing, group commit.

The pipeline does not know sockets. Transports call :meth:`Pipeline.uplink` with the SIM they
resolved and an optional ``ack`` to run once the message is durable; the pipeline never awaits,
so the hot path stays a plain function call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from inspector.records import EventRecord, MessageRecord, Pending, PositionRecord, Sim

from . import events

log = logging.getLogger("nce.pipeline")

TRANSLATOR_ERROR = "Translator[UserPayloadError]"


@dataclass(slots=True)
class Translation:
    """What a payload translator made of one payload (exactly one of value/error is set)."""

    value: Any = None
    error: str | None = None
    locations: dict[str, float] | None = None


class PayloadTranslator(Protocol):
    def translate(self, protocol: str, payload: bytes) -> Translation | None:
        """The translation for this protocol's active template, or None when none is active."""


class Submitter(Protocol):
    """Where accepted messages go to become durable (inspector.committer.GroupCommitter)."""

    def submit(self, pending: Pending) -> None: ...


class Router(Protocol):
    def routes(self, event_type: str) -> tuple[int, ...]:
        """Ids of the integrations an event of this type goes to."""


def position_of(sim: Sim, received_ms: int, protocol: str, values: dict[str, float]) -> PositionRecord | None:
    """The GPS position in a message's location values (``lat``/``long``, and ``accuracy`` in
    metres when the device reported one, as LwM2M object 6 resource 3), if it has a valid one."""
    lat, lon = values.get("lat"), values.get("long")
    if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)) or isinstance(lat, bool):
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    accuracy = values.get("accuracy")
    return PositionRecord(sim.iccid, received_ms, "GPS", protocol, float(lat), float(lon),
                          float(accuracy) if isinstance(accuracy, (int, float)) else None)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Pipeline:
    def __init__(self, committer: Submitter, router: Router, *, translator: PayloadTranslator | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.committer = committer
        self.router = router
        self.translator = translator
        self.clock = clock
        self.locator: Any = None  # gateway.locator.service.Locator: geofence events for GPS positions

    def uplink(self, sim: Sim, protocol: str, payload: bytes, topic: str | None = None,
               ack: tuple | None = None) -> None:
        """A UDP or CoAP message: translate if a template is active, store, route."""
        received_ms = self.clock()
        translation = self.translator.translate(protocol, payload) if self.translator else None
        if translation is None:
            event = events.raw_telemetry(sim, received_ms, protocol, payload, topic,
                                         self.router.routes("TELEMETRY_DATA"))
            message = MessageRecord(sim.iccid, protocol, received_ms, payload, topic, None, None, event.event_id)
            self.committer.submit(Pending(message, [event], ack))
            return
        if translation.error is not None:
            error = events.error(sim, received_ms, error_type="DEVICE", message=TRANSLATOR_ERROR,
                                 description=translation.error, payload_exists=True,
                                 routes=self.router.routes("ERROR"))
            message = MessageRecord(sim.iccid, protocol, received_ms, payload, topic, None, translation.error,
                                    error.event_id)
            self.committer.submit(Pending(message, [error], ack))
            return
        self.translated(sim, protocol, payload, translation.value, topic, ack, received_ms,
                        locations=translation.locations)

    def translated(self, sim: Sim, protocol: str, payload: bytes, value: Any, topic: str | None = None,
                   ack: tuple | None = None, received_ms: int | None = None,
                   locations: dict[str, float] | None = None) -> None:
        """A message whose payload is already JSON (BCL result, LwM2M values).

        ``locations`` holds the message's position values (``lat``, ``long``); a valid pair is
        kept in the positions table for the Device Locator, in the same commit.
        """
        received_ms = received_ms if received_ms is not None else self.clock()
        event = events.telemetry(sim, received_ms, protocol, events.json_payload(value, topic),
                                 routes=self.router.routes("TELEMETRY_DATA"))
        position = position_of(sim, received_ms, protocol, locations) if locations else None
        message = MessageRecord(sim.iccid, protocol, received_ms, payload, topic,
                                events.encode_json(value), None, event.event_id)
        if position is None:
            self.committer.submit(Pending(message, [event], ack))
        elif self.locator is None:
            self.committer.submit(Pending(message, [event], ack, [position]))
        else:
            self.committer.submit(self.locator.pending(sim, position, [event], ack, message))

    def emit(self, event: EventRecord, ack: tuple | None = None) -> None:
        """Store and route an event that is not a device message (lifecycle, errors, tests).

        The event's routes are filled in here unless the caller already chose them.
        """
        if not event.routes:
            event.routes = self.router.routes(event.type)
        self.committer.submit(Pending(None, [event], ack))
