"""A transport-agnostic DTLS 1.2 PSK server engine on python-mbedtls.

The engine owns no socket: the caller feeds it every datagram of the DTLS port
(:meth:`DtlsServer.datagram_received`) and gives it a ``sendto`` callable.  Each
peer gets one ``MbedTLSBuffer`` (``ServerContext.wrap_buffers()``), created only
after the peer echoed a valid HelloVerifyRequest cookie.  See ``docs/dtls.md``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from mbedtls.exceptions import TLSError
from mbedtls.tls import (
    DTLSConfiguration,
    DTLSVersion,
    HelloVerifyRequest,
    ServerContext,
    WantReadError,
    WantWriteError,
)
from mbedtls.tls import HandshakeStep

from .config import DtlsConfig, iana_suite_name
from .ratelog import LogBudget
from .records import (
    CONTENT_TYPES,
    CT_ALERT,
    CT_APPLICATION_DATA,
    CT_HANDSHAKE,
    HEADER_LEN,
    HS_CLIENT_HELLO,
    pack_datagrams,
    parse_client_hello,
    split_records,
)

__all__ = ["DtlsServer", "DtlsSession", "DtlsStats", "Addr", "HandshakeRefused", "MAX_PSK_LEN"]

log = logging.getLogger("gateway.dtls")

Addr = tuple[str, int]

#: Longest PSK the bundled Mbed TLS 2.28 accepts (MBEDTLS_PSK_MAX_LEN).
MAX_PSK_LEN = 32
#: Mbed TLS' cookies are valid for 60 s (MBEDTLS_SSL_COOKIE_TIMEOUT, whole
#: seconds), plus a margin.
COOKIE_LIFETIME = 62.0

_HS_FRESH = (HandshakeStep.HELLO_REQUEST, HandshakeStep.CLIENT_HELLO)

# Mbed TLS 2.28 error codes (absolute values) -> handshake failure reasons.
_ERR_REASONS = {
    0x6C80: "unknown_identity",  # MBEDTLS_ERR_SSL_UNKNOWN_IDENTITY
    0x7180: "bad_key",  # INVALID_MAC: the peer's Finished did not decrypt
    0x7E80: "bad_key",  # BAD_HS_FINISHED
    0x7380: "no_shared_cipher",  # NO_CIPHER_CHOSEN
    0x7080: "no_shared_cipher",  # FEATURE_UNAVAILABLE
    0x6E80: "protocol_version",  # BAD_HS_PROTOCOL_VERSION
    0x6800: "timeout",  # TIMEOUT
    0x7780: "peer_alert",  # FATAL_ALERT_MESSAGE
    0x7880: "peer_closed",  # PEER_CLOSE_NOTIFY during the handshake
}
_ERR_CLOSE_NOTIFY = 0x7880

HANDSHAKE = "handshake"
ESTABLISHED = "established"
CLOSED = "closed"

_session_ids = itertools.count(1)


class HandshakeRefused(Exception):
    """Raised by ``psk_for_identity`` to refuse an identity with a reason of the caller's
    (e.g. ``disabled_sim``): the handshake fails as for an unknown identity (an
    ``unknown_psk_identity`` alert) and is counted and logged under that reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _run_handshake(buf: Any) -> bool:
    """Step the handshake until Mbed TLS waits for the peer (``do_handshake()``
    does one step per call).  Returns True once the handshake is over.

    Not checking ``_handshake_state`` after every step saves an Enum
    construction per step (~2 us each, a dozen per handshake): a step on a
    finished handshake makes python-mbedtls raise ValueError("handshake
    already over") without touching the context.  HelloVerifyRequest and
    TLSError propagate."""
    while True:
        try:
            buf.do_handshake()
        except WantWriteError:  # a step done and its output pending: keep stepping
            continue
        except WantReadError:
            return False
        except ValueError:
            return True


