"""Prometheus metrics of one gateway instance.

Each gateway owns its own ``CollectorRegistry`` (several gateways can live in one test process).
Hot-path counters are bound to their labels once, here, because ``labels()`` on every packet
costs more than the increment itself.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from inspector.committer import CommitObserver
from inspector.records import Pending

PROTOCOLS = ("UDP", "COAP", "LWM2M")


class HotCounter:
    """A counter for the per-datagram path: a plain integer, added to its Prometheus child when
    the metrics are read. ``Counter.inc`` takes a lock and costs about 1 µs; at 10,000
    datagrams/s that was 3 % of the gateway's CPU for two numbers."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.pending = 0

    def inc(self, amount: int = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, 0
            self.child.inc(pending)


class Metrics(CommitObserver):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("nce_uplink_received_total", "Datagrams/requests received, by protocol",
                                ["protocol"], registry=r)
        self.rejected = Counter("nce_uplink_rejected_total", "Uplinks refused or dropped, by protocol and reason",
                                ["protocol", "reason"], registry=r)
        self.duplicates = Counter("nce_uplink_duplicates_total",
                                  "CoAP retransmissions answered from the exchange cache", ["protocol"], registry=r)
        self.stored = Counter("nce_messages_stored_total", "Device messages committed to the store",
                              ["protocol"], registry=r)
        self.events = Counter("nce_events_stored_total", "Events committed to the store", ["type"], registry=r)
        self.commit_seconds = Histogram("nce_store_commit_seconds", "Duration of one group commit",
                                        registry=r, buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5))
        self.commit_batch = Histogram("nce_store_commit_batch_size", "Uplinks per group commit", registry=r,
                                      buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000))
        self.delivered = Counter("nce_delivery_delivered_total", "Events delivered", ["integration"], registry=r)
        self.retried = Counter("nce_delivery_retried_total", "Failed delivery attempts that will be retried",
                               ["integration"], registry=r)
        self.failed = Counter("nce_delivery_failed_total", "Events whose last attempt failed (integration disabled)",
                              ["integration"], registry=r)
        self.replayed = Counter("nce_delivery_replayed_total", "Stored events queued again by API replays",
                                ["integration"], registry=r)
        self.queue_depth = Gauge("nce_delivery_queue_depth", "Undelivered events in memory per integration",
                                 ["integration"], registry=r)
        self.delivery_latency = Histogram(
            "nce_delivery_latency_seconds", "From event creation to confirmed delivery", ["integration"],
            registry=r, buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
        self.integration_state = Gauge("nce_integration_failed", "1 while an integration is INTEGRATION_FAILED",
                                       ["integration"], registry=r)
        # webhooks: how the receiver's connections behave (keep-alive, closes under a request)
        self.webhook_connections = Counter("nce_webhook_connections_total",
                                           "Connections a webhook opened to its receiver (TCP, and TLS for https)",
                                           ["integration"], registry=r)
        self.webhook_resent = Counter("nce_webhook_resent_total",
                                      "Requests sent again on a new connection because a kept-alive one closed "
                                      "before any byte of the answer (not failed attempts)", ["integration"], registry=r)
        # AWS IoT Core over MQTT: the state of each integration's one connection
        self.aws_connected = Gauge("nce_aws_connected", "1 while the MQTT connection of an AWS integration is up",
                                   ["integration"], registry=r)
        self.aws_reconnects = Counter("nce_aws_reconnects_total", "MQTT connections made after the first one",
                                      ["integration"], registry=r)
        self.aws_connect_failures = Counter("nce_aws_connect_failures_total",
                                            "MQTT connection attempts that failed (TCP, TLS or CONNACK)",
                                            ["integration"], registry=r)
        self.aws_rate_limited = Counter("nce_aws_rate_limited_total",
                                        "Publishes that waited for the per-connection rate limit",
                                        ["integration"], registry=r)
        self.api_logins = Counter("nce_api_logins_total", "Logins at /oauth/token by outcome: ok, bad_credentials, "
                                  "throttled (over a limit, not checked), busy (check queue full)", ["outcome"],
                                  registry=r)
        # CoAP hardening: what unauthenticated traffic and block-wise uploads hold (docs/operations.md)
        self.refusals_unanswered = Counter(
            "nce_coap_refusals_unanswered_total",
            "Requests of unknown or disabled SIMs left unanswered (rate_limit, or config: answer_unauthorized = false)",
            ["reason"], registry=r)
        self.coap_exchanges = Gauge("nce_coap_exchanges", "Entries in the CoAP exchange (retransmission) cache",
                                    registry=r)
        self.block1_transfers = Gauge("nce_coap_block1_transfers", "Block-wise (Block1) uploads being reassembled",
                                      registry=r)
        self.block1_bytes = Gauge("nce_coap_block1_bytes", "Bytes held by Block1 uploads being reassembled",
                                  registry=r)
        # connectivity: RADIUS accounting from the mobile core, Disconnect-Requests to it
        self.radius_requests = Counter("nce_radius_accounting_total",
                                       "Accounting requests processed (retransmissions counted once), by status",
                                       ["status"], registry=r)
        self.radius_dropped = Counter("nce_radius_dropped_total",
                                      "Accounting datagrams dropped unanswered, by reason", ["reason"], registry=r)
        self.radius_duplicates = Counter("nce_radius_duplicates_total",
                                         "Retransmitted accounting requests (answered again, not processed again)",
                                         registry=r)
        self.radius_unknown_imsi = Counter("nce_radius_unknown_imsi_total",
                                           "Accounting requests for an IMSI of no known SIM (answered, not bound)",
                                           registry=r)
        self.disconnects = Counter("nce_radius_disconnect_total",
                                   "Disconnect-Requests sent to a NAS, by outcome (ACK, NAK, TIMEOUT, NO_SESSION)",
                                   ["result"], registry=r)
        self.quota_expired = Counter("nce_quota_expired_total",
                                     "SIMs blocked by the expiry sweep because their quota's lifetime ended",
                                     registry=r)
        self.received_by = {p: HotCounter(self.received.labels(p)) for p in PROTOCOLS}
        self.stored_by = {p: self.stored.labels(p) for p in PROTOCOLS}
        self.duplicates_by = {p: HotCounter(self.duplicates.labels(p)) for p in PROTOCOLS}
        self._hot = [*self.received_by.values(), *self.duplicates_by.values()]

    def reject(self, protocol: str, reason: str) -> None:
        self.rejected.labels(protocol, reason).inc()

    def committed(self, batch: list[Pending], seconds: float) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_batch.observe(len(batch))
        per_protocol: dict[str, int] = {}
        per_type: dict[str, int] = {}
        for pending in batch:
            if pending.message is not None:
                p = pending.message.protocol
                per_protocol[p] = per_protocol.get(p, 0) + 1
            for event in pending.events:
                per_type[event.type] = per_type.get(event.type, 0) + 1
        for p, n in per_protocol.items():
            self.stored.labels(p).inc(n)
        for t, n in per_type.items():
            self.events.labels(t).inc(n)

    def render(self) -> bytes:
        for counter in self._hot:
            counter.flush()
        return generate_latest(self.registry)
