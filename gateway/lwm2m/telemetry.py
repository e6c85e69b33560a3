"""Device values → TELEMETRY_DATA events (source ``LWM2M``), from Send, notifications and reads.

The event payload is JSON keyed by resource path (``{"/3303/0/5700": 21.5}``); the raw CoAP
payload is kept in the inspector beside it. Location values (object 6: resource 0 latitude,
1 longitude, 3 radius as the accuracy) are handed to the pipeline's location sink as well.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from inspector.records import Sim

from ..locator.service import cell_from_object4
from .formats import decode
from .objects import ObjectRegistry
from .path import LwM2MPath
from .values import Value, values_to_json

log = logging.getLogger("nce.lwm2m.telemetry")

PROTOCOL = "LWM2M"
LOCATION_OBJECT = 6


def locations_of(values: dict[str, Value]) -> dict[str, float] | None:
    """``{"lat", "long"}`` from the first object 6 instance that has both, else None; with
    ``accuracy`` when the instance has a non-negative resource 3 (Radius, metres)."""
    instances: dict[str, dict[int, Any]] = {}
    for path, value in values.items():
        if not path.startswith("/6/"):
            continue
        parts = path.split("/")
        if len(parts) != 4 or parts[3] not in ("0", "1", "3"):
            continue
        instances.setdefault(parts[2], {})[int(parts[3])] = value
    for iid in sorted(instances, key=lambda s: int(s) if s.isdigit() else 0):
        found = instances[iid]
        lat, lon = found.get(0), found.get(1)
        if _number(lat) and _number(lon):
            out = {"lat": float(lat), "long": float(lon)}
            radius = found.get(3)
            if _number(radius) and math.isfinite(radius) and radius >= 0:
                out["accuracy"] = float(radius)
            return out
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


class Telemetry:
    def __init__(self, pipeline: Any, objects: ObjectRegistry, received: Any = None) -> None:
        self.pipeline = pipeline
        self.objects = objects
        self.received = received  # nce_uplink_received_total{protocol="LWM2M"}: messages with values

    def decode(self, content_format: int, payload: bytes, base_path: LwM2MPath | str) -> dict[str, Value]:
        """Values of a payload; raises FormatError (a ValueError) for bad or unsupported input."""
        return decode(content_format, payload, base_path, self.objects)

    def publish(self, sim: Sim, payload: bytes, values: dict[str, Value], ack: tuple | None = None) -> None:
        """Store and route one TELEMETRY_DATA event for these values; ``ack`` runs after commit."""
        if self.received is not None:
            self.received.inc()
        self.pipeline.translated(sim, PROTOCOL, payload, values_to_json(values), ack=ack,
                                 locations=locations_of(values))
        locator = getattr(self.pipeline, "locator", None)
        if locator is not None and any(path.startswith("/4/") for path in values):
            seen = cell_from_object4(values)
            if seen is not None:
                locator.cell_seen(sim, seen, PROTOCOL, time.time_ns() // 1_000_000)
