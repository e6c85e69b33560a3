"""Device actions (1NCE OS Device Controller, LwM2M): read, write, execute, observe-start/-end,
and the gateway's additions discover, write-attributes, create, delete, read-composite and
write-composite (:mod:`gateway.lwm2m.operations`).

An action is a row in ``lwm2m_actions`` before anything is sent, so the API, the CLI (another
process) and a gateway restart all see the same requests. The running gateway executes every
open action: those it was handed directly at once, those another process wrote when its poll
finds them (``lwm2m.action_poll_interval_seconds``).

* ``SEND_NOW``: the device must be registered when the action is submitted; a queue-mode
  device that sleeps is waited for (``lwm2m.queue_timeout_seconds``).
* ``SEND_WHEN_ACTIVE``: sent when the device is next heard from (Register or Update).
* ``sendAttempts`` (1-5): attempts that got no answer (timeout, network error) are repeated,
  for SEND_WHEN_ACTIVE at the device's next activity. A CoAP error answer is final.

Status: ``SCHEDULED`` → ``IN_PROGRESS`` → ``SUCCEEDED`` / ``FAILED``, or ``CANCELLED``. The
result holds the device's response code and the decoded value. Results are also events: the
values of a successful read or observe-start are a TELEMETRY_DATA event (source LWM2M, like
Send and notifications); a failed action is an ERROR event (type DEVICE, message
``DeviceController[ActionFailed]``). Successful writes and executes have no event of their own
(1NCE OS has no event type for them); their result is in the action.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiocoap.numbers.codes import Code

from .. import events
from .client_requests import DeviceResponse
from .errors import FormatError
from .formats import ContentFormat, encode
from .objects import ObjectRegistry
from .operations import EXTRA_ACTIONS, OperationError, discovered, needs_version, request_of, validate_extra, \
    version_below
from .path import LwM2MPath
from .values import convert, values_to_json
from . import storage

log = logging.getLogger("nce.lwm2m.actions")

ACTIONS = ("read", "write", "execute", "observe-start", "observe-end", *EXTRA_ACTIONS)
MODES = ("SEND_NOW", "SEND_WHEN_ACTIVE")
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
ACTION_FAILED = "DeviceController[ActionFailed]"
MAX_DATA = 4096


class ActionError(ValueError):
    """A request that cannot become an action; ``status`` is the HTTP status to answer and
    ``field`` the request field at fault (None: the request as a whole)."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


def validate(action: Any, resource_address: Any, data: Any = None, request_mode: Any = None,
             send_attempts: Any = None, objects: ObjectRegistry | None = None) -> dict[str, Any]:
    """Check an action request (API body or CLI arguments); returns the normalised fields."""
    if action not in ACTIONS:
        raise ActionError(f"action must be one of {', '.join(ACTIONS)}", field="action")
    if not isinstance(resource_address, str):
        raise ActionError("resourceAddress is required (e.g. /3/0/0)", field="resourceAddress")
    try:
        path = LwM2MPath.parse(resource_address)
    except FormatError as exc:
        raise ActionError(f"resourceAddress: {exc}", field="resourceAddress") from None
    if data is not None and not isinstance(data, str):
        raise ActionError("data must be a string", field="data")
    if data is not None and len(data) > MAX_DATA:
        raise ActionError(f"data is longer than {MAX_DATA} characters", field="data")
    if action in EXTRA_ACTIONS:
        try:
            data = validate_extra(action, path, data, objects)
        except OperationError as exc:
            raise ActionError(str(exc), field=exc.field) from None
    elif path.is_root:
        raise ActionError("resourceAddress must name an object, instance or resource", field="resourceAddress")
    if action == "write" and len(path) < 3:
        raise ActionError("write needs a resource or resource instance address (/O/I/R)", field="resourceAddress")
    if action == "execute" and len(path) != 3:
        raise ActionError("execute needs a resource address (/O/I/R)", field="resourceAddress")
    if action == "write":
        if data is None:
            raise ActionError("write needs data", field="data")
        definition = objects.resource_at(path.resource_path) if objects is not None else None
        if definition is not None:
            if not definition.operations.writable:
                raise ActionError(f"{path} ({definition.name}) is not writable", field="resourceAddress")
            try:
                convert(data, definition.type, str(path))
            except FormatError as exc:
                raise ActionError(f"data: {exc}", field="data") from None
    mode = request_mode or "SEND_NOW"
    if mode not in MODES:
        raise ActionError(f"requestMode must be one of {', '.join(MODES)}", field="requestMode")
    attempts = 1 if send_attempts is None else send_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, (int, float)) or attempts != int(attempts) \
            or not 1 <= attempts <= 5:
        raise ActionError("sendAttempts must be a whole number from 1 to 5", field="sendAttempts")
    return {"action": action, "resource": str(path), "data": data, "mode": mode, "send_attempts": int(attempts)}


