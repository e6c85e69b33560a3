"""A small MQTT 5 publisher on asyncio: one connection, QoS 1, many publishes in flight.

It speaks MQTT 3.1.1 too: a broker that answers the MQTT 5 CONNECT with a 3.1.1 CONNACK
("unacceptable protocol version", as 3.1.1 §3.1.2.2 requires) is connected to again with
protocol level 4, and ``version=4`` asks for 3.1.1 from the start.

Only what a gateway that publishes to AWS IoT Core needs: CONNECT/CONNACK, PUBLISH QoS 1 and
PUBACK, PINGREQ/PINGRESP keep-alive, DISCONNECT in both directions. No subscriptions, no
session state (clean start: whatever was in flight when a connection drops is sent again by the
delivery worker, which is the at-least-once contract anyway).

Why not paho/aiomqtt: the delivery worker needs (a) many QoS 1 publishes in flight on one
connection, bounded by the broker's Receive Maximum, with one future per packet id; (b) the
MQTT 5 reason codes of CONNACK, PUBACK and a server DISCONNECT turned into clear errors (that
is how a broker says "not authorized"); (c) writes coalesced into one TLS record per loop
iteration. That is about 300 lines here and costs a few microseconds per publish.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import time
from collections import deque

# reason codes (MQTT 5.0 §2.4) → what an operator reads
REASONS: dict[int, str] = {
    0x00: "success", 0x10: "no matching subscribers", 0x80: "unspecified error", 0x81: "malformed packet",
    0x82: "protocol error", 0x83: "implementation specific error", 0x84: "unsupported protocol version",
    0x85: "client identifier not valid", 0x86: "bad user name or password", 0x87: "not authorized",
    0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned", 0x8B: "server shutting down",
    0x8C: "bad authentication method", 0x8D: "keep alive timeout", 0x8E: "session taken over",
    0x8F: "topic filter invalid", 0x90: "topic name invalid", 0x91: "packet identifier in use",
    0x93: "receive maximum exceeded", 0x94: "topic alias invalid", 0x95: "packet too large",
    0x96: "message rate too high", 0x97: "quota exceeded", 0x98: "administrative action",
    0x99: "payload format invalid", 0x9A: "retain not supported", 0x9B: "QoS not supported",
    0x9C: "use another server", 0x9D: "server moved", 0x9F: "connection rate exceeded",
}

# property identifier → wire type (MQTT 5.0 §2.2.2.2)
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPS = {
    0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT, 0x11: _U32, 0x12: _STR,
    0x13: _U16, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _U32, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR,
    0x1F: _STR, 0x21: _U16, 0x22: _U16, 0x23: _U16, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
MAXIMUM_PACKET_SIZE = 0x27
SERVER_KEEP_ALIVE = 0x13
MAXIMUM_QOS = 0x24

PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"


def reason_text(code: int) -> str:
    return f"{REASONS.get(code, 'reason')} (0x{code:02X})"


class MqttError(Exception):
    """Something the broker or the network did; the message is written for an operator."""


class ConnectError(MqttError):
    """No usable connection: TCP, TLS or CONNACK failed."""


class ConnectionLost(MqttError):
    """The connection ended while a publish waited for its PUBACK."""


class PublishRejected(MqttError):
    """A PUBACK with a failure reason code (0x80 and above)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


#: MQTT 3.1.1 CONNACK return codes (3.1.1 §3.2.2.3)
V311_REFUSALS = {1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
                 4: "bad user name or password", 5: "not authorized"}
#: publishes in flight on a 3.1.1 connection, which has no Receive Maximum to tell us
V311_INFLIGHT = 100


