"""gateway/worker_metrics.py: /metrics of several workers as one exposition, each series with its
worker; a worker that did not answer is left out and shown as not scraped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from gateway.worker_metrics import render


def worker_text(received: float, restarts: int, worker: int) -> bytes:
    registry = CollectorRegistry()
    counter = Counter("nce_uplink_received", "Uplinks received", ["protocol"], registry=registry)
    counter.labels("COAP").inc(received)
    Gauge("nce_worker_restarts", "Restarts of this worker's slot", ["worker"], registry=registry).labels(
        str(worker)).set(restarts)
    return generate_latest(registry)


def samples(text: bytes, name: str) -> list[str]:
    return [line for line in text.decode().splitlines() if line.startswith(name + "{")]


def test_every_workers_series_with_its_worker_label():
    text = render({0: worker_text(5, 0, 0), 1: worker_text(7, 2, 1)}, 2)
    assert samples(text, "nce_uplink_received_total") == [
        'nce_uplink_received_total{protocol="COAP",worker="0"} 5.0',
        'nce_uplink_received_total{protocol="COAP",worker="1"} 7.0']
    assert samples(text, "nce_worker_restarts") == [  # named its worker already: kept, not doubled
        'nce_worker_restarts{worker="0"} 0.0', 'nce_worker_restarts{worker="1"} 2.0']
    assert samples(text, "nce_worker_scrape_up") == [
        'nce_worker_scrape_up{worker="0"} 1.0', 'nce_worker_scrape_up{worker="1"} 1.0']
    assert text.decode().count("# TYPE nce_uplink_received_total counter") == 1  # one family, both workers


def test_a_worker_that_did_not_answer_is_left_out_and_shown():
    text = render({1: worker_text(7, 0, 1)}, 3)
    assert samples(text, "nce_uplink_received_total") == ['nce_uplink_received_total{protocol="COAP",worker="1"} 7.0']
    assert samples(text, "nce_worker_scrape_up") == [
        'nce_worker_scrape_up{worker="0"} 0.0', 'nce_worker_scrape_up{worker="1"} 1.0',
        'nce_worker_scrape_up{worker="2"} 0.0']
