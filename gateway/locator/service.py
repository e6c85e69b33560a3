"""The Device Locator at run time: cell ids resolved to positions, and geofence ENTER/EXIT.

Geofences and the last decided state of each (geofence, device) live in memory, loaded at start
and reloaded after each API change; a position is judged on the event loop (a few microseconds
per geofence) and its GEOFENCE events and new states go into the same commit as the position.
A cell lookup is a store read, so it runs in a reader thread and its position is committed on
its own (the RADIUS answer or LwM2M acknowledgement does not wait for it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from inspector import cells as cell_sql
from inspector import geofences as sql
from inspector import os_state
from inspector.geofences import GeofenceRow
from inspector.records import EventRecord, MessageRecord, Pending, PositionRecord, Sim

from .. import events
from .geometry import INSIDE, OUTSIDE, Shape, shape_from_stored
from .settings import CELL_TOWER_LOCATION, ENABLED, state

log = logging.getLogger("nce.locator")

CELL_TOWER = "CellTower"  # the 1NCE source enum value
# OpenCelliD radios a reported cell can be, by how it was reported
ULI_RADIOS = {"CGI": ("GSM", "UMTS"), "ECGI": ("LTE",), "TAI+ECGI": ("LTE",)}
# LwM2M object 4 resource 0 (Network Bearer) → OpenCelliD radio
BEARER_RADIOS = {0: ("GSM",), 2: ("UMTS",), 5: ("LTE",), 6: ("LTE",), 7: ("LTE",), 8: ("NR",)}


@dataclass(frozen=True, slots=True)
class CellSeen:
    """The cell a device uses, as the network (RADIUS) or the device (LwM2M object 4) said."""

    mcc: int
    mnc: int
    cell: int
    area: int | None
    radios: tuple[str, ...]
    rat: str | None = None  # the RAT name when known (NB-IoT, LTE-M, EUTRAN, ...)


def cell_from_uli(location: dict[str, Any], rat: str | None) -> CellSeen | None:
    """The cell in a decoded User-Location-Info (CGI, ECGI, TAI+ECGI); None for SAI, RAI, TAI."""
    kind = location.get("type")
    if kind not in ULI_RADIOS:
        return None
    cell = location.get("ci") if kind == "CGI" else location.get("eci")
    area = location.get("lac") if kind == "CGI" else location.get("tac")
    return CellSeen(int(location["mcc"]), int(location["mnc"]), int(cell), area, ULI_RADIOS[kind], rat)


def cell_from_object4(values: dict[str, Any]) -> CellSeen | None:
    """The serving cell in LwM2M object 4 values (/4/0/8 Cell ID, /9 SMNC, /10 SMCC, /12 LAC, /0 bearer)."""
    def number(rid: int) -> int | None:
        value = values.get(f"/4/0/{rid}")
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None

    cell, mnc, mcc = number(8), number(9), number(10)
    if cell is None or mnc is None or mcc is None:
        return None
    bearer = number(0)
    return CellSeen(mcc, mnc, cell, number(12), BEARER_RADIOS.get(bearer, ()) if bearer is not None else ())


def access_type(radio: str, rat: str | None) -> str:
    """1NCE's radioAccessType for a resolved cell: from the cell's radio, refined by the session's
    RAT where they agree (NB-IoT and LTE-M are LTE cells; HSPA is UMTS). 1NCE has no 5G value: NR is 4G."""
    if radio == "LTE" and rat in ("NB-IoT", "LTE-M"):
        return rat
    if radio == "UMTS" and rat == "HSPA-Evolution":
        return "3.5G"
    return {"GSM": "2G", "UMTS": "3G", "CDMA": "3G"}.get(radio, "4G")


@dataclass
class Fence:
    row: GeofenceRow
    shape: Shape


class Locator:
    def __init__(self, store: Any, committer: Any, router: Any, *,
                 read: Callable[..., Awaitable[Any]], registry: CollectorRegistry | None = None) -> None:
        self.store = store
        self.committer = committer
        self.router = router
        self.read = read  # async: run fn(*args) in a reader thread
        self.fences: list[Fence] = []
        self.version = 0  # geofences_version the fences were read at (followed: gateway/follow.py)
        self.cell_tower = True  # CELL_TOWER_LOCATION (gateway/locator/settings.py)
        self.settings_version = 0  # os_settings_version it was read at (followed)
        self.states: dict[tuple[str, str], str] = {}
        self._tasks: set[Any] = set()
        self.resolutions = Counter("nce_locator_cell_resolutions_total", "Cell ids looked up in the cell table",
                                   ["result"], registry=registry)
        self.geofence_events = Counter("nce_locator_geofence_events_total", "GEOFENCE events raised", ["type"],
                                       registry=registry)

    # geofences ------------------------------------------------------------------------------

    def load(self) -> None:
        """Geofences and states from the store (blocking; at start)."""
        self.version = self.store.read_with(sql.version)
        self.set_geofences(self.store.read_with(sql.all_geofences))
        self.states = self.store.read_with(sql.states)
        self._set_settings(os_state.settings_version(self.store), os_state.settings(self.store))

    def _set_settings(self, version: int, stored: dict[str, str]) -> None:
        self.cell_tower = state(stored, CELL_TOWER_LOCATION) == ENABLED
        self.settings_version = version

    async def reload_settings(self) -> None:
        """After a change of the 1NCE OS settings here or in another process (followed)."""
        version = await self.read(os_state.settings_version, self.store)  # first: no change missed
        self._set_settings(version, await self.read(os_state.settings, self.store))
        log.info("cell tower location %s", "on" if self.cell_tower else "off",
                 extra={"event": "locator_settings", "cell_tower_location": self.cell_tower})

    def set_geofences(self, rows: list[GeofenceRow]) -> None:
        fences = []
        for row in rows:
            try:
                fences.append(Fence(row, shape_from_stored(row.kind, row.geometry)))
            except ValueError as exc:  # stored by an older version with other limits: kept, not judged
                log.warning("geofence %s not used: %s", row.id, exc, extra={"event": "geofence_unusable"})
        self.fences = fences
        known = {f.row.id for f in fences}
        self.states = {k: v for k, v in self.states.items() if k[0] in known}

    async def reload(self) -> None:
        """After a change of the geofences here or in another process (followed: ``version``)."""
        version = await self.read(self.store.read_with, sql.version)  # first: no change missed
        self.set_geofences(await self.read(self.store.read_with, sql.all_geofences))
        self.version = version

    def judge(self, sim: Sim, position: PositionRecord) -> tuple[list[EventRecord], list[tuple[str, str, str, int]]]:
        """GEOFENCE events and state changes this position causes (memory is updated now; the
        caller commits the states with the events). ENTER when the accuracy circle is wholly
        inside, EXIT when wholly outside after an ENTER; a straddling position changes nothing."""
        out: list[EventRecord] = []
        changes: list[tuple[str, str, str, int]] = []
        accuracy = position.accuracy or 0.0
        for fence in self.fences:
            row = fence.row
            if (row.device_id and row.device_id != sim.iccid) or position.source not in row.event_sources:
                continue
            verdict = fence.shape.verdict(position.lon, position.lat, accuracy)
            key = (row.id, sim.iccid)
            before = self.states.get(key)
            if verdict is None or verdict == before:
                continue
            self.states[key] = verdict
            changes.append((row.id, sim.iccid, verdict, position.received_ms))
            kind = "ENTER" if verdict == INSIDE else "EXIT"
            if (verdict == OUTSIDE and before is None) or kind not in row.event_types:
                continue  # first seen outside: it never entered
            self.geofence_events.labels(kind).inc()
            out.append(geofence_event(sim, position, row, kind, self.router.routes("GEOFENCE")))
        return out, changes

    def pending(self, sim: Sim, position: PositionRecord, events_: list[EventRecord], ack: tuple | None = None,
                message: MessageRecord | None = None) -> Pending:
        """What to commit for a position: the message it came with (if any), its events, the
        LOCATION event of the position, the GEOFENCE events it causes and the new geofence
        states, in one transaction."""
        located = events.location(sim, position.received_ms, position.source, position.lon, position.lat,
                                  self.router.routes("LOCATION"))
        more, changes = self.judge(sim, position)
        return Pending(message, [*events_, located, *more], ack, [position], extra=states_writer(changes))

    # cells ----------------------------------------------------------------------------------

    def cell_seen(self, sim: Sim, seen: CellSeen, protocol: str, at: int) -> None:
        """Resolve the cell in the background and store its position (and geofence events);
        nothing while CELL_TOWER_LOCATION is off."""
        if not self.cell_tower:
            self.resolutions.labels("off").inc()
            return
        task = asyncio.get_running_loop().create_task(self._resolve(sim, seen, protocol, at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, sim: Sim, seen: CellSeen, protocol: str, at: int) -> None:
        try:
            found = await self.read(self.store.read_with, cell_sql.lookup, seen.mcc, seen.mnc, seen.cell, seen.area,
                                    seen.radios)
        except Exception:
            log.exception("cell lookup failed", extra={"event": "cell_lookup_failed", "iccid": sim.iccid})
            self.resolutions.labels("error").inc()
            return
        if found is None:
            self.resolutions.labels("unknown").inc()
            log.info("cell %s-%s %s/%s of SIM %s is not in the cell table", seen.mcc, seen.mnc, seen.area, seen.cell,
                     sim.iccid, extra={"event": "cell_unknown", "iccid": sim.iccid})
            radio = seen.radios[0] if len(seen.radios) == 1 else ""
            missed = json.dumps({"radio": radio or None, "radioAccessType": access_type(radio, seen.rat),
                                 "MCC": str(seen.mcc), "MNC": str(seen.mnc),
                                 "LAC": "" if seen.area is None else str(seen.area), "CellID": str(seen.cell)},
                                separators=(",", ":"))
            self.committer.submit(Pending(None, extra=lambda conn: cell_sql.add_miss(conn, sim.iccid, at, protocol,
                                                                                      missed)))
            return
        self.resolutions.labels("found").inc()
        metadata = {"protocol": protocol, "radio": found.radio, "radioAccessType": access_type(found.radio, seen.rat),
                    "MCC": str(found.mcc), "MNC": str(found.mnc), "LAC": str(found.area), "CellID": str(found.cell),
                    "range": found.cell_range}
        position = PositionRecord(sim.iccid, at, CELL_TOWER, protocol, found.lat, found.lon,
                                  float(found.cell_range), json.dumps(metadata, separators=(",", ":")))
        self.committer.submit(self.pending(sim, position, []))

    async def drain(self) -> None:
        """Wait for lookups under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def states_writer(changes: list[tuple[str, str, str, int]]) -> Callable[[Any], None] | None:
    return (lambda conn: sql.write_states(conn, changes)) if changes else None


def geofence_event(sim: Sim, position: PositionRecord, row: GeofenceRow, kind: str,
                   routes: tuple[int, ...]) -> EventRecord:
    """A GEOFENCE event: the shape of the example in the event types route, with the accuracy."""
    return events.geofence(sim, position.received_ms, {
        "id": row.id, "name": row.name, "type": kind, "source": position.source,
        "coordinates": [str(position.lon), str(position.lat)], "accuracy": position.accuracy}, routes)
