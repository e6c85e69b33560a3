"""Configuration of the DTLS 1.2 PSK server engine."""

from __future__ import annotations

from dataclasses import dataclass

# IANA name -> Mbed TLS name, in the server's order of preference.  CCM_8 first:
# it is the suite LwM2M (and the 1NCE SDK) requires.
PSK_SUITES: dict[str, str] = {
    "TLS_PSK_WITH_AES_128_CCM_8": "TLS-PSK-WITH-AES-128-CCM-8",
    "TLS_PSK_WITH_AES_128_CCM": "TLS-PSK-WITH-AES-128-CCM",
    "TLS_PSK_WITH_AES_128_GCM_SHA256": "TLS-PSK-WITH-AES-128-GCM-SHA256",
    "TLS_PSK_WITH_AES_128_CBC_SHA256": "TLS-PSK-WITH-AES-128-CBC-SHA256",
}
_MBEDTLS_TO_IANA = {v: k for k, v in PSK_SUITES.items()}


def mbedtls_suite_names(ciphers: tuple[str, ...]) -> tuple[str, ...]:
    """Map IANA (``TLS_PSK_WITH_...``) or Mbed TLS (``TLS-PSK-WITH-...``) names
    to Mbed TLS names; only the plain-PSK suites in :data:`PSK_SUITES` are allowed."""
    out = []
    for name in ciphers:
        iana = name.replace("-", "_").upper()
        if iana not in PSK_SUITES:
            raise ValueError(
                f"cipher suite {name!r} is not one of the supported PSK suites {list(PSK_SUITES)}"
            )
        out.append(PSK_SUITES[iana])
    if not out:
        raise ValueError("at least one cipher suite is required")
    return tuple(out)


def iana_suite_name(mbedtls_name: str | None) -> str | None:
    if mbedtls_name is None:
        return None
    return _MBEDTLS_TO_IANA.get(mbedtls_name, mbedtls_name)


@dataclass(frozen=True)
class DtlsConfig:
    """Limits and timers of :class:`~gateway.transports.dtls.DtlsServer`.

    Times are in seconds.  Every limit bounds memory or CPU that a peer can make
    the gateway spend; see ``docs/dtls.md`` for the reasoning behind each default.
    """

    #: Offered cipher suites, IANA names, in order of server preference.
    ciphers: tuple[str, ...] = tuple(PSK_SUITES)
    #: First handshake retransmission timeout (RFC 6347 recommends 1 s); doubles
    #: on every retransmission.
    retransmit_min: float = 1.0
    #: Upper bound of the retransmission timeout; Mbed TLS gives the handshake up
    #: when the doubled timeout would exceed it.
    retransmit_max: float = 16.0
    #: Hard limit on the life of a half-open handshake, whatever the peer does.
    handshake_timeout: float = 30.0
    #: Half-open handshakes (cookie verified, not finished) held at once,
    #: globally; at the limit the oldest one is dropped for the new one.
    max_half_open: int = 500
    #: Cookie-verified handshakes a single source IP may start per second
    #: (token bucket, burst = max(1, this value)).
    handshakes_per_ip_per_second: float = 10.0
    #: Global budget of HelloVerifyRequests sent per second (CPU guard against
    #: ClientHello floods; a HelloVerifyRequest is never larger than the
    #: ClientHello, so there is no amplification either way).
    hello_verify_per_second: float = 20_000.0
    #: HelloVerifyRequests per second to one source (an IPv4 address or an
    #: IPv6 /64), checked before the global budget so that one flooding
    #: source cannot use it up and delay everyone's handshakes (None: three
    #: times ``handshakes_per_ip_per_second``, at least 30).
    hello_verify_per_ip_per_second: float | None = None
    #: An established session with no authenticated record from the peer for
    #: this long is dropped (silently, no close_notify).
    idle_timeout: float = 600.0
    #: Established sessions (~50 KiB each).  A handshake that completes at the
    #: limit evicts the least recently active session.  Memory is bounded by
    #: (max_sessions + max_half_open) contexts.
    max_sessions: int = 10_000
    #: A completed handshake closes older sessions with the same PSK identity
    #: (a SIM has one session; the old one belongs to a rebooted firmware).
    one_session_per_identity: bool = True
    #: Sessions of the same source IP tried (most recently active first) when a
    #: record arrives from a new port of that IP ("sessions follow the SIM").
    max_rebind_candidates: int = 4
    #: Records are packed into datagrams of at most this size on the way out.
    max_datagram_out: int = 1400
    #: Larger incoming datagrams are dropped before any parsing.
    max_datagram_in: int = 16 * 1024 + 256
    #: Size of the source-IP table used by the per-IP handshake limit.
    max_tracked_ips: int = 65_536
    #: How often idle sessions and stale rate-limit entries are swept
    #: (None: derived from idle_timeout, at most every 5 s).
    sweep_interval: float | None = None
    #: DTLS anti-replay window (RFC 6347 §4.1.2.6); leave on.
    anti_replay: bool = True
    #: Failed handshakes logged per second at most (burst: ten times this); the
    #: rest are counted and summed up in the next line logged (a flood of bad
    #: handshakes cannot fill the disk).  0: never logged, only counted.
    failure_logs_per_second: float = 2.0

    def __post_init__(self) -> None:
        mbedtls_suite_names(self.ciphers)  # validates
        if not 0 < self.retransmit_min <= self.retransmit_max:
            raise ValueError("need 0 < retransmit_min <= retransmit_max")
        if self.handshake_timeout <= 0 or self.idle_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_half_open < 1 or self.max_sessions < 1:
            raise ValueError("max_half_open and max_sessions must be >= 1")
        if self.handshakes_per_ip_per_second <= 0 or self.hello_verify_per_second <= 0:
            raise ValueError("rates must be positive")
        if self.hello_verify_per_ip_per_second is not None and self.hello_verify_per_ip_per_second <= 0:
            raise ValueError("hello_verify_per_ip_per_second must be positive")
        if self.failure_logs_per_second < 0:
            raise ValueError("failure_logs_per_second must be >= 0")
        if self.max_datagram_out < 256:
            raise ValueError("max_datagram_out too small")

    @property
    def mbedtls_ciphers(self) -> tuple[str, ...]:
        return mbedtls_suite_names(self.ciphers)

    @property
    def effective_hello_verify_per_ip(self) -> float:
        if self.hello_verify_per_ip_per_second is not None:
            return self.hello_verify_per_ip_per_second
        return max(30.0, 3.0 * self.handshakes_per_ip_per_second)

    @property
    def effective_sweep_interval(self) -> float:
        if self.sweep_interval is not None:
            return self.sweep_interval
        return max(0.05, min(self.idle_timeout / 4.0, 5.0))