class DtlsSession:
    """One DTLS association, from the cookie-verified ClientHello on.

    The object itself is the stable key for upper layers (hashable by
    identity); ``addr`` may change while the session lives (NAT rebinding,
    reopened device socket: see "sessions follow the SIM" in docs/dtls.md).
    """

    __slots__ = (
        "session_id",
        "identity",
        "addr",
        "state",
        "cipher",
        "created",
        "established_at",
        "last_activity",
        "close_reason",
        "context",
        "_buf",
        "_timer",
        "_deadline",
        "_rto",
        "_client_random",
        "_fail_reason",
        "psk",
        "__weakref__",
    )

    def __init__(self, buf: Any, addr: Addr, client_random: bytes, now: float) -> None:
        self.session_id: int = next(_session_ids)
        #: PSK identity the peer authenticated with (the ICCID); None until the
        #: ClientKeyExchange arrived.
        self.identity: bytes | None = None
        #: Current (ip, port) of the peer.
        self.addr: Addr = addr
        #: "handshake", "established" or "closed".
        self.state: str = HANDSHAKE
        #: Negotiated suite (IANA name) once established.
        self.cipher: str | None = None
        self.created: float = now
        self.established_at: float | None = None
        #: time.monotonic() of the last authenticated record from the peer.
        self.last_activity: float = now
        self.close_reason: str | None = None
        #: Free slot for the upper layer (e.g. the SIM, a CoAP dedupe cache).
        self.context: Any = None
        self._buf = buf
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float = 0.0
        self._rto: float = 0.0
        self._client_random = client_random
        self._fail_reason: str | None = None
        #: The key this session's handshake used (the caller may offer one of
        #: several valid keys, e.g. during a key rotation's grace period).
        self.psk: bytes | None = None

    @property
    def ip(self) -> str:
        return self.addr[0]

    @property
    def established(self) -> bool:
        return self.state == ESTABLISHED

    def __repr__(self) -> str:
        return (
            f"<DtlsSession #{self.session_id} {self.state} identity={self.identity!r} "
            f"addr={self.addr[0]}:{self.addr[1]} cipher={self.cipher}>"
        )


@dataclass
class DtlsStats:
    """Counters (monotonic) of one engine; gauges are on :meth:`DtlsServer.metrics`."""

    datagrams_in: int = 0
    datagrams_out: int = 0
    hello_verify_sent: int = 0
    handshakes_started: int = 0
    handshakes_ok: int = 0
    handshakes_failed: Counter = field(default_factory=Counter)
    retransmissions: int = 0
    records_in: int = 0
    records_out: int = 0
    rebinds: int = 0
    rebind_failed: int = 0
    resets: int = 0
    dropped: Counter = field(default_factory=Counter)
    sessions_closed: Counter = field(default_factory=Counter)