def connect_packet(client_id: str, keepalive: int, version: int = 5) -> bytes:
    # protocol name, level (5 or 4), flags: clean start; keep alive; no properties (5 only); client id
    variable = b"\x00\x04MQTT" + bytes((version, 0x02)) + struct.pack("!H", keepalive)
    if version == 5:
        variable += b"\x00"
    body = variable + _string(client_id)
    return b"\x10" + varint(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes, version: int = 5) -> bytes:
    """PUBLISH, QoS 1, no retain, no properties (MQTT 5). ``topic`` is already UTF-8."""
    props = b"\x00" if version == 5 else b""
    length = 2 + len(topic) + 2 + len(props) + len(payload)
    return b"".join((b"\x32", varint(length), struct.pack("!H", len(topic)), topic,
                     struct.pack("!H", packet_id), props, payload))


def parse_properties(data: bytes | memoryview, pos: int) -> tuple[dict[int, object], int]:
    """Properties starting at ``pos`` (their length first); returns them and the position after."""
    length, pos = _read_varint(data, pos)
    end = pos + length
    props: dict[int, object] = {}
    while pos < end:
        ident = data[pos]
        pos += 1
        kind = _PROPS.get(ident)
        if kind is None:
            raise MqttError(f"malformed packet from broker: unknown property 0x{ident:02X}")
        if kind == _BYTE:
            value: object = data[pos]
            pos += 1
        elif kind == _U16:
            value = int.from_bytes(data[pos:pos + 2], "big")
            pos += 2
        elif kind == _U32:
            value = int.from_bytes(data[pos:pos + 4], "big")
            pos += 4
        elif kind == _VARINT:
            value, pos = _read_varint(data, pos)
        elif kind in (_STR, _BIN):
            n = int.from_bytes(data[pos:pos + 2], "big")
            raw = bytes(data[pos + 2:pos + 2 + n])
            value = raw.decode("utf-8", "replace") if kind == _STR else raw
            pos += 2 + n
        else:  # string pair (user property): kept out of the dict
            for _ in range(2):
                n = int.from_bytes(data[pos:pos + 2], "big")
                pos += 2 + n
            continue
        props[ident] = value
    return props, end


def _read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise MqttError("malformed packet from broker: variable length integer too long")


