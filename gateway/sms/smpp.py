"""One supervised SMPP 3.4 transceiver session to the SMSC, on asyncio.

PDUs are encoded and decoded by smpplib (``smpplib.smpp.make_pdu`` / ``parse_pdu``); this module
is the session around them, because smpplib's own client is a blocking socket loop that answers
``deliver_sm`` before the application has stored the message. Here:

* ``deliver_sm`` is answered only after ``on_deliver`` returned (the MO SMS or the receipt is
  committed first: acked means durable), with the status it returned;
* at most ``window`` submits are outstanding; each waits for its own ``submit_sm_resp``;
* ``ESME_RTHROTTLED`` pauses every submit of the session (doubling the pause up to a limit) and
  the throttled PDU is sent again;
* ``enquire_link`` is sent every ``enquire_link_seconds``; no answer within the response timeout
  drops the connection, which is then made again with exponential backoff;
* a refused bind (wrong password, ...) is kept in :attr:`SmppSession.last_error` for
  ``/health``, the metrics and ``nce-gateway sms status``. The password is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from smpplib import consts as smpp_consts
from smpplib import smpp as smpp_codec

log = logging.getLogger("nce.sms.smpp")

ESME_ROK = 0x00
ESME_RINVBNDSTS = 0x04
ESME_RSYSERR = 0x08
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64  # temporary error in the receiving application: the SMSC retries
ESME_RX_R_APPN = 0x65  # permanent rejection by the receiving application
MAX_PDU = 16 + 65536 + 1024  # message_payload may hold 64 KiB; anything larger is not SMPP

DISCONNECTED, CONNECTING, BOUND, BIND_FAILED = "DISCONNECTED", "CONNECTING", "BOUND", "BIND_FAILED"
STATES = (DISCONNECTED, CONNECTING, BOUND, BIND_FAILED)


def describe_status(status: int) -> str:
    """``ESME_RINVPASWD (0x0000000E): Invalid Password``-style text for a command_status."""
    name = next((k.removeprefix("SMPP_") for k, v in vars(smpp_consts).items()
                 if k.startswith("SMPP_ESME_") and v == status), "status")
    return f"{name} (0x{status:08X}): {smpp_consts.DESCRIPTIONS.get(status, 'unknown status')}"


class SmppError(Exception):
    """The SMSC answered with an error status (``status``)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"{what}: {describe_status(status)}")
        self.status = status


class ConnectionLost(Exception):
    """The session ended before the answer came; what was sent may or may not have arrived."""


@dataclass(frozen=True)
class SessionSettings:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    tls: bool = False
    ca_file: str | None = None
    window: int = 10
    enquire_link_seconds: float = 30.0
    response_timeout_seconds: float = 10.0
    reconnect_min_seconds: float = 1.0
    reconnect_max_seconds: float = 60.0
    throttle_min_seconds: float = 1.0
    throttle_max_seconds: float = 30.0

    def __repr__(self) -> str:  # the password stays out of every log line and traceback
        return f"SessionSettings(host={self.host!r}, port={self.port}, system_id={self.system_id!r}, tls={self.tls})"


class _Sequence:
    """smpplib asks its ``client`` argument for sequence numbers; this is that client."""

    sequence = 0

    def next_sequence(self) -> int:
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        return self.sequence


