"""The Device Controller for UDP and CoAP: requests from the API or the CLI to one device, sent
at once when the device was heard from recently, else with its next uplink (docs/device-controller.md).

A request is a row of ``device_actions`` (inspector/device_actions.py) before anything is sent,
so a restart, the CLI (another process) and the API all see the same requests. Life of a request:

* ``SCHEDULED``: stored, waiting. ``SEND_NOW`` goes out at once when the device sent anything
  (any protocol) within ``[controller] recent_uplink_seconds``; otherwise, and always for
  ``SEND_WHEN_ACTIVE``, it waits for the device's next uplink (1NCE's cross-protocol trigger).
* ``IN_PROGRESS``: claimed and being sent. UDP is done when the datagram left; CoAP when the
  device answered or the response timeout passed.
* ``SUCCEEDED`` (UDP sent; CoAP 2.xx), ``FAILED`` (CoAP 4.xx/5.xx, no answer with no attempt
  left, expired after ``expiry_seconds``, no way to send), ``CANCELLED`` (API or CLI).

The device's address is the source address of its last uplink (a SIM is known by that address);
the port is the request's ``port``. A CoAP request to a device whose last uplink came through a
DTLS session still open goes inside that session (to the session's address and port). UDP
leaves from the gateway's UDP socket, plain CoAP from its CoAP socket, so a device behind a
NAT or firewall that let its uplink out lets the answer in.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from inspector import device_actions as store

from .. import events
from ..lwm2m.client_requests import send_request
from .requests import METHODS, ControllerError, coap_target, describe, new_record, now_ms, payload_bytes, validate

log = logging.getLogger("nce.controller")

REQUEST_FAILED = "DeviceController[RequestFailed]"
RETENTION_MS = 7 * 86400_000  # as 1NCE: requests are deleted 7 days after their creation


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.created = Counter("nce_controller_requests_total", "Device Controller requests accepted, by protocol",
                               ["protocol"], registry=registry)
        self.rejected = Counter("nce_controller_rejected_total",
                                "Device Controller requests refused by a limit (409), by limit", ["limit"],
                                registry=registry)
        self.sent = Counter("nce_controller_sent_total", "Datagrams and CoAP requests sent to devices, by transport "
                            "(udp, coap, coaps)", ["transport"], registry=registry)
        self.finished = Counter("nce_controller_finished_total", "Device Controller requests finished, by protocol "
                                "and status", ["protocol", "status"], registry=registry)
        self.open = Gauge("nce_controller_open_requests", "Device Controller requests SCHEDULED or IN_PROGRESS",
                          registry=registry)


class DeviceController:
    """Accepts, stores, schedules and sends UDP/CoAP requests; told of every uplink by
    :meth:`heard` (called by the transports on the hot path: a dict write)."""

    def __init__(self, *, registry: Any, pipeline: Any, write: Callable[..., Any], read: Callable[..., Any],
                 connection: Callable[[], Any], config: Any, metrics: CollectorRegistry) -> None:
        self.registry = registry  # SIM registry: ICCID → SIM
        self.pipeline = pipeline
        self._write = write
        self._read = read
        self._connection = connection
        self.config = config  # ControllerConfig
        self.metrics = ControllerMetrics(metrics)
        self.udp_endpoint: Any = None  # the UDP uplink socket (UdpEndpoint), once open
        self.coap_interface: Any = None  # the plain CoAP socket, once open
        self.coap_context: Any = None  # the aiocoap context requests go through
        self._heard: dict[str, tuple[float, Any]] = {}  # ICCID → (monotonic time, remote or (ip, port))
        self._waiting: set[str] = set()  # ICCIDs with SCHEDULED requests
        self._flushing: dict[str, asyncio.Task] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_purge = 0.0

    # uplinks ------------------------------------------------------------------------------

    def heard(self, sim: Any, remote: Any) -> None:
        """A message from ``sim`` arrived from ``remote`` (an ``(ip, port)`` for UDP, the CoAP
        remote otherwise): remember it, and send what waits for this device."""
        iccid = sim.iccid
        self._heard[iccid] = (time.monotonic(), remote)
        if iccid in self._waiting:
            self._waiting.discard(iccid)
            self._flush_soon(iccid)

    def last_uplink(self, iccid: str) -> tuple[str, int, str] | None:
        """(ip, port, transport: UDP/CoAP/CoAPs) of the device's last message since the start."""
        seen = self._heard.get(iccid)
        if seen is None:
            return None
        remote = seen[1]
        if isinstance(remote, tuple):
            return remote[0], remote[1], "UDP"
        return remote.address[0], remote.address[1], "CoAPs" if getattr(remote, "session", None) else "CoAP"

    def recent(self, iccid: str) -> bool:
        seen = self._heard.get(iccid)
        return seen is not None and time.monotonic() - seen[0] <= self.config.recent_uplink_seconds

    # the service API ---------------------------------------------------------------------

    async def submit(self, iccid: str, protocol: str, body: dict[str, Any], fields: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        """Validate, store and (when the device is reachable now) start a request."""
        sim = self.registry.sim_for_iccid(iccid)
        if sim is None:
            raise ControllerError(f"device {iccid} not found", 404)
        if sim.status != "Enabled":
            raise ControllerError(f"device {iccid} is {sim.status}: nothing is sent to it", 409)
        fields = fields or validate(protocol, body, self.config.max_payload_bytes)
        record = new_record(iccid, sim.ip_address, fields, self.config.expiry_seconds)
        refused = await self._write(lambda: store.insert(self._connection(), record,
                                                         self.config.max_queued_per_device,
                                                         self.config.max_queued_total))
        if refused == "device":
            self.metrics.rejected.labels("device").inc()
            raise ControllerError(f"device {iccid} has {self.config.max_queued_per_device} open requests already "
                                  "(the most one device may have)", 409)
        if refused == "total":
            self.metrics.rejected.labels("total").inc()
            raise ControllerError(f"{self.config.max_queued_total} requests are open already "
                                  "(the most the gateway holds)", 409)
        self.metrics.created.labels(protocol).inc()
        self.metrics.open.inc()
        log.info("controller request stored", extra={"event": "controller_request", "request_id": record["id"],
                                                     "iccid": iccid, "protocol": protocol, "mode": record["mode"]})
        if record["mode"] == "SEND_NOW" and self.recent(iccid):
            self._flush_soon(iccid)
        else:
            self._waiting.add(iccid)
        return record

    async def get(self, request_id: str) -> dict[str, Any] | None:
        return await self._read(lambda: store.get(self._connection(), request_id))

    async def cancel(self, request_id: str | None = None, iccid: str | None = None) -> list[str]:
        ids = await self._write(lambda: store.cancel(self._connection(), request_id=request_id, iccid=iccid))
        self.metrics.open.dec(len(ids))
        return ids

    # running ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        resumed = await self._write(lambda: store.resume_interrupted(self._connection()))
        if resumed:
            log.info("controller requests resumed", extra={"event": "controller_resumed", "count": resumed})
        await self._refresh()

    async def run(self) -> None:
        """Expire old requests, pick up those written by another process (the CLI), purge."""
        while True:
            await asyncio.sleep(self.config.poll_interval_seconds)
            try:
                await self.tick()
            except Exception:  # pragma: no cover
                log.exception("controller poll failed")

    async def tick(self) -> None:
        expired = await self._write(lambda: store.expire(self._connection(), now_ms()))
        for record in expired:
            self._finished(record, "FAILED", record["result"])
        await self._refresh()
        if time.monotonic() - self._last_purge > 3600:
            self._last_purge = time.monotonic()
            await self._write(lambda: store.purge(self._connection(), now_ms() - RETENTION_MS))

    async def stop(self) -> None:
        tasks = list(self._flushing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _refresh(self) -> None:
        """Wait for the devices with SCHEDULED requests; send those due now (SEND_NOW, never
        tried, device recently heard from)."""
        devices, count = await self._read(lambda: (store.waiting_devices(self._connection()),
                                                   store.open_count(self._connection())))
        self.metrics.open.set(count)
        for iccid, due in devices:
            if iccid in self._flushing:
                continue
            if due and self.recent(iccid):
                self._flush_soon(iccid)
            else:
                self._waiting.add(iccid)

    def _flush_soon(self, iccid: str) -> None:
        if iccid in self._flushing or self._loop is None:
            self._waiting.add(iccid)  # the flush running now reads the list again before it ends
            return
        self._flushing[iccid] = self._loop.create_task(self._flush(iccid), name=f"controller-{iccid}")

    async def _flush(self, iccid: str) -> None:
        """Send the device's SCHEDULED requests, oldest first, each once per uplink; one that
        got no answer and has attempts left waits for the next uplink."""
        tried: set[str] = set()
        again = False
        try:
            while True:
                self._waiting.discard(iccid)
                rows = await self._read(lambda: store.scheduled(self._connection(), iccid))
                rows = [r for r in rows if r["id"] not in tried]
                if not rows:
                    return
                for record in rows:
                    tried.add(record["id"])
                    await self._attempt(record)
                    again = again or record["status"] == "SCHEDULED"
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover
            log.exception("controller requests of %s failed", iccid)
        finally:
            self._flushing.pop(iccid, None)
            if again:
                self._waiting.add(iccid)

    async def _attempt(self, record: dict[str, Any]) -> None:
        left = await self._write(lambda: store.claim(self._connection(), record["id"]))
        if left is None:
            return  # cancelled, expired or sent meanwhile
        record.update(status="IN_PROGRESS", attempts_left=left)
        seen = self._heard.get(record["iccid"])
        remote = seen[1] if seen is not None else None
        sim = self.registry.sim_for_iccid(record["iccid"])
        if sim is None or remote is None:
            await self._finish(record, "FAILED", {"error": "device address unknown"})
            return
        try:
            if record["protocol"] == "UDP":
                await self._send_udp(record, remote)
            else:
                await self._send_coap(record, sim, remote)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # pragma: no cover
            log.exception("controller request %s failed", record["id"])
            await self._finish(record, "FAILED", {"error": f"internal error: {exc}"})

    async def _send_udp(self, record: dict[str, Any], remote: Any) -> None:
        r = record["request"]
        ip = _ip_of(remote)
        if self.udp_endpoint is None or self.udp_endpoint.sock is None:
            await self._finish(record, "FAILED", {"error": "UDP is disabled on this gateway ([udp] enabled)"})
            return
        data = payload_bytes(r.get("payload"), r["payloadType"])
        self.udp_endpoint.sendto(data, (ip, r["port"]))
        self.metrics.sent.labels("udp").inc()
        await self._finish(record, "SUCCEEDED", {"sentBytes": len(data), "address": f"{ip}:{r['port']}"}, ip)

    async def _send_coap(self, record: dict[str, Any], sim: Any, remote: Any) -> None:
        r = record["request"]
        target, transport = self._coap_remote(remote, r["port"])
        if target is None:
            await self._finish(record, "FAILED", {"error": "CoAP is disabled on this gateway ([coap] enabled)"})
            return
        segments, query = coap_target(r["path"])
        data = payload_bytes(r.get("payload"), r["payloadType"])
        options: dict[str, Any] = {"query": query}
        if data:
            options["content_format"] = 42 if r["payloadType"] == "BASE64" else 0
        self.metrics.sent.labels(transport).inc()
        response, _ = await send_request(self.coap_context, target, METHODS[r["requestType"]], segments, data,
                                         timeout=self.config.response_timeout_seconds, **options)
        ip, port = target.address
        where = {"address": f"{ip}:{port}", "transport": transport}
        if not response.answered:
            result = {"error": response.error or "no answer", **where}
            if record["attempts_left"] > 0:  # try again with the device's next uplink
                if await self._write(lambda: store.update_open(self._connection(), record["id"], "SCHEDULED",
                                                               result, ip)):
                    record.update(status="SCHEDULED", result=result)
                return
            await self._finish(record, "FAILED", result, ip)
            return
        result = {"code": response.code, **where}
        if response.content_format is not None:
            result["contentFormat"] = response.content_format
        if response.payload:
            result["payload"] = base64.b64encode(response.payload).decode("ascii")
            result["payloadType"] = "BASE64"
        ok = response.ok
        if ok and response.payload and not await self._uplink(sim, response.payload):
            # the answer is the device's data: stored and routed as a CoAP message, or FAILED (as 1NCE)
            result["error"] = "the answer could not be stored"
            ok = False
        await self._finish(record, "SUCCEEDED" if ok else "FAILED", result, ip)

    def _coap_remote(self, remote: Any, port: int) -> tuple[Any, str]:
        """Where a CoAP request goes: the device's open DTLS session, else plain CoAP to
        (ip, port) from the gateway's CoAP socket."""
        session = getattr(remote, "session", None)
        if session is not None and session.established:
            return remote, "coaps"
        if self.coap_interface is None:
            return None, "coap"
        from ..transports.coap import PlainRemote

        return PlainRemote(self.coap_interface, (_ip_of(remote), port)), "coap"

    async def _uplink(self, sim: Any, payload: bytes) -> bool:
        """Store an answer like an uplink; whether it became durable (within 30 s)."""
        done = asyncio.get_running_loop().create_future()
        self.pipeline.uplink(sim, "COAP", payload, None, (_resolve, done))
        try:
            await asyncio.wait_for(done, 30.0)
        except asyncio.TimeoutError:
            return False
        return True

    async def _finish(self, record: dict[str, Any], status: str, result: dict[str, Any],
                      ip: str | None = None) -> None:
        changed = await self._write(lambda: store.update_open(self._connection(), record["id"], status, result, ip))
        if changed:
            self._finished(record, status, result)

    def _finished(self, record: dict[str, Any], status: str, result: dict[str, Any]) -> None:
        record.update(status=status, result=result)
        self.metrics.finished.labels(record["protocol"], status).inc()
        self.metrics.open.dec()
        log.info("controller request %s", status.lower(), extra={
            "event": "controller_result", "request_id": record["id"], "iccid": record["iccid"],
            "protocol": record["protocol"], "status": status, "result": result})
        if status == "FAILED":
            sim = self.registry.sim_for_iccid(record["iccid"])
            if sim is not None:
                why = result.get("code") or result.get("error")
                self.pipeline.emit(events.error(
                    sim, now_ms(), error_type="DEVICE", message=REQUEST_FAILED,
                    description=f"{describe(record)} (request {record['id']}): {why}", payload_exists=False))


def _resolve(done: asyncio.Future) -> None:
    if not done.done():
        done.set_result(None)


def _ip_of(remote: Any) -> str:
    return remote[0] if isinstance(remote, tuple) else remote.address[0]
