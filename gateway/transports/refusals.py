"""Refusing the datagrams of unknown or disabled SIMs without paying for them.

Anyone can send a datagram with any source address, so this path is built so that a flood
costs no memory per datagram and cannot use the gateway as a reflector:

* nothing past the header and token is read (no option or payload decoder runs for a sender
  that is not a known, enabled SIM), except a bounded peek at the first Uri-Path segment
  (``coap_wire.peek_first_path``: at most four option headers, nothing copied but that segment)
  so that a refused LwM2M request is counted under ``protocol="LWM2M"``;
* nothing of a refused request is kept except a bounded set of recent (source, message ID,
  token), so a retransmission is counted once in ``nce_uplink_rejected_total``;
* the answer is a bare ``4.01 Unauthorized`` (piggybacked on the ACK of a CON, a NON for a NON):
  the request's own header and token, no diagnostic payload, so never longer than the request;
* answers are rate-limited per source address (token bucket, bounded table) and in total, and
  ``coap.answer_unauthorized = false`` sends none at all. What was not answered is counted in
  ``nce_coap_refusals_unanswered_total{reason}``.
"""

from __future__ import annotations

import time
from typing import Any

from ..metrics import Metrics
from . import coap_wire as wire
from .limits import RateTable, RecentKeys

BURST_PER_SOURCE = 5.0  # answers a source may get at once (a CON and its retransmissions)
MAX_SOURCES = 4096  # source addresses with a bucket
MAX_RECENT = 4096  # refusals remembered to count a retransmission once


class Refusals:
    def __init__(self, metrics: Metrics, next_mid: Any, *, answer: bool = True,
                 per_source_per_second: float = 1.0, per_second: float = 200.0,
                 lifetime: float = 247.0, path_protocols: dict[bytes, str] | None = None) -> None:
        self.metrics = metrics
        self.path_protocols = path_protocols if path_protocols is not None else {}
        self.next_mid = next_mid
        self.answer = answer
        self.per_source = RateTable(per_source_per_second, BURST_PER_SOURCE, MAX_SOURCES)
        self.total = RateTable(per_second, max(1.0, per_second), 1)
        self.recent = RecentKeys(lifetime, MAX_RECENT)
        self._received = metrics.received_by["COAP"]
        self._unanswered = {reason: metrics.refusals_unanswered.labels(reason) for reason in ("config", "rate_limit")}

    def refuse(self, link: Any, data: bytes) -> None:
        """A datagram from ``link``, which is no enabled SIM: count it, maybe answer it."""
        head = wire.peek_request(data)
        if head is None:
            self.metrics.reject("COAP", "malformed")
            return
        mtype, code, mid, token = head
        is_request = 0 < code < 64
        if is_request:
            self._received.inc()
        now = time.monotonic()
        address = link.address
        # a retransmission is counted once; the key is a hash so an entry holds no datagram's objects
        if not self.recent.seen(hash((address, mid, token)), now):
            protocol = "COAP"
            if self.path_protocols and is_request:
                protocol = self.path_protocols.get(wire.peek_first_path(data) or b"", "COAP")
            self.metrics.reject(protocol, link.refusal_reason())
        if not is_request or code >= 32 or mtype > wire.NON:
            return  # empty messages, responses, reserved codes, ACK/RST: nothing to answer
        if not self.answer:
            self._unanswered["config"].inc()
            return
        if not (self.per_source.take(address[0], now) and self.total.take(None, now)):
            self._unanswered["rate_limit"].inc()
            return
        if mtype == wire.CON:
            link.send(wire.response(wire.ACK, wire.UNAUTHORIZED, mid, token))
        else:
            link.send(wire.response(wire.NON, wire.UNAUTHORIZED, self.next_mid(), token))