class SmppSession:
    """Keeps one transceiver bind up; :meth:`submit` sends through it.

    ``on_deliver(pdu)`` gets every ``deliver_sm`` (MO or receipt) and returns the command_status
    of the ``deliver_sm_resp``.
    """

    def __init__(self, settings: SessionSettings, on_deliver: Callable[[Any], Awaitable[int]],
                 on_state: Callable[[str], None] | None = None,
                 on_throttled: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.on_deliver = on_deliver
        self.on_state = on_state
        self.on_throttled = on_throttled
        self.state = DISCONNECTED
        self.last_error = ""
        self.binds = 0
        self.throttled = 0
        self._seq = _Sequence()
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._window = asyncio.Semaphore(settings.window)
        self._bound = asyncio.Event()
        self._resume_at = 0.0
        self._throttle_delay = settings.throttle_min_seconds
        self._task: asyncio.Task | None = None
        self._handlers: set[asyncio.Task] = set()
        self._stopping = False

    # life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="smpp-session")

    async def stop(self) -> None:
        self._stopping = True
        if self._writer is not None and self.state == BOUND:
            try:
                await asyncio.wait_for(self._request("unbind"), 2.0)
            except Exception:
                pass
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def wait_bound(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._bound.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _set_state(self, state: str, error: str = "") -> None:
        self.state = state
        if error:
            self.last_error = error
        if self.on_state is not None:
            self.on_state(state)

    async def _supervise(self) -> None:
        delay = self.settings.reconnect_min_seconds
        while not self._stopping:
            bound_once = False
            try:
                bound_once = await self._session()
            except asyncio.CancelledError:
                raise
            except SmppError as exc:
                self._set_state(BIND_FAILED, str(exc))
                log.error("SMSC refused the bind", extra={"event": "smpp_bind_failed", "host": self.settings.host,
                                                          "port": self.settings.port, "error": str(exc)})
            except (OSError, ConnectionLost, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self._set_state(DISCONNECTED, f"connection to {self.settings.host}:{self.settings.port}: {error}")
                log.warning("SMPP connection lost or refused", extra={
                    "event": "smpp_disconnected", "host": self.settings.host, "port": self.settings.port,
                    "error": error, "retry_seconds": delay})
            finally:
                self._drop_connection()
            if bound_once:
                delay = self.settings.reconnect_min_seconds
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max_seconds)

    async def _session(self) -> bool:
        """Connect, bind, serve until the connection ends; True once it was bound."""
        s = self.settings
        self._set_state(CONNECTING)
        context = None
        if s.tls:
            context = ssl.create_default_context(cafile=s.ca_file or None)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(s.host, s.port, ssl=context, server_hostname=s.host if s.tls else None),
            s.response_timeout_seconds)
        self._writer = writer
        reading = asyncio.get_running_loop().create_task(self._read_loop(reader), name="smpp-reader")
        try:
            resp = await self._request("bind_transceiver", system_id=s.system_id, password=s.password,
                                       system_type=s.system_type, interface_version=0x34)
            if resp.status != ESME_ROK:
                raise SmppError(resp.status, f"bind_transceiver as {s.system_id!r} refused by "
                                             f"{s.host}:{s.port}")
            self.binds += 1
            self.last_error = ""
            self._set_state(BOUND)
            self._bound.set()
            log.info("bound to the SMSC", extra={"event": "smpp_bound", "host": s.host, "port": s.port,
                                                 "system_id": s.system_id, "smsc": text_of(resp.system_id)})
            keepalive = asyncio.get_running_loop().create_task(self._keepalive(), name="smpp-enquire-link")
            try:
                done, _ = await asyncio.wait({reading, keepalive}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raise what ended the session
                raise ConnectionLost("the SMSC closed the connection")
            finally:
                keepalive.cancel()
                await asyncio.gather(keepalive, return_exceptions=True)
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    def _drop_connection(self) -> None:
        self._bound.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ConnectionLost("the SMPP connection ended before the answer"))
        if self.state == BOUND:
            self._set_state(DISCONNECTED)

    # reading ----------------------------------------------------------------------------------

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            head = await reader.readexactly(4)
            (length,) = struct.unpack(">L", head)
            if not 16 <= length <= MAX_PDU:
                raise ConnectionLost(f"a PDU of {length} octets is not SMPP")
            raw = head + await reader.readexactly(length - 4)
            command_id, status, sequence = struct.unpack(">LLL", raw[4:16])
            try:
                pdu = smpp_codec.parse_pdu(raw, client=self._seq, sequence=0, allow_unknown_opt_params=True)
            except Exception as exc:  # smpplib raises several kinds on a malformed body
                log.warning("undecodable PDU from the SMSC", extra={"event": "smpp_bad_pdu",
                                                                     "command_id": command_id, "error": str(exc)})
                if not command_id & 0x80000000:
                    self._send("generic_nack", sequence, status=0x03)  # ESME_RINVCMDID
                continue
            if command_id & 0x80000000:
                future = self._pending.pop(sequence, None)
                if future is not None and not future.done():
                    future.set_result(pdu)
            elif pdu.command == "deliver_sm":
                task = asyncio.get_running_loop().create_task(self._deliver(pdu, sequence))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)
            elif pdu.command == "enquire_link":
                self._send("enquire_link_resp", sequence)
            elif pdu.command == "unbind":
                self._send("unbind_resp", sequence)
                raise ConnectionLost("the SMSC unbound")
            else:
                self._send("generic_nack", sequence, status=0x03)

    async def _deliver(self, pdu: Any, sequence: int) -> None:
        try:
            status = await self.on_deliver(pdu)
        except Exception:
            log.exception("handling a deliver_sm failed; answered with a temporary error")
            status = ESME_RX_T_APPN
        if self._writer is not None:
            self._send("deliver_sm_resp", sequence, status=status)

    # writing ----------------------------------------------------------------------------------

    def _send(self, command: str, sequence: int, **fields: Any) -> None:
        if self._writer is None:
            raise ConnectionLost("not connected to the SMSC")
        pdu = smpp_codec.make_pdu(command, client=self._seq, sequence=sequence, **fields)
        pdu.sequence = sequence
        self._writer.write(pdu.generate())

    async def _request(self, command: str, **fields: Any) -> Any:
        sequence = self._seq.next_sequence()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[sequence] = future
        try:
            self._send(command, sequence, **fields)
            assert self._writer is not None
            await self._writer.drain()
            return await asyncio.wait_for(asyncio.shield(future), self.settings.response_timeout_seconds)
        except asyncio.TimeoutError:
            raise ConnectionLost(f"no {command}_resp within {self.settings.response_timeout_seconds:g} s") from None
        finally:
            self._pending.pop(sequence, None)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.settings.enquire_link_seconds)
            await self._request("enquire_link")  # ConnectionLost here ends the session

    async def submit(self, **fields: Any) -> str:
        """Send one submit_sm once bound; the SMSC's message id. Throttled submits are sent
        again after a pause; other error statuses raise :class:`SmppError`, a lost connection
        :class:`ConnectionLost`."""
        async with self._window:
            while True:
                if not self._bound.is_set():
                    raise ConnectionLost(f"not bound to the SMSC ({self.state.lower()})")
                wait = self._resume_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                resp = await self._request("submit_sm", **fields)
                if resp.status == ESME_RTHROTTLED:
                    self.throttled += 1
                    if self.on_throttled is not None:
                        self.on_throttled()
                    self._resume_at = time.monotonic() + self._throttle_delay
                    log.info("SMSC throttled a submit; pausing", extra={"event": "smpp_throttled",
                                                                      "pause_seconds": self._throttle_delay})
                    self._throttle_delay = min(self._throttle_delay * 2, self.settings.throttle_max_seconds)
                    continue
                self._throttle_delay = self.settings.throttle_min_seconds
                if resp.status != ESME_ROK:
                    raise SmppError(resp.status, "submit_sm refused")
                return text_of(resp.message_id)


def text_of(value: Any) -> str:
    """A field smpplib decoded (bytes) as text."""
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