class _PskLookup(Mapping):
    """The ``pre_shared_key_store`` given to Mbed TLS.

    python-mbedtls looks the identity up in this mapping from inside
    ``do_handshake()`` (synchronously, on the engine's thread), so the engine
    knows which session is being driven and can hand the peer's address to the
    caller's ``psk_for_identity`` and record the identity on the session.
    """

    def __init__(self, server: "DtlsServer") -> None:
        self._server = server

    def __getitem__(self, key: str) -> bytes:
        psk = self._server._lookup_psk(key)
        if psk is None:
            raise KeyError(key)
        return psk

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 1  # must be truthy, or python-mbedtls would not install the callback


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class DtlsServer:
    """DTLS 1.2 PSK server engine driven by datagrams.

    Args:
        psk_for_identity: ``(identity, addr) -> key | None``; None (or an
            exception) fails the handshake with an ``unknown_psk_identity``
            alert.  Called synchronously during the handshake: keep it an
            in-memory lookup.
        sendto: ``(datagram, addr) -> None``, e.g. ``transport.sendto``.
        on_application_data: ``(session, plaintext) -> None``, called for every
            decrypted application-data record, synchronously from
            :meth:`datagram_received`.  It may call :meth:`send` / :meth:`close`.
        config: limits and timers.
        loop: event loop for the retransmission / idle timers (default: the
            running loop at first use).
        session_for_ip: optional policy hook ``(ip, candidates) -> sessions`` that
            chooses which established sessions of a source IP a record arriving
            from a new port of that IP may continue (default: all of them, most
            recently active first, at most ``config.max_rebind_candidates``).
            Return an empty list to forbid rebinding for that IP.
        on_session_established: ``(session) -> None`` after a handshake completed.
        on_session_closed: ``(session, reason) -> None`` whenever a session
            goes away, including failed handshakes (``session.established_at``
            is None for those).
        may_supersede: optional policy hook ``(old, new) -> bool`` asked when a
            handshake completes with the identity of an established session
            (``one_session_per_identity``): False keeps the old session open
            beside the new one (e.g. a SIM's session at its own address is not
            replaced by a handshake from elsewhere).
    """

    def __init__(
        self,
        *,
        psk_for_identity: Callable[[bytes, Addr], bytes | None],
        sendto: Callable[[bytes, Addr], None],
        on_application_data: Callable[[DtlsSession, bytes], None],
        config: DtlsConfig | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        session_for_ip: Callable[[str, list[DtlsSession]], Iterable[DtlsSession]] | None = None,
        on_session_established: Callable[[DtlsSession], None] | None = None,
        on_session_closed: Callable[[DtlsSession, str], None] | None = None,
        may_supersede: Callable[[DtlsSession, DtlsSession], bool] | None = None,
    ) -> None:
        self.config = cfg = config or DtlsConfig()
        self._psk_for_identity = psk_for_identity
        self._sendto = sendto
        self._on_app = on_application_data
        self._loop = loop
        self._session_for_ip = session_for_ip
        self._on_established = on_session_established
        self._on_closed = on_session_closed
        self._may_supersede = may_supersede
        self._failure_log = LogBudget(cfg.failure_logs_per_second)
        self.stats = DtlsStats()

        self._ctx = ServerContext(
            DTLSConfiguration(
                ciphers=cfg.mbedtls_ciphers,
                lowest_supported_version=DTLSVersion.DTLSv1_2,
                highest_supported_version=DTLSVersion.DTLSv1_2,
                validate_certificates=False,
                anti_replay=cfg.anti_replay,
                handshake_timeout_min=cfg.retransmit_min,
                handshake_timeout_max=cfg.retransmit_max,
                pre_shared_key_store=_PskLookup(self),
            )
        )
        # The one buffer that answers ClientHellos without a valid cookie: it
        # is reset after every HelloVerifyRequest, so no per-peer state exists
        # before the peer proved it receives at its source address.  When a
        # cookie verifies, this buffer becomes that peer's session and a new
        # spare is made.
        self._spare = self._ctx.wrap_buffers()
        self._rbuf = bytearray(16 * 1024 + 1024)

        self._by_addr: dict[Addr, DtlsSession] = {}
        self._by_ip: dict[str, list[DtlsSession]] = {}
        self._by_identity: dict[bytes, DtlsSession] = {}
        self._lru: OrderedDict[int, DtlsSession] = OrderedDict()  # established, by last activity
        self._handshaking: OrderedDict[int, DtlsSession] = OrderedDict()  # half-open, oldest first
        self._current: DtlsSession | None = None  # session being driven (PSK callback)

        self._ip_buckets: dict[str, _Bucket] = {}
        self._ip_rate = cfg.handshakes_per_ip_per_second
        self._ip_burst = max(1.0, cfg.handshakes_per_ip_per_second)
        self._hvr_bucket = _Bucket(cfg.hello_verify_per_second, time.monotonic())
        self._hvr_burst = cfg.hello_verify_per_second
        # HelloVerifyRequests per source (IPv4 address, IPv6 /64), before the global budget
        self._hvr_ip_buckets: dict[str, _Bucket] = {}
        self._hvr_ip_rate = cfg.effective_hello_verify_per_ip
        self._hvr_ip_burst = max(1.0, self._hvr_ip_rate)
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    # ------------------------------------------------------------------ API

    @property
    def sessions(self) -> list[DtlsSession]:
        """All live sessions (half-open and established)."""
        return list(self._by_addr.values())

    @property
    def session_count(self) -> int:
        return len(self._lru)

    @property
    def half_open_count(self) -> int:
        return len(self._handshaking)

    def session_for_addr(self, addr: Addr) -> DtlsSession | None:
        return self._by_addr.get(addr)

    def session_for_identity(self, identity: bytes) -> DtlsSession | None:
        return self._by_identity.get(identity)

    def metrics(self) -> dict[str, int]:
        """Flat snapshot of counters and gauges (for /metrics)."""
        s = self.stats
        out = {
            "dtls_sessions": len(self._lru),
            "dtls_half_open": len(self._handshaking),
            "dtls_tracked_ips": len(self._ip_buckets),
            "dtls_tracked_hello_sources": len(self._hvr_ip_buckets),
            "dtls_datagrams_in": s.datagrams_in,
            "dtls_datagrams_out": s.datagrams_out,
            "dtls_hello_verify_sent": s.hello_verify_sent,
            "dtls_handshakes_started": s.handshakes_started,
            "dtls_handshakes_ok": s.handshakes_ok,
            "dtls_retransmissions": s.retransmissions,
            "dtls_records_in": s.records_in,
            "dtls_records_out": s.records_out,
            "dtls_rebinds": s.rebinds,
            "dtls_rebind_failed": s.rebind_failed,
            "dtls_resets": s.resets,
        }
        for k, v in s.handshakes_failed.items():
            out[f"dtls_handshakes_failed_{k}"] = v
        for k, v in s.dropped.items():
            out[f"dtls_dropped_{k}"] = v
        for k, v in s.sessions_closed.items():
            out[f"dtls_sessions_closed_{k}"] = v
        return out

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        """Feed one datagram received on the DTLS port from ``addr``."""
        stats = self.stats
        stats.datagrams_in += 1
        if self._closed:
            return
        n = len(data)
        if n < HEADER_LEN or n > self.config.max_datagram_in:
            stats.dropped["malformed"] += 1
            return
        ct = data[0]
        if ct not in CONTENT_TYPES or data[1] != 0xFE:
            stats.dropped["not_dtls"] += 1
            return
        epoch0 = data[3] == 0 and data[4] == 0
        client_hello = epoch0 and ct == CT_HANDSHAKE and n > 25 and data[13] == HS_CLIENT_HELLO
        sess = self._by_addr.get(addr)
        if sess is not None:
            if client_hello:
                self._client_hello_on_session(sess, data, addr)
            elif sess.state == ESTABLISHED:
                single = HEADER_LEN + ((data[11] << 8) | data[12]) == n
                if epoch0 or not single:
                    # Epoch-0 records are unauthenticated: keep them away from an
                    # established context (a malformed one would be fatal to it).
                    data = self._without_epoch0(data)
                    if data is None:
                        stats.dropped["epoch0_on_session"] += 1
                        return
                sess._buf.receive_from_network(data)
                self._read_records(sess, single)
            else:
                sess._buf.receive_from_network(data)
                self._drive_handshake(sess, from_peer=True)
            return
        if client_hello:
            self._stateless_client_hello(data, addr, None)
            return
        if not epoch0 and (ct == CT_APPLICATION_DATA or ct == CT_ALERT):
            cands = self._by_ip.get(addr[0])
            if cands:
                if HEADER_LEN + ((data[11] << 8) | data[12]) != n:
                    data = self._without_epoch0(data)
                    if data is None:
                        stats.dropped["malformed"] += 1
                        return
                self._try_rebind(data, addr, cands)
                return
        stats.dropped["no_session"] += 1

    @staticmethod
    def _without_epoch0(data: bytes) -> bytes | None:
        """The datagram's records of epoch >= 1 (what an established session
        may see).  Keeps a peer's retransmitted last flight useful: its
        Finished (epoch 1) makes Mbed TLS resend our last flight."""
        records = split_records(data)
        if records is None:
            return None
        kept = [r for r in records if r[3] or r[4]]
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else b"".join(kept)

    def send(self, session: DtlsSession, plaintext: bytes) -> None:
        """Encrypt ``plaintext`` as one record and send it to the session's
        current address.  Raises ConnectionError if the session is not
        established (any more)."""
        if session.state != ESTABLISHED:
            raise ConnectionError(f"DTLS session #{session.session_id} is {session.state}")
        buf = session._buf
        try:
            buf.write(plaintext)
        except TLSError as exc:  # e.g. record too large; python-mbedtls reset the context
            self._remove(session, "error")
            raise ConnectionError(f"DTLS write failed: {exc}") from exc
        self.stats.records_out += 1
        self._flush(buf, session.addr)

    def close(self, session: DtlsSession, *, notify: bool = True) -> None:
        """Close a session; with ``notify`` an established one sends close_notify."""
        self._close(session, "closed_by_server", notify=notify)

    def _close(self, session: DtlsSession, reason: str, *, notify: bool) -> None:
        if session.state == CLOSED:
            return
        if notify and session.state == ESTABLISHED:
            try:
                session._buf.shutdown()
            except TLSError:
                pass
            self._flush(session._buf, session.addr)
        self._remove(session, reason)

    def shutdown(self, *, notify: bool = True) -> None:
        """Close every session and stop the timers; later datagrams are ignored."""
        for sess in list(self._by_addr.values()):
            self.close(sess, notify=notify)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._closed = True

    # ------------------------------------------------------------ internals

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _lookup_psk(self, key: str) -> bytes | None:
        sess = self._current
        identity = key.encode("utf-8")
        if sess is not None:
            sess.identity = identity
            addr = sess.addr
        else:  # not expected: the PSK arrives in the ClientKeyExchange of a session
            addr = ("", 0)
        reason = "unknown_identity"
        try:
            psk = self._psk_for_identity(identity, addr)
        except HandshakeRefused as refused:
            psk, reason = None, refused.reason
        except Exception:  # noqa: BLE001 - a failing lookup must only fail this handshake
            log.exception("psk_for_identity(%r) raised", identity)
            psk = None
        if not psk:
            if sess is not None:
                sess._fail_reason = reason
            return None
        if sess is not None:
            sess.psk = bytes(psk)
        if len(psk) > MAX_PSK_LEN:
            # Mbed TLS 2.28 (MBEDTLS_PSK_MAX_LEN) would fail with an internal
            # error and no alert; fail cleanly with unknown_psk_identity instead.
            log.warning("PSK of %r is %d bytes; at most %d are supported", identity, len(psk), MAX_PSK_LEN)
            if sess is not None:
                sess._fail_reason = "psk_too_long"
            return None
        return bytes(psk)

    def _flush(self, buf: Any, addr: Addr) -> int:
        """Send what Mbed TLS wrote, cut into datagrams at record boundaries."""
        n = len(buf._output_buffer)
        if not n:
            return 0
        data = buf.peek_outgoing(n)
        buf.consume_outgoing(n)
        if n <= self.config.max_datagram_out:
            self._send_datagram(data, addr)
        else:
            for dgram in pack_datagrams(data, self.config.max_datagram_out):
                self._send_datagram(dgram, addr)
        return n

    def _send_datagram(self, data: bytes, addr: Addr) -> None:
        try:
            self._sendto(data, addr)
        except OSError as exc:
            self.stats.dropped["send_error"] += 1
            log.debug("sendto %s failed: %s", addr, exc)
            return
        self.stats.datagrams_out += 1

    def _take(self, bucket: _Bucket, rate: float, burst: float, now: float, consume: bool) -> bool:
        tokens = min(burst, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if tokens < 1.0:
            bucket.tokens = tokens
            return False
        bucket.tokens = tokens - 1.0 if consume else tokens
        return True

    def _ip_bucket(self, ip: str, now: float) -> _Bucket | None:
        bucket = self._ip_buckets.get(ip)
        if bucket is None:
            if len(self._ip_buckets) >= self.config.max_tracked_ips:
                self._prune_ip_buckets(now)
                if len(self._ip_buckets) >= self.config.max_tracked_ips:
                    return None
            bucket = self._ip_buckets[ip] = _Bucket(self._ip_burst, now)
        return bucket

    def _prune_ip_buckets(self, now: float) -> None:
        full_after = self._ip_burst / self._ip_rate
        stale = [ip for ip, b in self._ip_buckets.items() if now - b.stamp >= full_after]
        for ip in stale:
            del self._ip_buckets[ip]
        full_after = self._hvr_ip_burst / self._hvr_ip_rate
        stale = [src for src, b in self._hvr_ip_buckets.items() if now - b.stamp >= full_after]
        for src in stale:
            del self._hvr_ip_buckets[src]

    def _hvr_source_bucket(self, ip: str, now: float) -> _Bucket | None:
        """The HelloVerifyRequest budget of a source: its IPv4 address, or its IPv6 /64 (one
        host usually holds a whole /64). None when the table is full of fresh sources
        (a flood from many addresses): then only the global budget applies."""
        source = ip if ":" not in ip else ":".join(ip.split(":")[:4])
        bucket = self._hvr_ip_buckets.get(source)
        if bucket is None:
            if len(self._hvr_ip_buckets) >= self.config.max_tracked_ips:
                self._prune_ip_buckets(now)
                if len(self._hvr_ip_buckets) >= self.config.max_tracked_ips:
                    return None
            bucket = self._hvr_ip_buckets[source] = _Bucket(self._hvr_ip_burst, now)
        return bucket

    def _handshake_failed(self, reason: str, addr: Addr, identity: bytes | None) -> None:
        """Count a failed handshake, and log it while the log budget lasts."""
        self.stats.handshakes_failed[reason] += 1
        budget = self._failure_log
        if not budget.allow():
            return
        shown = identity.decode("utf-8", "replace")[:64] if identity is not None else None
        log.warning("DTLS handshake failed (%s) from %s:%s, identity %r", reason, addr[0], addr[1], shown,
                    extra={"event": "dtls_handshake_failed", "reason": reason, "ip": addr[0], "port": addr[1],
                           "identity": shown, "suppressed": budget.take_suppressed()})

    # -- new peers

    def _client_hello_on_session(self, sess: DtlsSession, data: bytes, addr: Addr) -> None:
        """An epoch-0 ClientHello from the address of an existing session."""
        info = parse_client_hello(data)
        if info is None:
            self.stats.dropped["malformed"] += 1
            return
        if info.random == sess._client_random:
            if sess.state == HANDSHAKE:
                # Retransmitted ClientHello: our flight was lost; Mbed TLS resends it.
                sess._buf.receive_from_network(data)
                self._drive_handshake(sess, from_peer=True)
                return
            if time.monotonic() - (sess.established_at or 0.0) <= COOKIE_LIFETIME:
                # A late copy of the ClientHello that opened this session: its
                # cookie may still be valid, so it must not restart the session.
                self.stats.dropped["stale_client_hello"] += 1
                return
            # Older than any cookie it could carry: a device that reuses its
            # ClientHello random after a reboot (weak RNG); treat as a restart.
        # A new ClientHello: the peer restarted (RFC 6347 §4.2.8).  Answer with
        # a HelloVerifyRequest and leave the session alone; only a ClientHello
        # with a valid cookie (the peer proved it owns the address) replaces it.
        self._stateless_client_hello(data, addr, sess)

    def _stateless_client_hello(self, data: bytes, addr: Addr, replacing: DtlsSession | None) -> None:
        stats = self.stats
        now = time.monotonic()
        info = parse_client_hello(data)
        if info is None:
            stats.dropped["malformed"] += 1
            return
        cfg = self.config
        bucket = None
        if info.cookie:
            # This may create state if the cookie verifies: check the per-IP
            # budget first so that a flood from one source costs no Mbed TLS work.
            bucket = self._ip_bucket(addr[0], now)
            if bucket is None or not self._take(bucket, self._ip_rate, self._ip_burst, now, False):
                stats.dropped["rate_limited"] += 1
                return
        else:
            source = self._hvr_source_bucket(addr[0], now)
            if source is not None and not self._take(source, self._hvr_ip_rate, self._hvr_ip_burst, now, True):
                stats.dropped["hello_verify_source_rate"] += 1
                return
            if not self._take(self._hvr_bucket, cfg.hello_verify_per_second, self._hvr_burst, now, True):
                stats.dropped["hello_verify_rate"] += 1
                return

        spare = self._spare
        # Mbed TLS' cookie is an HMAC over this "client transport id" and a
        # timestamp.  Binding it to the ClientHello random as well as to the
        # address (RFC 6347 requires the same random in both ClientHellos)
        # means a captured cookie cannot start another handshake, e.g. to
        # reset an established session with a modified ClientHello.
        spare.setcookieparam(f"{addr[0]}:{addr[1]}".encode() + info.random)
        spare.receive_from_network(data)
        self._current = None
        try:
            _run_handshake(spare)
        except HelloVerifyRequest:
            # Mbed TLS wrote the HelloVerifyRequest and reset the context.
            self._clear_spare_input(spare)
            self._flush(spare, addr)
            stats.hello_verify_sent += 1
            return
        except TLSError as exc:
            # e.g. no shared cipher suite / DTLS 1.0 only: python-mbedtls reset
            # the context; send the alert it wrote, keep nothing.
            self._clear_spare_input(spare)
            self._flush(spare, addr)
            reason = self._reason(exc)
            if reason.startswith("error"):  # a malformed ClientHello, not a peer we could serve
                stats.dropped["bad_client_hello"] += 1
            else:
                self._handshake_failed(reason, addr, None)
            return
        if spare._handshake_state in _HS_FRESH:
            # Mbed TLS discarded the datagram (bad ClientHello): nothing to keep.
            spare._reset()
            self._clear_spare_input(spare)
            spare.consume_outgoing(len(spare._output_buffer))
            stats.dropped["bad_client_hello"] += 1
            return

        # The cookie verified: from here on the peer has state.
        if bucket is not None:
            bucket.tokens -= 1.0
        self._spare = self._ctx.wrap_buffers()
        if replacing is not None and replacing.state != CLOSED:
            stats.resets += 1
            self._remove(replacing, "peer_restart")
        if len(self._handshaking) >= cfg.max_half_open:
            # Evict the oldest half-open handshake rather than refuse the new
            # one: a real peer finishes within a round trip, so a flood must
            # then sustain max_half_open handshakes per RTT (from addresses
            # that receive, within the per-IP budget) to lock anyone out.
            _, oldest = next(iter(self._handshaking.items()))
            self._handshake_failed("half_open_limit", oldest.addr, oldest.identity)
            self._remove(oldest, "handshake_failed_half_open_limit")
        sess = DtlsSession(spare, addr, info.random, now)
        sess._deadline = now + cfg.handshake_timeout
        sess._rto = cfg.retransmit_min
        self._index(sess)
        self._handshaking[sess.session_id] = sess
        stats.handshakes_started += 1
        self._flush(spare, addr)
        self._arm(sess, cfg.retransmit_min)

    @staticmethod
    def _clear_spare_input(spare: Any) -> None:
        inp = spare._input_buffer
        if len(inp):
            inp.clear()

    # -- handshake

    def _drive_handshake(self, sess: DtlsSession, *, from_peer: bool) -> None:
        buf = sess._buf
        self._current = sess
        try:
            over = _run_handshake(buf)
        except (TLSError, HelloVerifyRequest) as exc:
            self._current = None
            self._flush(buf, sess.addr)  # the alert, if Mbed TLS wrote one
            reason = sess._fail_reason or self._reason(exc)
            self._handshake_failed(reason, sess.addr, sess.identity)
            self._remove(sess, f"handshake_failed_{reason}")
            return
        self._current = None
        sent = self._flush(buf, sess.addr)
        if over:
            self._established(sess)
            return
        if sent:
            if from_peer:
                sess._rto = self.config.retransmit_min  # a new flight
            else:
                self.stats.retransmissions += 1
                sess._rto = min(sess._rto * 2.0, self.config.retransmit_max)
            self._arm(sess, sess._rto)
        elif not from_peer:
            # Our timer ran a little ahead of Mbed TLS' own clock: poll again soon.
            self._arm(sess, 0.02)

    def _arm(self, sess: DtlsSession, delay: float) -> None:
        if sess._timer is not None:
            sess._timer.cancel()
        remaining = sess._deadline - time.monotonic()
        sess._timer = self._get_loop().call_later(
            max(0.0, min(delay, remaining)), self._on_handshake_timer, sess
        )
        if self._sweeper is None:
            self._start_sweeper()

    def _on_handshake_timer(self, sess: DtlsSession) -> None:
        sess._timer = None
        if sess.state != HANDSHAKE:
            return
        if time.monotonic() >= sess._deadline:
            self._handshake_failed("timeout", sess.addr, sess.identity)
            self._remove(sess, "handshake_failed_timeout")
            return
        self._drive_handshake(sess, from_peer=False)

    def _established(self, sess: DtlsSession) -> None:
        if sess._timer is not None:
            sess._timer.cancel()
            sess._timer = None
        now = time.monotonic()
        sess.state = ESTABLISHED
        sess.established_at = sess.last_activity = now
        sess.cipher = iana_suite_name(sess._buf.cipher())
        del self._handshaking[sess.session_id]
        ident = sess.identity
        old = self._by_identity.get(ident) if ident is not None else None
        keep_old = False
        if old is not None and self.config.one_session_per_identity:
            if self._may_supersede is None or self._may_supersede(old, sess):
                # close_notify first: the old peer (a rebooted firmware, another
                # host) learns at once that it must handshake again
                self._close(old, "superseded", notify=True)
            else:
                keep_old = True
        if len(self._lru) >= self.config.max_sessions:
            # Only a peer that proved its PSK gets here, so a flood of
            # half-open handshakes cannot push established sessions out.
            self._evict_lru()
        self._lru[sess.session_id] = sess
        self.stats.handshakes_ok += 1
        if ident is not None and not keep_old:
            self._by_identity[ident] = sess
        if self._on_established is not None:
            try:
                self._on_established(sess)
            except Exception:  # noqa: BLE001
                log.exception("on_session_established raised")
        if sess.state == ESTABLISHED:
            self._read_records(sess)  # records that came with the Finished

    # -- established sessions

    def _read_records(self, sess: DtlsSession, single: bool = False) -> bool:
        """Decrypt what the session's buffer holds; deliver application data.
        ``single``: the datagram is one record, so stop after it (saves a
        call that would only raise WantReadError).

        Returns True if at least one authenticated record was processed."""
        buf = sess._buf
        rbuf = self._rbuf
        size = len(rbuf)
        got = False
        while True:
            try:
                n = buf.readinto(rbuf, size)
            except WantReadError:
                break
            except WantWriteError:
                break
            except TLSError as exc:  # close_notify, fatal alert: python-mbedtls reset the context
                err = getattr(exc, "err", None) or 0
                self._flush(buf, sess.addr)
                self._remove(sess, "close_notify" if abs(err) == _ERR_CLOSE_NOTIFY else "peer_error")
                return True
            got = True
            self.stats.records_in += 1
            sess.last_activity = time.monotonic()
            self._lru.move_to_end(sess.session_id)
            try:
                self._on_app(sess, bytes(rbuf[:n]))
            except Exception:  # noqa: BLE001 - a bug upstairs must not break the DTLS layer
                self.stats.dropped["callback_error"] += 1
                log.exception("on_application_data raised")
            if sess.state != ESTABLISHED:
                return True
            if single:
                break
        if len(buf._output_buffer):
            # e.g. our last handshake flight, resent because the peer repeated its Finished
            self._flush(buf, sess.addr)
        return got

    def _try_rebind(self, data: bytes, addr: Addr, cands: list[DtlsSession]) -> None:
        """A record from a new port of an IP that has sessions: continue the
        session under which it authenticates (sessions follow the SIM)."""
        ip = addr[0]
        pool = [s for s in cands if s.state == ESTABLISHED]
        pool.sort(key=lambda s: s.last_activity, reverse=True)
        if self._session_for_ip is not None:
            pool = [s for s in self._session_for_ip(ip, pool) if s.state == ESTABLISHED]
        for sess in pool[: self.config.max_rebind_candidates]:
            buf = sess._buf
            buf.receive_from_network(data)
            old_addr = sess.addr
            # Decrypt under the old address first: a record that does not
            # authenticate is discarded by Mbed TLS and changes nothing.
            self._move(sess, addr)
            if self._read_records(sess):
                if sess.state != CLOSED:  # (an authentic close_notify just closes it)
                    self.stats.rebinds += 1
                    log.debug("session #%s moved %s -> %s", sess.session_id, old_addr, addr)
                return
            self._move(sess, old_addr)
        self.stats.rebind_failed += 1
        self.stats.dropped["no_session"] += 1

    def _move(self, sess: DtlsSession, addr: Addr) -> None:
        if self._by_addr.get(sess.addr) is sess:
            del self._by_addr[sess.addr]
        sess.addr = addr
        self._by_addr[addr] = sess

    # -- bookkeeping

    def _index(self, sess: DtlsSession) -> None:
        self._by_addr[sess.addr] = sess
        self._by_ip.setdefault(sess.addr[0], []).append(sess)

    def _remove(self, sess: DtlsSession, reason: str) -> None:
        if sess.state == CLOSED:
            return
        if sess._timer is not None:
            sess._timer.cancel()
            sess._timer = None
        if sess.state == HANDSHAKE:
            del self._handshaking[sess.session_id]
        else:
            self._lru.pop(sess.session_id, None)
        sess.state = CLOSED
        sess.close_reason = reason
        if self._by_addr.get(sess.addr) is sess:
            del self._by_addr[sess.addr]
        lst = self._by_ip.get(sess.addr[0])
        if lst is not None:
            try:
                lst.remove(sess)
            except ValueError:
                pass
            if not lst:
                del self._by_ip[sess.addr[0]]
        if sess.identity is not None and self._by_identity.get(sess.identity) is sess:
            del self._by_identity[sess.identity]
        sess._buf = None  # frees the Mbed TLS context
        self.stats.sessions_closed[reason] += 1
        if self._on_closed is not None:
            try:
                self._on_closed(sess, reason)
            except Exception:  # noqa: BLE001
                log.exception("on_session_closed raised")

    def _evict_lru(self) -> None:
        if self._lru:
            _, victim = next(iter(self._lru.items()))
            self._remove(victim, "evicted")

    def _start_sweeper(self) -> None:
        self._sweeper = self._get_loop().call_later(self.config.effective_sweep_interval, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        if self._closed:
            return
        now = time.monotonic()
        limit = now - self.config.idle_timeout
        lru = self._lru
        while lru:
            _, sess = next(iter(lru.items()))
            if sess.last_activity > limit:
                break
            self._remove(sess, "idle")
        self._prune_ip_buckets(now)
        if self._by_addr or self._ip_buckets or self._hvr_ip_buckets:
            self._start_sweeper()

    @staticmethod
    def _reason(exc: BaseException) -> str:
        if isinstance(exc, HelloVerifyRequest):
            return "unexpected_hello_verify"
        err = abs(getattr(exc, "err", None) or 0)
        return _ERR_REASONS.get(err, f"error_{err:04x}" if err else "error")