def new_record(iccid: str, ip: str, fields: dict[str, Any]) -> dict[str, Any]:
    ts = now_ms()
    return {"id": secrets.token_urlsafe(15), "iccid": iccid, **fields, "attempts_left": fields["send_attempts"],
            "status": "SCHEDULED", "result": None, "ip": ip, "created_ms": ts, "updated_ms": ts}


def to_api(record: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI shape of ``GET /v1/integrate/devices/actions/requests/{requestId}``."""
    request_data = {"action": record["action"], "resourceAddress": record["resource"]}
    if record.get("data") is not None:
        request_data["data"] = record["data"]
    return {
        "id": record["id"], "status": record["status"], "deviceId": record["iccid"], "ip": record["ip"] or "",
        "protocol": "LWM2M", "created": iso(record["created_ms"]), "updated": iso(record["updated_ms"]),
        "mode": record["mode"], "resultData": record["result"] or {}, "requestData": request_data,
        "sendAttemptsLeft": record["attempts_left"], "sendAttempts": record["send_attempts"],
    }


class DeviceActions:
    def __init__(self, lwm2m: Any, write: Callable[..., Any], read: Callable[..., Any],
                 connection: Callable[[], Any], sims: Any, pipeline: Any, config: Any) -> None:
        self.lwm2m = lwm2m  # LwM2MService: registrations, requests, observations, telemetry, objects
        self._write = write
        self._read = read
        self._connection = connection
        self.sims = sims
        self.pipeline = pipeline
        self.config = config
        self._running: dict[str, asyncio.Task] = {}
        self._finished: dict[str, float] = {}
        self._wake: asyncio.Event | None = None
        self._last_purge = 0.0
        #: whether this process sends an action's requests (several workers: the one holding the
        #: device's registration, gateway/lwm2m/service.py); the others leave it to that one
        self.owns: Callable[[dict[str, Any]], bool] = lambda record: True
        #: several workers: the LwM2M version of a registration another worker holds, from the store
        self.registered_elsewhere: Callable[[str], Any] | None = None

    # the service API --------------------------------------------------------------------

    async def submit(self, iccid: str, action: str, resource_address: str, data: str | None = None,
                     request_mode: str | None = None, send_attempts: Any = None) -> dict[str, Any]:
        """Validate, store and start an action; returns its record (``record["id"]``)."""
        sim = self.sims.sim_for_iccid(iccid)
        if sim is None:
            raise ActionError(f"device {iccid} not found", 404)
        fields = validate(action, resource_address, data, request_mode, send_attempts, self.lwm2m.objects)
        reg = self.lwm2m.registrations.of(iccid)
        version = reg.version if reg is not None else None
        if reg is None and self.registered_elsewhere is not None:
            version = await self._read(self.registered_elsewhere, iccid)
        if fields["mode"] == "SEND_NOW" and version is None:
            raise ActionError(f"device {iccid} is not registered with the LwM2M server", 409)
        wanted = needs_version(action)
        if wanted is not None and version is not None and version_below(version, wanted):
            raise ActionError(f"{action} needs an LwM2M {wanted} client; device {iccid} registered with "
                              f"LwM2M {version}", 409)
        record = new_record(iccid, sim.ip_address, fields)
        await self._write(self._insert, record)
        if self.owns(record):
            self._launch(record)  # else the worker holding the registration picks it up at its next poll
        return record

    async def get(self, action_id: str) -> dict[str, Any] | None:
        return await self._read(self._get, action_id)

    async def list(self, **filters: Any) -> tuple[list[dict[str, Any]], int]:
        return await self._read(lambda: storage.list_actions(self._connection(), **filters))

    async def cancel(self, action_id: str | None = None, iccid: str | None = None) -> list[str]:
        ids = await self._write(lambda: storage.cancel_actions(self._connection(), action_id=action_id,
                                                               iccid=iccid))
        for i in ids:
            task = self._running.get(i)
            if task is not None:
                task.cancel()
        return ids

    # execution --------------------------------------------------------------------------

    async def run(self) -> None:
        """Pick up open actions (written by the CLI, or left by a previous run) and purge old ones."""
        self._wake = asyncio.Event()
        while True:
            try:
                rows = await self._read(self._open)
                for record in rows:
                    if self.owns(record):
                        self._launch(record)
                if time.monotonic() - self._last_purge > 3600:
                    self._last_purge = time.monotonic()
                    await self._write(lambda: storage.purge_actions(self._connection(), now_ms() - 7 * 86400_000))
            except Exception:  # pragma: no cover
                log.exception("device action poll failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.action_poll_interval_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _launch(self, record: dict[str, Any]) -> None:
        action_id = record["id"]
        if action_id in self._running or action_id in self._finished:
            return
        self._running[action_id] = asyncio.get_running_loop().create_task(
            self._execute(record), name=f"lwm2m-action-{action_id}")

    async def _execute(self, record: dict[str, Any]) -> None:
        action_id = record["id"]
        try:
            await self._attempts(record)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # pragma: no cover
            log.exception("device action %s failed", action_id)
            await self._finish(record, "FAILED", {"error": f"internal error: {exc}"})
        finally:
            self._running.pop(action_id, None)
            now = time.monotonic()
            self._finished[action_id] = now
            if len(self._finished) > 1000:
                self._finished = {k: v for k, v in self._finished.items() if now - v < 60}

    async def _attempts(self, record: dict[str, Any]) -> None:
        iccid = record["iccid"]
        requests = self.lwm2m.requests
        last: DeviceResponse | None = None
        while record["attempts_left"] > 0:
            if record["mode"] == "SEND_WHEN_ACTIVE":
                await requests.next_activity(iccid, None)
            else:
                reg = await requests.reachable(iccid)
                if reg is None:
                    registered = self.lwm2m.registrations.of(iccid) is not None
                    await self._finish(record, "FAILED", {"error": "device did not wake up (queue mode)" if registered
                                                          else "device is not registered"})
                    return
            record["attempts_left"] -= 1
            if not await self._write(self._update, record["id"], {"status": "IN_PROGRESS",
                                                                  "attempts_left": record["attempts_left"]}):
                return  # cancelled meanwhile
            record["status"] = "IN_PROGRESS"
            last, values, decode_error = await self._perform(record)
            if last.answered:
                result: dict[str, Any] = {"code": last.code}
                if last.content_format is not None:
                    result["contentFormat"] = last.content_format
                if values is not None:
                    result["value"] = values_to_json(values)
                elif record["action"] == "discover" and last.ok and last.payload:
                    try:
                        result["links"] = discovered(last.payload)
                    except FormatError as exc:
                        result["payload"] = base64.b64encode(last.payload).decode("ascii")
                        result["decodeError"] = str(exc)[:300]
                elif last.payload:
                    result["payload"] = base64.b64encode(last.payload).decode("ascii")
                    if last.ok and record["action"] in ("read", "observe-start"):
                        result["decodeError"] = decode_error
                await self._finish(record, "SUCCEEDED" if last.ok else "FAILED", result)
                return
        await self._finish(record, "FAILED", {"error": last.error if last else "not sent"})

    async def _perform(self, record: dict[str, Any]) -> tuple[DeviceResponse, dict | None, str]:
        iccid, path, action = record["iccid"], record["resource"], record["action"]
        lw = self.lwm2m
        decode_error = ""
        if action == "read":
            response, _ = await lw.requests.request(iccid, Code.GET, path, wait=0)
            if response.code in ("4.04", "4.05", "4.06") and self._registered_instance(iccid, path):
                composed = await self._read_resources(iccid, path)
                if composed is not None:
                    return composed
        elif action == "observe-start":
            response = await lw.observations.start(iccid, path, wait=0)
        elif action == "observe-end":
            response = await lw.observations.stop(iccid, path, wait=0)
        elif action == "write":
            definition = lw.objects.resource_at(LwM2MPath.parse(path).resource_path)
            value = convert(record["data"], definition.type if definition else None, path) if definition \
                else record["data"]
            payload = encode(ContentFormat.TEXT, {path: value}, path, lw.objects)
            response, _ = await lw.requests.request(iccid, Code.PUT, path, payload, wait=0,
                                                    content_format=ContentFormat.TEXT)
            if response.ok:
                self._lifetime_written(iccid, path, value)
        elif action in EXTRA_ACTIONS:
            method, target, payload, options = request_of(action, path, record["data"], lw.objects)
            response, _ = await lw.requests.request(iccid, method, target, payload, wait=0, **options)
            if action == "write-composite" and response.ok:
                for written, value in json.loads(record["data"]).items():
                    self._lifetime_written(iccid, written, value)
        else:  # execute
            payload = (record["data"] or "").encode("utf-8")
            response, _ = await lw.requests.request(iccid, Code.POST, path, payload, wait=0)
        values = None
        if response.ok and response.payload and action in ("read", "observe-start", "observe-end", "read-composite"):
            cf = ContentFormat.TEXT if response.content_format is None else response.content_format
            try:
                values = lw.telemetry.decode(cf, response.payload, path)
            except FormatError as exc:
                decode_error = str(exc)[:300]
            if values and action in ("read", "read-composite"):
                sim = self.sims.enabled_sim_for_iccid(iccid)
                if sim is not None:
                    lw.telemetry.publish(sim, response.payload, values)
        return response, values, decode_error

    def _lifetime_written(self, iccid: str, path: str, value: Any) -> None:
        """A write of a Server object's lifetime (/1/x/1) that the device accepted moves the
        registration's expiry (the device will update on that lifetime from now on)."""
        p = LwM2MPath.parse(path)
        if len(p) == 3 and p.object_id == 1 and p.ids[2] == 1 and isinstance(value, int) \
                and not isinstance(value, bool):
            self.lwm2m.server.lifetime_written(iccid, value)

    def _registered_instance(self, iccid: str, path: str) -> bool:
        p = LwM2MPath.parse(path)
        reg = self.lwm2m.registrations.of(iccid)
        if reg is None or len(p) != 2:
            return False
        info = self.lwm2m.registrations.parsed_links(reg.links).objects.get(p.object_id)
        return info is not None and p.instance_id in info.instances

    async def _read_resources(self, iccid: str, path: str) -> tuple[DeviceResponse, dict | None, str] | None:
        """An instance the device registered but will not read as a whole (lwm2m-node-lib only
        reads single resources): read its known readable resources one by one."""
        definition = self.lwm2m.objects.object(LwM2MPath.parse(path).object_id)
        if definition is None:
            return None
        values: dict[str, Any] = {}
        last: DeviceResponse | None = None
        for rid, res in sorted(definition.resources.items()):
            if not res.operations.readable:
                continue
            response, _ = await self.lwm2m.requests.request(iccid, Code.GET, f"{path}/{rid}", wait=0)
            if not response.answered:
                return response, None, ""
            if response.ok and response.payload:
                cf = ContentFormat.TEXT if response.content_format is None else response.content_format
                try:
                    values.update(self.lwm2m.telemetry.decode(cf, response.payload, f"{path}/{rid}"))
                    last = response
                except FormatError:
                    continue
        if last is None:
            return None
        sim = self.sims.enabled_sim_for_iccid(iccid)
        if sim is not None:
            self.lwm2m.telemetry.publish(sim, last.payload, values)
        return DeviceResponse(code=last.code, content_format=last.content_format), values, ""

    async def _finish(self, record: dict[str, Any], status: str, result: dict[str, Any]) -> None:
        changed = await self._write(self._update, record["id"], {"status": status, "result": result,
                                                                 "attempts_left": record["attempts_left"]})
        if not changed:
            return
        record.update(status=status, result=result)
        log.info("device action %s", status.lower(), extra={"event": "lwm2m_action", "action_id": record["id"],
                                                            "iccid": record["iccid"], "action": record["action"],
                                                            "resource": record["resource"], "result": result})
        if status == "FAILED":
            sim = self.sims.sim_for_iccid(record["iccid"])
            if sim is not None:
                why = result.get("code") or result.get("error")
                self.pipeline.emit(events.error(
                    sim, now_ms(), error_type="DEVICE", message=ACTION_FAILED,
                    description=f"LwM2M {record['action']} {record['resource']} (request {record['id']}): {why}",
                    payload_exists=False))

    # store access (writer / reader threads) ---------------------------------------------

    def _insert(self, record: dict[str, Any]) -> None:
        storage.insert_action(self._connection(), record)

    def _update(self, action_id: str, fields: dict[str, Any]) -> bool:
        return storage.update_action(self._connection(), action_id, only_if_open=True, **fields)

    def _get(self, action_id: str) -> dict[str, Any] | None:
        return storage.get_action(self._connection(), action_id)

    def _open(self) -> list[dict[str, Any]]:
        return storage.open_actions(self._connection())