def describe_tls_error(exc: BaseException) -> str:
    """Turn an OpenSSL error into a sentence that names the side at fault."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the broker's certificate is not trusted ({exc.verify_message or exc.reason}); "
                "check ca_file and host")
    text = str(getattr(exc, "reason", None) or exc)
    lowered = text.lower()
    alerts = {
        "certificate_expired": "the broker refused the client certificate: it has expired",
        "certificate expired": "the broker refused the client certificate: it has expired",
        "unknown_ca": "the broker refused the client certificate: it was not issued by a CA the broker trusts",
        "unknown ca": "the broker refused the client certificate: it was not issued by a CA the broker trusts",
        "certificate_required": "the broker requires a client certificate",
        "certificate required": "the broker requires a client certificate",
        "bad_certificate": "the broker refused the client certificate (bad certificate)",
        "bad certificate": "the broker refused the client certificate (bad certificate)",
        "certificate_revoked": "the broker refused the client certificate: it was revoked",
        "certificate revoked": "the broker refused the client certificate: it was revoked",
        "certificate_unknown": "the broker refused the client certificate (certificate unknown)",
        "certificate unknown": "the broker refused the client certificate (certificate unknown)",
        "decrypt_error": "the broker refused the client certificate (signature check failed)",
        "handshake_failure": "TLS handshake failure (no common protocol or cipher, or the client certificate was refused)",
        "wrong_version_number": "the port does not speak TLS",
        "wrong version number": "the port does not speak TLS",
    }
    for needle, sentence in alerts.items():
        if needle in lowered:
            return f"{sentence} (TLS: {text})"
    return f"TLS error: {text}"


def describe_os_error(exc: OSError) -> str:
    """asyncio reports a refused connection to a name with several addresses as a plain
    OSError ("Multiple exceptions" / "Connect call failed"); name the cause plainly."""
    import socket

    if isinstance(exc, socket.gaierror):
        return f"the host name cannot be resolved ({exc.strerror or exc})"
    text = str(exc)
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in text:
        return "connection refused (is the broker running, and is this its port?)"
    return exc.strerror or text


class MqttConnection(asyncio.Protocol):
    """One connected MQTT 5 session. Create with :func:`connect`."""

    def __init__(self, keepalive: int, version: int = 5) -> None:
        self.loop = asyncio.get_running_loop()
        self.keepalive = keepalive
        self.version = version  # protocol level: 5, or 4 for MQTT 3.1.1
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[tuple[int, dict[int, object]]] = self.loop.create_future()
        self.closed: asyncio.Future[MqttError] = self.loop.create_future()
        self.receive_maximum = 65535
        self.maximum_packet_size = 268435455
        self.server_keepalive: int | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._inflight: dict[int, tuple[asyncio.Future[int], str]] = {}
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._next_id = 0
        self._last_sent = time.monotonic()
        self._ping_sent: float | None = None
        self._pinger: asyncio.Task | None = None
        self._close_reason: MqttError | None = None
        self.connack_length = 0
        self.draining = False  # set by the owner: no new publishes (it is about to close)

    # asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        if not self.connack.done() and buf[0] != 0x20:  # the first packet of a broker is CONNACK
            self.abort(ConnectError(f"the answer is not MQTT (no CONNACK); it began with {bytes(buf[:32])!r}"))
            return
        pos = 0
        n = len(buf)
        try:
            while n - pos >= 2:
                header = buf[pos]
                length = 0
                shift = 0
                i = pos + 1
                while True:
                    if i >= n:
                        length = -1
                        break
                    byte = buf[i]
                    i += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise MqttError("malformed packet from broker: bad remaining length")
                if length < 0 or n - i < length:
                    break
                self._packet(header, bytes(buf[i:i + length]))
                pos = i + length
        except MqttError as exc:
            self.abort(exc)
            return
        finally:
            if pos:
                del buf[:pos]

    def _packet(self, header: int, body: bytes) -> None:
        kind = header >> 4
        if kind == 4:  # PUBACK
            packet_id = (body[0] << 8) | body[1]
            code = body[2] if len(body) > 2 else 0
            entry = self._inflight.pop(packet_id, None)
            if entry is not None:
                future, topic = entry
                if not future.done():
                    if code < 0x80:
                        future.set_result(code)
                    else:
                        reason = ""
                        if len(body) > 3:
                            props, _ = parse_properties(body, 3)
                            if REASON_STRING in props:
                                reason = f": {props[REASON_STRING]}"
                        future.set_exception(PublishRejected(
                            f"the broker rejected the publish to topic {topic!r}: {reason_text(code)}{reason}", code))
                self._release_slot()
        elif kind == 13:  # PINGRESP
            self._ping_sent = None
        elif kind == 2:  # CONNACK
            code = body[1]
            props: dict[int, object] = {}
            if len(body) > 2 and self.version == 5:
                props, _ = parse_properties(body, 2)
            self.connack_length = len(body)
            if not self.connack.done():
                self.connack.set_result((code, props))
        elif kind == 14:  # DISCONNECT from the server
            code = body[0] if len(body) else 0
            reason = ""
            if len(body) > 1:
                props, _ = parse_properties(body, 1)
                if REASON_STRING in props:
                    reason = f": {props[REASON_STRING]}"
            self.abort(ConnectionLost(f"the broker closed the connection: {reason_text(code)}{reason}"))
        # PUBLISH (we subscribe to nothing), AUTH and others are ignored

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_reason is None:
            if exc is None:
                reason: MqttError = ConnectionLost("the broker closed the connection")
            elif isinstance(exc, ssl.SSLError):
                reason = ConnectionLost(describe_tls_error(exc))
            else:
                reason = ConnectionLost(f"connection lost: {exc}")
            self._close_reason = reason
        reason = self._close_reason
        if self._pinger is not None:
            self._pinger.cancel()
        if not self.connack.done():
            self.connack.set_exception(ConnectError(str(reason)))
            self.connack.exception()  # retrieved: no "never retrieved" warning if nobody waits
        for future, _topic in self._inflight.values():
            if not future.done():
                future.set_exception(ConnectionLost(str(reason)))
        self._inflight.clear()
        for waiter in self._slot_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionLost(str(reason)))
        self._slot_waiters.clear()
        if not self.closed.done():
            self.closed.set_result(reason)

    # sending --------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Queue bytes; everything queued in one loop iteration goes out in one TLS write."""
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.transport.is_closing():
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            self.transport.write(data)
            self._last_sent = time.monotonic()
        else:
            self._out.clear()

    def _release_slot(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @property
    def is_open(self) -> bool:
        return self._close_reason is None and not self.closed.done()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def publish(self, topic: str, payload: bytes, timeout: float) -> int:
        """Publish with QoS 1; returns the PUBACK reason code (0 or 0x10) once it arrives."""
        if not self.is_open:
            raise ConnectionLost(str(self._close_reason or "not connected"))
        while len(self._inflight) >= self.receive_maximum:  # the broker's flow control
            waiter = self.loop.create_future()
            self._slot_waiters.append(waiter)
            await waiter
        topic_raw = topic.encode("utf-8")
        packet_id = self._next_id
        while True:
            packet_id = packet_id % 65535 + 1
            if packet_id not in self._inflight:
                break
        self._next_id = packet_id
        packet = publish_packet(topic_raw, packet_id, payload, self.version)
        if len(packet) > self.maximum_packet_size:
            raise PublishRejected(f"the event is {len(packet)} bytes on the wire; the broker accepts at most "
                                  f"{self.maximum_packet_size}", 0x95)
        future: asyncio.Future[int] = self.loop.create_future()
        self._inflight[packet_id] = (future, topic)
        self._write(packet)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            self._inflight.pop(packet_id, None)
            self._release_slot()
            # a broker that does not acknowledge within the timeout is not trusted with more
            self.abort(ConnectionLost(f"no PUBACK within {timeout:g} s"))
            raise ConnectionLost(f"no PUBACK for the publish to topic {topic!r} within {timeout:g} s") from None

    # life cycle -------------------------------------------------------------------------

    def start_keepalive(self) -> None:
        keepalive = self.server_keepalive if self.server_keepalive is not None else self.keepalive
        if keepalive > 0:
            self._pinger = self.loop.create_task(self._keepalive(keepalive))

    async def _keepalive(self, keepalive: int) -> None:
        interval = keepalive / 2
        while self.is_open:
            await asyncio.sleep(interval / 2)
            now = time.monotonic()
            if self._ping_sent is not None and now - self._ping_sent > interval:
                self.abort(ConnectionLost(f"the broker did not answer PINGREQ within {interval:g} s"))
                return
            if self._ping_sent is None and now - self._last_sent >= interval:
                self._ping_sent = now
                self._write(PINGREQ)

    def abort(self, reason: MqttError) -> None:
        if self._close_reason is None:
            self._close_reason = reason
        if self.transport is not None:
            self.transport.abort()

    async def disconnect(self) -> None:
        """Polite DISCONNECT (reason 0), then close."""
        if self.transport is not None and self.is_open:
            self._close_reason = ConnectionLost("closed by the gateway")
            self._flush()
            self.transport.write(DISCONNECT)
            self.transport.close()
            try:
                async with asyncio.timeout(2):
                    await asyncio.shield(self.closed)
            except TimeoutError:
                self.transport.abort()


async def connect(host: str, port: int, context: ssl.SSLContext | None, client_id: str, *,
                  keepalive: int = 60, timeout: float = 20.0, version: int = 5) -> MqttConnection:
    """Open TCP + TLS, send CONNECT, wait for a successful CONNACK. Raises ConnectError.

    With ``version=5`` a broker that speaks only MQTT 3.1.1 is connected to again with 3.1.1
    (see ``MqttConnection.version`` of the result)."""
    try:
        return await _connect(host, port, context, client_id, keepalive, timeout, version)
    except _OlderProtocol:
        return await _connect(host, port, context, client_id, keepalive, timeout, 4)


class _OlderProtocol(Exception):
    """The broker answered an MQTT 5 CONNECT the way an MQTT 3.1.1 broker does."""


async def _connect(host: str, port: int, context: ssl.SSLContext | None, client_id: str, keepalive: int,
                   timeout: float, version: int) -> MqttConnection:
    loop = asyncio.get_running_loop()
    where = f"{host}:{port}"
    # asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for swallows a cancellation
    # that arrives in the same loop iteration as the result, and a sender being closed then
    # got a connection it never gave back (its close() waited for the supervisor forever)
    try:
        async with asyncio.timeout(timeout):
            _transport, protocol = await loop.create_connection(
                lambda: MqttConnection(keepalive, version), host, port, ssl=context,
                server_hostname=host if context is not None else None)
    except TimeoutError:
        raise ConnectError(f"cannot connect to {where}: no TCP/TLS connection within {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise ConnectError(f"cannot connect to {where}: {describe_tls_error(exc)}") from None
    except OSError as exc:
        raise ConnectError(f"cannot connect to {where}: {describe_os_error(exc)}") from None
    protocol._write(connect_packet(client_id, keepalive, version))
    try:
        async with asyncio.timeout(timeout):
            code, props = await asyncio.shield(protocol.connack)
    except TimeoutError:
        protocol.abort(ConnectError("no CONNACK"))
        raise ConnectError(f"cannot connect to {where}: no CONNACK within {timeout:g} s") from None
    except ConnectError as exc:
        raise ConnectError(f"cannot connect to {where}: {_connack_lost(exc)}") from None
    except BaseException:  # cancelled: the connection must not outlive the caller that wanted it
        protocol.abort(ConnectError("connect cancelled"))
        raise
    if version == 5 and (code == 0x84 or (code == 0x01 and not props and protocol.connack_length == 2)):
        protocol.abort(ConnectError("MQTT 5 refused"))  # 0x84, or 3.1.1's "unacceptable protocol version"
        raise _OlderProtocol()
    if version == 4 and code != 0:
        protocol.abort(ConnectError("refused"))
        raise ConnectError(f"the broker at {where} refused the connection: "
                           f"{V311_REFUSALS.get(code, 'refused')} (MQTT 3.1.1 return code {code})")
    if code >= 0x80:
        reason = f": {props[REASON_STRING]}" if REASON_STRING in props else ""
        protocol.abort(ConnectError("refused"))
        raise ConnectError(f"the broker at {where} refused the connection: {reason_text(code)}{reason}")
    if version == 4:
        protocol.receive_maximum = V311_INFLIGHT
    if RECEIVE_MAXIMUM in props:
        protocol.receive_maximum = int(props[RECEIVE_MAXIMUM])  # type: ignore[arg-type]
    if MAXIMUM_PACKET_SIZE in props:
        protocol.maximum_packet_size = int(props[MAXIMUM_PACKET_SIZE])  # type: ignore[arg-type]
    if SERVER_KEEP_ALIVE in props:
        protocol.server_keepalive = int(props[SERVER_KEEP_ALIVE])  # type: ignore[arg-type]
    if props.get(MAXIMUM_QOS) == 0:
        protocol.abort(ConnectError("QoS 0 only"))
        raise ConnectError(f"the broker at {where} supports QoS 0 only; delivery needs QoS 1")
    protocol.start_keepalive()
    return protocol


def _connack_lost(exc: ConnectError) -> str:
    """The connection closed before CONNACK: with TLS 1.3 this is how a refused client
    certificate shows (the alert arrives after the client's handshake finished)."""
    text = str(exc)
    if text == "the broker closed the connection":
        return ("the broker closed the connection before CONNACK (a broker that refuses the client "
                "certificate or the client id does this)")
    if "Connection reset by peer" in text:  # the alert was lost: our CONNECT reached a closed socket
        return ("the broker reset the connection before CONNACK (a broker that refuses the client "
                "certificate does this; the next attempt may name the reason)")
    return text
