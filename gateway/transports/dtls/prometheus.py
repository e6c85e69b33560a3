"""The DTLS engine's counters on ``/metrics`` (read when scraped, so the hot path pays nothing).

Names follow docs/dtls.md: ``nce_dtls_handshakes_{started,completed}_total``,
``nce_dtls_handshakes_failed_total{reason}``, ``nce_dtls_cookie_exchanges_total`` (HelloVerifyRequests
sent), ``nce_dtls_sessions_closed_total{reason}`` (``evicted``, ``idle``, ``superseded``, ...),
``nce_dtls_dropped_total{reason}`` and the gauges ``nce_dtls_sessions`` / ``nce_dtls_half_open``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_COUNTERS = (
    ("handshakes_started", "handshakes_started", "DTLS handshakes started (cookie verified)"),
    ("handshakes_ok", "handshakes_completed", "DTLS handshakes completed"),
    ("hello_verify_sent", "cookie_exchanges", "HelloVerifyRequests sent (stateless cookie exchanges)"),
    ("retransmissions", "retransmissions", "Handshake flights retransmitted by the server"),
    ("rebinds", "rebinds", "Sessions continued from a new source port of the same IP"),
    ("resets", "resets", "Sessions replaced by a cookie-verified new handshake from the same address"),
    ("datagrams_in", "datagrams_received", "Datagrams received on the DTLS port"),
    ("datagrams_out", "datagrams_sent", "Datagrams sent from the DTLS port"),
    ("records_in", "records_received", "Application-data records decrypted"),
    ("records_out", "records_sent", "Application-data records sent"),
)
_BY_REASON = (
    ("handshakes_failed", "handshakes_failed", "DTLS handshakes that failed, by reason"),
    ("sessions_closed", "sessions_closed", "DTLS sessions closed, by reason (evicted, idle, superseded, ...)"),
    ("dropped", "dropped", "Datagrams dropped before or instead of Mbed TLS, by reason"),
)


class DtlsCollector:
    """A Prometheus collector over the engine returned by ``engine()`` (None: CoAPs is off,
    nothing is exported)."""

    def __init__(self, engine: Callable[[], Any]) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Any]:
        server = self._engine()
        if server is None:
            return
        stats = server.stats
        yield GaugeMetricFamily("nce_dtls_sessions", "Established DTLS sessions", value=server.session_count)
        yield GaugeMetricFamily("nce_dtls_half_open", "Cookie-verified DTLS handshakes not finished yet",
                                value=server.half_open_count)
        for attr, name, text in _COUNTERS:
            yield CounterMetricFamily(f"nce_dtls_{name}", text, value=getattr(stats, attr))
        for attr, name, text in _BY_REASON:
            family = CounterMetricFamily(f"nce_dtls_{name}", text, labels=["reason"])
            for reason, value in sorted(getattr(stats, attr).items()):
                family.add_metric([reason], value)
            yield family
