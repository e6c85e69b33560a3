"""What both AWS IoT Core senders share: the topic of an event (SPEC §4), AWS's limits, and
the publish rate limit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .base import DeliveryError

#: AWS IoT Core: a message payload may be at most 128 KiB (MQTT and HTTPS publish alike)
MAX_PAYLOAD_BYTES = 128 * 1024
#: AWS IoT Core: a topic is at most 256 bytes of UTF-8 with at most 7 forward slashes
MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7

FIXED_TOPICS = {
    "LIFECYCLE": "lifecycle",
    "ERROR": "error",
    "LOCATION": "location",
    "GEOFENCE": "geofence",
    "TEST_MESSAGE": "integration-status",
    "NETWORK_EVENT": "network-events",  # the gateway's own types (docs/connectivity.md)
    "USAGE": "usage",
}


def aws_topic(envelope: dict[str, Any]) -> str:
    """The AWS IoT Core topic of one event envelope (SPEC §4).

    TELEMETRY_DATA from UDP and LwM2M → ``{iccid}/messages``; from CoAP → ``{iccid}/{t}``, or
    ``{iccid}`` when the device gave no ``t``. The other types have one fixed topic each.
    """
    event_type = envelope.get("type")
    fixed = FIXED_TOPICS.get(event_type)  # type: ignore[arg-type]
    if fixed is not None:
        return fixed
    if event_type == "MO_SMS":  # nce-gateway's own event type (docs/sms.md)
        iccid = (envelope.get("device") or {}).get("iccid")
        if not iccid:
            raise ValueError("an MO_SMS event without device.iccid has no topic")
        return f"{iccid}/sms"
    if event_type != "TELEMETRY_DATA":
        raise ValueError(f"no AWS IoT Core topic for event type {event_type!r}")
    try:
        iccid = envelope["device"]["iccid"]
    except (KeyError, TypeError):
        raise ValueError("a TELEMETRY_DATA event without device.iccid has no topic") from None
    if envelope.get("source") == "COAP":
        t = (envelope.get("payload") or {}).get("topic")
        return f"{iccid}/{t}" if t else iccid
    return f"{iccid}/messages"


def topic_for(event_type: str, body: str) -> str:
    """``aws_topic`` of a rendered event; only telemetry needs its envelope parsed."""
    fixed = FIXED_TOPICS.get(event_type)
    if fixed is not None:
        return fixed
    try:
        return aws_topic(json.loads(body))
    except ValueError as exc:
        raise DeliveryError(str(exc), permanent=True) from None


def check_publish(topic: str, payload: bytes) -> None:
    """AWS IoT Core's hard limits; an event over them can never be delivered: permanent."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DeliveryError(f"the event is {len(payload):,} bytes; AWS IoT Core accepts at most "
                            f"{MAX_PAYLOAD_BYTES:,} bytes (128 KiB) per message", permanent=True)
    raw = topic.encode("utf-8")
    if len(raw) > MAX_TOPIC_BYTES:
        raise DeliveryError(f"topic {topic[:60]!r}... is {len(raw)} bytes; AWS IoT Core accepts at most "
                            f"{MAX_TOPIC_BYTES}", permanent=True)
    if topic.count("/") > MAX_TOPIC_SLASHES:
        raise DeliveryError(f"topic {topic!r} has {topic.count('/')} slashes; AWS IoT Core accepts at most "
                            f"{MAX_TOPIC_SLASHES}", permanent=True)


class TokenBucket:
    """At most ``rate`` operations per second, bursts of at most ``burst``.

    ``reserve()`` takes a token and returns how long the caller must wait before using it (0
    when one was available). Tokens may go negative: concurrent callers queue up behind each
    other in time instead of all waking at once, and nothing sleeps while tokens are left.
    """

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (no bucket means no limit)")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate / 10))
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock()

    def reserve(self) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1.0
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate
