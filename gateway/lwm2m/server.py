"""The LwM2M registration interface and Send, independent of how the request arrived.

:class:`LwM2MServer` takes what both the CoAP fast path and the aiocoap resources know about a
request (SIM, remote, query, content format, payload) and answers through a ``done(Reply)``
callback, now for a refusal, or once the change is committed to the store for a success.

* Register ``POST /rd?ep=ICCID&lt&lwm2m&b&sms&Q`` with a CoRE link list (Content-Format 40, or
  none as some clients send) → ``2.01`` with Location-Path ``rd/{id}``. The endpoint name must
  be the ICCID of the sending SIM (over DTLS also the PSK identity), else ``4.03``.
* Update ``POST /rd/{id}`` (optional ``lt``, ``b``, ``sms``, ``Q``, link list) → ``2.04``.
* De-register ``DELETE /rd/{id}`` → ``2.02``.
* Send ``POST /dp`` (SenML JSON/CBOR, LwM2M JSON, TLV) → TELEMETRY_DATA, ``2.04`` after commit.

The first registration a SIM ever makes raises ``LIFECYCLE DEVICE_FIRST_TIME_REGISTERED``;
the Register is answered once that event is committed too.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from aiocoap.numbers.codes import Code

from inspector.records import Sim

from .. import events
from ..config import LwM2MConfig
from .bootstrap import parse_query
from .client_requests import DeviceRequests
from .errors import FormatError
from .formats import MULTI_VALUE, ContentFormat
from .objects import ObjectRegistry
from .registration import Registration, RegistrationStore, RegistrationWriter, compact_remote
from .telemetry import Telemetry

log = logging.getLogger("nce.lwm2m.server")

# CoAP codes as (class << 5 | detail)
CREATED, DELETED, CHANGED = 0x41, 0x42, 0x44
BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, METHOD_NOT_ALLOWED = 0x80, 0x81, 0x83, 0x84, 0x85
PRECONDITION_FAILED, TOO_LARGE, UNSUPPORTED_FORMAT = 0x8C, 0x8D, 0x8F

DEFAULT_LIFETIME = 86400
MAX_LIFETIME = 2**31 - 1
_VERSION = re.compile(r"([0-9]{1,2})\.[0-9]{1,2}(?:\.[0-9]{1,2})?")
_BINDING = re.compile(r"[UTSNQ]{1,5}")
FIRST_TIME = "DEVICE_FIRST_TIME_REGISTERED"
PASSIVE_EXCLUDED = frozenset({1, 2, 3})


class Reply(NamedTuple):
    code: int
    payload: bytes = b""
    location: tuple[str, ...] = ()


Done = Callable[[Reply], None]


def _refuse(done: Done, code: int, text: str) -> None:
    done(Reply(code, text.encode("utf-8")))


def decode_query(query: list[bytes] | list[str]) -> list[str] | None:
    out = []
    for item in query:
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                return None
        out.append(item)
    return out


class LwM2MServer:
    def __init__(self, config: LwM2MConfig, pipeline: Any, sims: Any, registrations: RegistrationStore,
                 writer: RegistrationWriter, requests: DeviceRequests, telemetry: Telemetry,
                 objects: ObjectRegistry, metrics: Any = None, max_payload: int = 65000) -> None:
        self.config = config
        self.pipeline = pipeline
        self.sims = sims  # SimRegistry
        self.registrations = registrations
        self.writer = writer
        self.requests = requests
        self.telemetry = telemetry
        self.objects = objects
        self.metrics = metrics
        self.max_payload = max_payload
        self.observations: Any = None  # set by the service (re-established after Register/Update)
        self._passive: set[str] = set()
        self.counts = {"register": 0, "update": 0, "deregister": 0, "send": 0, "expired": 0, "refused": 0}

    def _refused(self, done: Done, code: int, text: str) -> None:
        self.counts["refused"] += 1
        if self.metrics is not None:
            self.metrics.reject("LWM2M", {FORBIDDEN: "forbidden", NOT_FOUND: "not_found"}.get(code, "bad_request"))
        _refuse(done, code, text)

    # Register ---------------------------------------------------------------------------

    def register(self, sim: Sim, remote: Any, query: list, content_format: int | None, payload: bytes,
                 done: Done) -> None:
        params = self._params(query, done)
        if params is None:
            return
        ep = params.get("ep")
        if not ep:
            return self._refused(done, BAD_REQUEST, "ep (endpoint name) is required")
        if ep != sim.iccid:
            return self._refused(done, FORBIDDEN, "endpoint name must be the ICCID of the sending SIM")
        identity = getattr(remote, "psk_identity", None)
        if identity is not None and (identity.decode("utf-8", "replace") if isinstance(identity, bytes)
                                     else identity) != ep:
            return self._refused(done, FORBIDDEN, "endpoint name must be the DTLS identity")
        lifetime = self._lifetime(params.get("lt", None), DEFAULT_LIFETIME, done)
        if lifetime is None:
            return
        version = params.get("lwm2m") or "1.0"
        m = _VERSION.fullmatch(version)
        if m is None:
            return self._refused(done, BAD_REQUEST, f"lwm2m={version!r} is not a version")
        if m.group(1) != "1":
            return self._refused(done, PRECONDITION_FAILED, f"LwM2M version {version} is not supported")
        binding = params.get("b") or "U"
        if not _BINDING.fullmatch(binding):
            return self._refused(done, BAD_REQUEST, f"b={binding!r} is not a binding mode")
        links = self._links(content_format, payload, done, required=True)
        if links is None:
            return
        now = self.registrations.clock()
        queue = "Q" in binding or "Q" in params
        reg = Registration(self.registrations.new_id(), sim.iccid, lifetime, version, binding, queue,
                           params.get("sms"), links, compact_remote(remote), self.registrations.expiry(lifetime, now))
        old = self.registrations.add(reg)
        if old is not None and self.observations is not None:
            self.observations.forget_device(old.iccid)
        self.counts["register"] += 1
        self.writer.submit(("put", reg.row(now)), (self._registered, reg, done, sim))

    def _registered(self, reg: Registration, done: Done, sim: Sim, first_time: bool) -> None:
        reply = Reply(CREATED, location=("rd", reg.id))
        if first_time:
            now = self.registrations.clock()
            event = events.lifecycle(sim, now, FIRST_TIME, f"LwM2M device {sim.iccid} registered for the first time")
            self.pipeline.emit(event, (done, reply))
        else:
            done(reply)
        self._contact(reg, registered=True)

    # Update -----------------------------------------------------------------------------

    def update(self, sim: Sim, remote: Any, reg_id: str, query: list, content_format: int | None,
               payload: bytes, done: Done) -> None:
        reg = self.registrations.get(reg_id)
        if reg is None or reg.iccid != sim.iccid:
            return self._refused(done, NOT_FOUND, "no such registration")
        params = self._params(query, done)
        if params is None:
            return
        lifetime = self._lifetime(params.get("lt", None), reg.lifetime, done)
        if lifetime is None:
            return
        binding = params.get("b") or reg.binding
        if not _BINDING.fullmatch(binding):
            return self._refused(done, BAD_REQUEST, f"b={binding!r} is not a binding mode")
        links = None
        if payload:
            links = self._links(content_format, payload, done, required=False)
            if links is None:
                return
        now = self.registrations.clock()
        full = links is not None and links != reg.links or lifetime != reg.lifetime or binding != reg.binding \
            or ("sms" in params and params["sms"] != reg.sms)
        if links is not None:
            reg.links = links
        reg.lifetime = lifetime
        reg.binding = binding
        reg.queue = "Q" in binding or "Q" in params or (reg.queue and "b" not in params)
        if "sms" in params:
            reg.sms = params["sms"]
        reg.remote = compact_remote(remote)
        reg.expires_ms = self.registrations.expiry(lifetime, now)
        self.counts["update"] += 1
        if full:
            op: tuple = ("put", reg.row(now))
        else:
            ip, port = reg.address
            op = ("touch", reg.id, reg.expires_ms, now, ip, port)
        self.writer.submit(op, (self._updated, reg, done))

    def lifetime_written(self, iccid: str, lifetime: int) -> Registration | None:
        """The server wrote the device's lifetime (``/1/x/1``) and the device accepted it: the
        registration expires on the new lifetime from now, and Updates without ``lt`` keep it."""
        reg = self.registrations.of(iccid)
        if reg is None or lifetime < 1:
            return None
        now = self.registrations.clock()
        reg.lifetime = lifetime
        reg.expires_ms = self.registrations.expiry(lifetime, now)
        self.writer.submit(("put", reg.row(now)))
        log.info("lifetime written", extra={"event": "lwm2m_lifetime_written", "iccid": iccid, "lifetime": lifetime})
        return reg

    def _updated(self, reg: Registration, done: Done, first_time: bool) -> None:
        done(Reply(CHANGED))
        self._contact(reg, registered=False)

    # De-register ------------------------------------------------------------------------

    def deregister(self, sim: Sim, remote: Any, reg_id: str, done: Done) -> None:
        reg = self.registrations.get(reg_id)
        if reg is None or reg.iccid != sim.iccid:
            return self._refused(done, NOT_FOUND, "no such registration")
        self.registrations.remove(reg)
        if self.observations is not None:
            self.observations.forget_device(reg.iccid)
        self.counts["deregister"] += 1
        self.writer.submit(("delete", reg.id), (_reply_deleted, done))

    # Send -------------------------------------------------------------------------------

    def send(self, sim: Sim, remote: Any, content_format: int | None, payload: bytes, done: Done) -> None:
        reg = self.registrations.of(sim.iccid)
        if reg is None:
            return self._refused(done, FORBIDDEN, "not registered: Register before Send")
        if len(payload) > self.max_payload:
            return self._refused(done, TOO_LARGE, "payload too large")
        if content_format is None:
            return self._refused(done, BAD_REQUEST, "Send needs a Content-Format (SenML JSON 110 or CBOR 112)")
        if content_format not in MULTI_VALUE:
            return self._refused(done, UNSUPPORTED_FORMAT, f"content format {content_format} cannot carry a Send")
        try:
            values = self.telemetry.decode(content_format, payload, "/")
        except FormatError as exc:
            return self._refused(done, BAD_REQUEST, str(exc)[:200])
        registered = self.registrations.parsed_links(reg.links).objects if reg.links else {}
        for path in values:
            oid = int(path.split("/", 2)[1])
            if oid not in registered and self.objects.object(oid) is None:
                return self._refused(done, NOT_FOUND, f"object {oid} is neither registered by the device nor known")
        self.counts["send"] += 1
        if remote is not None:
            reg.remote = compact_remote(remote)
        if not values:
            return done(Reply(CHANGED))
        self.telemetry.publish(sim, payload, values, ack=(done, Reply(CHANGED)))

    # expiry -----------------------------------------------------------------------------

    def expire(self, now_ms: int | None = None) -> list[Registration]:
        gone = self.registrations.expired(now_ms)
        for reg in gone:
            if self.registrations.remove(reg):
                if self.observations is not None:
                    self.observations.forget_device(reg.iccid)
                self.writer.submit(("delete", reg.id))
                self.counts["expired"] += 1
                log.info("registration expired", extra={"event": "lwm2m_expired", "iccid": reg.iccid,
                                                        "registration": reg.id})
        return gone

    async def expiry_loop(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.expire()
            except Exception:  # pragma: no cover
                log.exception("registration expiry failed")

    # after Register / Update -------------------------------------------------------------

    def _contact(self, reg: Registration, registered: bool) -> None:
        """The device is listening now: run what waited for it, a little after our answer left
        (nothing to do, nothing scheduled: the common case costs no timer)."""
        if not (reg.queue or self.config.passive_reporting or self.requests.waiting(reg.iccid)
                or (self.observations is not None and self.observations.standing.get(reg.iccid))):
            return
        asyncio.get_running_loop().call_later(0.05, self._after_contact, reg, registered)

    def _after_contact(self, reg: Registration, registered: bool) -> None:
        if self.registrations.get(reg.id) is not reg:
            return
        self.requests.heard_from(reg)
        if self.observations is not None:
            self.observations.device_listening(reg, registered)
        if self.config.passive_reporting and reg.iccid not in self._passive:
            self._passive.add(reg.iccid)
            asyncio.get_running_loop().create_task(self._passive_report(reg), name=f"lwm2m-passive-{reg.iccid}")

    def readable_objects(self, reg: Registration) -> list[int]:
        """Objects a passive report reads: every registered object with a readable resource
        (unknown objects are tried), except 1, 2 and 3."""
        out = []
        for oid in self.registrations.parsed_links(reg.links).objects:
            if oid in PASSIVE_EXCLUDED:
                continue
            definition = self.objects.object(oid)
            if definition is not None and not any(r.operations.readable for r in definition.resources.values()):
                continue
            out.append(oid)
        return out

    async def _passive_report(self, reg: Registration) -> None:
        try:
            for oid in self.readable_objects(reg):
                response, _ = await self.requests.send(reg, Code.GET, f"/{oid}")
                if not response.answered:
                    break  # asleep or gone: stop until the next update
                if not response.ok or not response.payload:
                    continue
                sim = self.sims.enabled_sim_for_iccid(reg.iccid)
                if sim is None:
                    return
                try:
                    values = self.telemetry.decode(_format_of(response.content_format), response.payload, f"/{oid}")
                except FormatError as exc:
                    log.info("passive report of /%d from %s not decodable: %s", oid, reg.iccid, exc)
                    continue
                if values:
                    self.telemetry.publish(sim, response.payload, values)
        except Exception:  # pragma: no cover
            log.exception("passive reporting of %s failed", reg.iccid)
        finally:
            self._passive.discard(reg.iccid)

    # helpers ----------------------------------------------------------------------------

    def _params(self, query: list, done: Done) -> dict[str, str | None] | None:
        decoded = decode_query(query)
        if decoded is None:
            self._refused(done, BAD_REQUEST, "query is not UTF-8")
            return None
        return parse_query(decoded)

    def _lifetime(self, text: str | None, default: int, done: Done) -> int | None:
        if text is None:
            return default
        if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_LIFETIME:
            self._refused(done, BAD_REQUEST, f"lt={text!r} is not a lifetime in seconds")
            return None
        return int(text)

    def _links(self, content_format: int | None, payload: bytes, done: Done, required: bool) -> str | None:
        if content_format not in (None, ContentFormat.LINK_FORMAT):
            self._refused(done, UNSUPPORTED_FORMAT, "the object list must be link format (40)")
            return None
        if len(payload) > self.max_payload:
            self._refused(done, TOO_LARGE, "object list too large")
            return None
        try:
            text = payload.decode("utf-8").strip()
            if text:
                self.registrations.parsed_links(text)  # validates; cached by text (one firmware, one list)
        except UnicodeDecodeError:
            self._refused(done, BAD_REQUEST, "object list is not UTF-8")
            return None
        except FormatError as exc:
            self._refused(done, BAD_REQUEST, f"bad object list: {exc}"[:200])
            return None
        return self.registrations.intern_links(text)


def _reply_deleted(done: Done, first_time: bool) -> None:
    done(Reply(DELETED))


def _format_of(content_format: int | None) -> int:
    # a response without Content-Format is plain text (RFC 7252 §5.10.3 leaves it open; 1.0
    # clients such as lwm2m-node-lib answer single values that way)
    return ContentFormat.TEXT if content_format is None else content_format


