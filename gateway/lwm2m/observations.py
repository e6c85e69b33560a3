"""Observations of device resources: every notification becomes a TELEMETRY_DATA event.

An observation started by a device action (``observe-start``) is *standing*: it is kept in the
store (``lwm2m_observations``) until ``observe-end``. A device forgets its observations when it
registers anew, and the gateway forgets its tokens when it restarts, so a standing observation
that is not running is started again when the device is next heard from (Register or Update).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiocoap import error as coap_error
from aiocoap.numbers.codes import Code

from .client_requests import DeviceRequests, DeviceResponse
from .errors import FormatError
from .formats import ContentFormat
from .path import LwM2MPath
from .registration import Registration
from .telemetry import Telemetry
from . import storage

log = logging.getLogger("nce.lwm2m.observe")


class Observations:
    def __init__(self, requests: DeviceRequests, telemetry: Telemetry, sims: Any,
                 write: Callable[..., Any], connection: Callable[[], Any]) -> None:
        self.requests = requests
        self.telemetry = telemetry
        self.sims = sims
        self._write = write
        self._connection = connection
        self.active: dict[tuple[str, str], tuple[Any, asyncio.Task]] = {}
        self.standing: dict[str, set[str]] = {}
        self._starting: set[tuple[str, str]] = set()
        self.notifications = 0

    def load(self) -> None:
        """Read the standing observations (blocking; at start)."""
        rows = self._connection().execute("SELECT iccid, path FROM lwm2m_observations").fetchall()
        for iccid, path in rows:
            self.standing.setdefault(iccid, set()).add(path)

    async def start(self, iccid: str, path: str, *, persist: bool = True, wait: float | None = None) -> DeviceResponse:
        """Observe ``path``; the first answer is published like a read and returned."""
        path = str(LwM2MPath.of(path))
        if persist:
            await self._write(self._add, iccid, path)
            self.standing.setdefault(iccid, set()).add(path)
        key = (iccid, path)
        self._stop_running(key)
        response, pending = await self.requests.request(iccid, Code.GET, path, observe=0, wait=wait)
        if response.ok:
            self.publish(iccid, path, response.content_format, response.payload)
            observation = getattr(pending, "observation", None)
            if observation is not None and not observation.cancelled:
                task = asyncio.get_running_loop().create_task(self._follow(key, pending),
                                                              name=f"lwm2m-observe-{iccid}{path}")
                self.active[key] = (pending, task)
        return response

    async def stop(self, iccid: str, path: str, wait: float | None = None) -> DeviceResponse:
        """End an observation: forget it, and tell the device (GET with Observe = 1)."""
        path = str(LwM2MPath.of(path))
        self.standing.get(iccid, set()).discard(path)
        if not self.standing.get(iccid):
            self.standing.pop(iccid, None)
        await self._write(self._remove, iccid, path)
        self._stop_running((iccid, path))
        response, _ = await self.requests.request(iccid, Code.GET, path, observe=1, wait=wait)
        return response

    def forget_device(self, iccid: str) -> None:
        """The device registered anew, de-registered or expired: its observations are gone."""
        for key in [k for k in self.active if k[0] == iccid]:
            self._stop_running(key)

    def device_listening(self, reg: Registration, registered: bool) -> None:
        """Start standing observations of this device that are not running."""
        for path in sorted(self.standing.get(reg.iccid, ())):
            key = (reg.iccid, path)
            if key in self.active or key in self._starting:
                continue
            self._starting.add(key)
            asyncio.get_running_loop().create_task(self._restart(key), name=f"lwm2m-reobserve-{reg.iccid}{path}")

    async def _restart(self, key: tuple[str, str]) -> None:
        try:
            for _ in range(3):  # a lost answer is worth another try while the device listens
                response = await self.start(key[0], key[1], persist=False, wait=0)
                if response.answered:
                    break
            if not response.ok:
                log.info("re-observing %s%s: %s", key[0], key[1], response.code or response.error)
        finally:
            self._starting.discard(key)

    def publish(self, iccid: str, path: str, content_format: int | None, payload: bytes) -> bool:
        sim = self.sims.enabled_sim_for_iccid(iccid)
        if sim is None or not payload:
            return False
        cf = ContentFormat.TEXT if content_format is None else content_format
        try:
            values = self.telemetry.decode(cf, payload, path)
        except FormatError as exc:
            log.info("notification of %s%s not decodable: %s", iccid, path, exc)
            return False
        if values:
            self.telemetry.publish(sim, payload, values)
        return bool(values)

    async def _follow(self, key: tuple[str, str], pending: Any) -> None:
        try:
            async for note in pending.observation:
                self.notifications += 1
                cf = note.opt.content_format
                self.publish(key[0], key[1], int(cf) if cf is not None else None, note.payload)
        except (coap_error.Error, asyncio.CancelledError):
            pass
        except Exception:  # pragma: no cover
            log.exception("observation %s%s failed", *key)
        finally:
            entry = self.active.get(key)
            if entry is not None and entry[0] is pending:
                del self.active[key]

    def _stop_running(self, key: tuple[str, str]) -> None:
        entry = self.active.pop(key, None)
        if entry is None:
            return
        pending, task = entry
        try:
            pending.observation.cancel()  # the device gets a reset at its next notification
        except Exception:  # pragma: no cover
            pass
        task.cancel()

    def _add(self, iccid: str, path: str) -> None:
        storage.add_observation(self._connection(), iccid, path)

    def _remove(self, iccid: str, path: str) -> None:
        storage.remove_observation(self._connection(), iccid, path)

    def stop_all(self) -> None:
        for key in list(self.active):
            self._stop_running(key)
