"""AWS IoT Core over MQTT with mutual TLS: what a gateway registered as an IoT thing does.

One long-lived MQTT 5 connection per integration, kept up by a supervisor task (keep-alive,
reconnect with capped exponential backoff and jitter). ``send`` publishes with QoS 1 and
returns on PUBACK; many publishes share the connection at once (the delivery worker holds one
per SIM), up to the broker's Receive Maximum. Publishes are rate limited per connection
(AWS IoT Core allows 100 per second per connection).

Certificates and keys are read from their files before every connection attempt, and compared
with the ones in use every ``tls_check_seconds`` while connected: when they changed (a renewed
certificate, a new CA) and the new files make a usable TLS context, the connection is drained
(no new publishes, the ones in flight get their PUBACK), closed politely and opened again with
the new files. Files that cannot be used keep the working connection (logged, ERROR event).
Their content is never logged or put into events: errors name the file, not its content.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any

from . import mqtt
from .aws_common import TokenBucket, check_publish, topic_for
from .base import DeliveryError, SenderContext
from .tls_files import FileContext

log = logging.getLogger("nce.aws")


@dataclass
class AwsMqttSettings:
    host: str
    cert_file: str
    key_file: str
    client_id: str
    port: int = 8883
    ca_file: str | None = None
    keepalive: int = 60
    publish_rate_limit: float = 100.0  # per second and connection; 0 = unlimited
    timeout_seconds: float = 20.0  # TCP+TLS+CONNACK, and each PUBACK
    reconnect_min_seconds: float = 1.0
    reconnect_max_seconds: float = 60.0
    tls_check_seconds: float = 10.0  # how often the files are compared with those in use
    mqtt_version: int = 5  # protocol level: 5 (3.1.1 when the broker has only that) or 4 (3.1.1)

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any]) -> AwsMqttSettings:
        return cls(host=config["host"], cert_file=config["cert_file"], key_file=config["key_file"],
                   client_id=config.get("client_id") or f"nce-gateway-{name}",
                   port=int(config.get("port") or 8883), ca_file=config.get("ca_file"),
                   keepalive=int(config.get("keepalive", 60)),
                   publish_rate_limit=float(config.get("publish_rate_limit", 100.0)),
                   timeout_seconds=float(config.get("timeout_seconds", 20.0)),
                   reconnect_min_seconds=float(config.get("reconnect_min_seconds", 1.0)),
                   reconnect_max_seconds=float(config.get("reconnect_max_seconds", 60.0)),
                   tls_check_seconds=float(config.get("tls_check_seconds") or 10.0),
                   mqtt_version=4 if config.get("mqtt_version") == "3.1.1" else 5)


def client_tls_context(settings: AwsMqttSettings, now: dt.datetime | None = None) -> ssl.SSLContext:
    """Verified TLS with the client certificate; blocking (reads files): run it in a thread.

    Raises ConnectError with a sentence naming the file at fault (never its content).
    """
    from cryptography import x509

    for key in ("cert_file", "key_file", "ca_file"):
        path = getattr(settings, key)
        if path is None:
            continue
        try:
            with open(path, "rb") as handle:
                data = handle.read() if key == "cert_file" else b""
        except OSError as exc:
            raise mqtt.ConnectError(f"cannot read {key} {path}: {exc.strerror or exc}") from None
        if key == "cert_file":
            try:
                certificate = x509.load_pem_x509_certificate(data)
            except ValueError:
                raise mqtt.ConnectError(f"cert_file {path} does not hold a PEM certificate") from None
            now = now or dt.datetime.now(dt.timezone.utc)
            if certificate.not_valid_after_utc < now:
                raise mqtt.ConnectError(
                    f"the client certificate (cert_file {path}) expired on "
                    f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC; the broker would refuse it")
            if certificate.not_valid_before_utc > now:
                raise mqtt.ConnectError(
                    f"the client certificate (cert_file {path}) is not valid before "
                    f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
    except ssl.SSLError as exc:
        raise mqtt.ConnectError(f"ca_file {settings.ca_file} holds no usable CA certificate ({exc.reason})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise mqtt.ConnectError(f"key_file {settings.key_file} is not the key of cert_file "
                                    f"{settings.cert_file}") from None
        raise mqtt.ConnectError(f"cannot load cert_file {settings.cert_file} / key_file {settings.key_file}: "
                                f"{exc.reason or exc}") from None
    if settings.port == 443:  # AWS IoT Core: MQTT with client certificates on 443 needs this ALPN
        context.set_alpn_protocols(["x-amzn-mqtt-ca"])
    return context


class AwsMqttSender:
    needs_device = False

    def __init__(self, settings: AwsMqttSettings, context: SenderContext | None = None) -> None:
        self.settings = settings
        self.context = context or SenderContext(name=settings.client_id)
        self.where = f"{settings.host}:{settings.port}"
        self.bucket = TokenBucket(settings.publish_rate_limit) if settings.publish_rate_limit > 0 else None
        self.tls = FileContext(lambda: client_tls_context(settings),
                               {"ca_file": settings.ca_file, "cert_file": settings.cert_file,
                                "key_file": settings.key_file}, name=self.context.name)
        self._unusable: str | None = None  # why the changed files on disk cannot be used yet
        self._refusal: str | None = None  # the broker's refusal of our certificate, as last seen
        self.version = settings.mqtt_version  # what the broker spoke last time: asked for first
        self._conn: mqtt.MqttConnection | None = None
        self._supervisor: asyncio.Task | None = None
        self._outcome: asyncio.Future[None] | None = None  # resolved when the next connect attempt ends
        self._retry_at = 0.0
        self.last_error: str | None = None
        self._closed = False
        self.connections = 0
        metrics = self.context.metrics
        name = self.context.name
        self._m_connected = metrics.aws_connected.labels(name) if metrics else None
        self._m_reconnects = metrics.aws_reconnects.labels(name) if metrics else None
        self._m_connect_failures = metrics.aws_connect_failures.labels(name) if metrics else None
        self._m_rate_waits = metrics.aws_rate_limited.labels(name) if metrics else None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._ensure_supervisor()  # connect now: the connection is long-lived, not per event

    # the connection ---------------------------------------------------------------------

    def _ensure_supervisor(self) -> None:
        if self._closed:
            raise DeliveryError("sender closed")
        if self._supervisor is None or self._supervisor.done():
            loop = asyncio.get_running_loop()
            self._outcome = loop.create_future()
            self._supervisor = loop.create_task(self._supervise(), name=f"mqtt-{self.context.name}")

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._closed:
            try:
                tls = await loop.run_in_executor(None, self._tls_context)
                conn = await mqtt.connect(self.settings.host, self.settings.port, tls, self.settings.client_id,
                                          keepalive=self.settings.keepalive, timeout=self.settings.timeout_seconds,
                                          version=self.version)
            except mqtt.ConnectError as exc:
                self.tls.forget()  # the next attempt reads and checks the files anew (e.g. expiry)
                error = self._with_refusal(str(exc))
                failures += 1
                delay = self._backoff(failures)
                self._failed(error, delay)
                if self._m_connect_failures:
                    self._m_connect_failures.inc()
                log.warning("MQTT connection of %s failed: %s; next attempt in %.1f s", self.context.name, error,
                            delay, extra={"event": "aws_connect_failed", "integration": self.context.name})
                self.context.problems.report("connection", f"connect:{_category(str(exc))}",  # type: ignore[union-attr]
                                             error)
                await asyncio.sleep(delay)
                continue
            if self._closed:  # closed while connecting: give the connection back, do not keep it
                await conn.disconnect()
                return
            if conn.version != self.version:
                log.info("the broker of %s speaks MQTT 3.1.1 only; using it", self.context.name,
                         extra={"event": "aws_mqtt_311", "integration": self.context.name})
            self.version = conn.version
            self._refusal = None
            self._conn = conn
            self.connections += 1
            self.last_error = None
            if self._m_connected:
                self._m_connected.set(1)
                if self.connections > 1:
                    self._m_reconnects.inc()
            self.context.problems.clear()  # type: ignore[union-attr]
            log.info("MQTT connection of %s to %s up (MQTT %s, receive maximum %d)", self.context.name, self.where,
                     "5" if conn.version == 5 else "3.1.1", conn.receive_maximum,
                     extra={"event": "aws_connected", "integration": self.context.name})
            self._resolve()
            up_since = time.monotonic()
            reason = await self._hold(conn)
            self._conn = None
            if self._m_connected:
                self._m_connected.set(0)
            if self._closed:
                return
            if reason is None:  # closed by us for new TLS files: connect again at once
                continue
            # a connection that held for a while was a success: start the backoff over
            failures = 0 if time.monotonic() - up_since > max(30.0, self.settings.keepalive) else failures + 1
            delay = self._backoff(failures) if failures else 0.0
            self._failed(str(reason), delay)
            log.warning("MQTT connection of %s to %s lost: %s", self.context.name, self.where, reason,
                        extra={"event": "aws_disconnected", "integration": self.context.name})
            if delay:
                await asyncio.sleep(delay)

    def _with_refusal(self, error: str) -> str:
        """A broker that refuses the client certificate closes right after its TLS alert; when
        the CONNECT reaches the closed socket, the reset discards the alert and the attempt
        only sees a reset. Such an attempt names the refusal an earlier one saw (until a
        connection succeeds), so the ERROR events keep saying what is wrong."""
        if "refused the client certificate" in error or "requires a client certificate" in error:
            self._refusal = error
        elif "reset the connection before CONNACK" in error and self._refusal:
            return f"{error}; the attempt before: {self._refusal}"
        return error

    def _tls_context(self) -> ssl.SSLContext:
        """The context of the files as they are now (built again only when they changed)."""
        try:
            return self.tls.get()
        except OSError as exc:
            raise mqtt.ConnectError(str(exc)) from None

    async def _hold(self, conn: mqtt.MqttConnection) -> mqtt.MqttError | None:
        """Wait until ``conn`` ends (returns why), or until the TLS files changed on disk and the
        connection was drained and closed for them (returns None)."""
        loop = asyncio.get_running_loop()
        while True:
            done, _ = await asyncio.wait({conn.closed}, timeout=self.settings.tls_check_seconds)
            if done:
                return conn.closed.result()
            if not await loop.run_in_executor(None, self.tls.changed):
                continue
            try:
                await loop.run_in_executor(None, self._tls_context)
            except mqtt.ConnectError as exc:  # e.g. a new certificate written, its key not yet
                if str(exc) != self._unusable:
                    self._unusable = str(exc)
                    log.warning("TLS files of %s changed but cannot be used (%s); keeping the current "
                                "connection", self.context.name, exc,
                                extra={"event": "tls_files_unusable", "integration": self.context.name})
                    self.context.problems.report("credentials", f"files:{_category(str(exc))}",  # type: ignore[union-attr]
                                                 f"the changed TLS files cannot be used: {exc}")
                continue
            self._unusable = None
            log.info("MQTT connection of %s: reconnecting with the TLS files changed on disk (%d in flight "
                     "drained first)", self.context.name, conn.inflight,
                     extra={"event": "aws_tls_reload", "integration": self.context.name})
            conn.draining = True  # _connection() hands it out no more
            deadline = time.monotonic() + self.settings.timeout_seconds
            while conn.inflight and conn.is_open and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await conn.disconnect()
            return None

    def _backoff(self, failures: int) -> float:
        """Capped exponential backoff with jitter (half fixed, half random)."""
        ceiling = min(self.settings.reconnect_max_seconds,
                      self.settings.reconnect_min_seconds * 2 ** min(failures - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _failed(self, error: str, delay: float) -> None:
        self.last_error = error
        self._retry_at = time.monotonic() + delay
        self._resolve()

    def _resolve(self) -> None:
        """End the current attempt for everyone waiting on it; the next attempt gets a new future."""
        outcome = self._outcome
        self._outcome = asyncio.get_running_loop().create_future()
        if outcome is not None and not outcome.done():
            outcome.set_result(None)

    async def _connection(self) -> mqtt.MqttConnection:
        conn = self._conn
        if conn is not None and conn.is_open and not conn.draining:
            return conn
        self._ensure_supervisor()
        now = time.monotonic()
        if self.last_error is not None and now < self._retry_at:
            raise DeliveryError(f"not connected to {self.where} (next attempt in {self._retry_at - now:.1f} s): "
                                f"{self.last_error}")
        assert self._outcome is not None
        try:
            async with asyncio.timeout(self.settings.timeout_seconds + 5):
                await asyncio.shield(self._outcome)
        except TimeoutError:
            pass
        conn = self._conn
        if conn is not None and conn.is_open and not conn.draining:
            return conn
        raise DeliveryError(f"not connected to {self.where}: {self.last_error or 'connection attempt timed out'}")

    # delivering -------------------------------------------------------------------------

    async def send(self, body: str, device: dict[str, str] | None, event_type: str) -> None:
        topic = topic_for(event_type, body)
        payload = body.encode("utf-8")
        check_publish(topic, payload)
        conn = await self._connection()
        if self.bucket is not None:
            wait = self.bucket.reserve()
            if wait > 0:
                if self._m_rate_waits:
                    self._m_rate_waits.inc()
                await asyncio.sleep(wait)
        try:
            await conn.publish(topic, payload, self.settings.timeout_seconds)
        except mqtt.PublishRejected as exc:
            if exc.code == 0x95:  # packet too large: this event can never go out
                raise DeliveryError(str(exc), permanent=True) from None
            if exc.code == 0x87:
                self.context.problems.report(  # type: ignore[union-attr]
                    "publish", f"denied:{topic}",
                    f"publishing to topic {topic!r} is not authorized (check the IoT policy of the certificate)")
            raise DeliveryError(str(exc)) from None
        except mqtt.MqttError as exc:
            raise DeliveryError(f"no PUBACK from {self.where}: {exc}") from None

    async def close(self) -> None:
        self._closed = True
        conn = self._conn
        if conn is not None:
            await conn.disconnect()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._m_connected:
            self._m_connected.set(0)


def _category(error: str) -> str:
    """Failures that differ only in details (a port, a time) count as the same problem."""
    lowered = error.lower()
    for word in ("expired", "not trusted", "refused the client certificate", "requires a client certificate",
                 "refused the connection", "cannot read", "not the key", "connection refused", "before connack",
                 "no tcp/tls", "tls"):
        if word in lowered:
            return word
    return lowered[:80]
