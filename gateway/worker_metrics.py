"""``GET /metrics`` of a gateway with several workers: every worker's series, labelled ``worker``.

A scrape reaches whichever worker accepts it first (one shared API socket, gateway/supervisor.py).
If it showed only that worker's counters they would jump between scrapes, and Prometheus would
take every jump down for a restart. So the worker that answers asks the others for their text
over their control sockets (gateway/control.py) and answers with all of them, each series with
a ``worker`` label (``sum without (worker)`` gives the gateway's total). A worker that does not
answer within the deadline (being restarted) is left out of that answer, and
``nce_worker_scrape_up{worker}`` is 0 for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from prometheus_client import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from .control import worker_metrics
from .workers import WorkerSlot


async def combined(own: bytes, slot: WorkerSlot, store_identity: str) -> bytes:
    """This worker's text (``own``) and the other workers' of ``slot.count``, as one exposition."""
    others = [k for k in range(slot.count) if k != slot.index]
    answers = await asyncio.gather(*(worker_metrics(store_identity, k) for k in others))
    texts = {slot.index: own, **{k: text for k, text in zip(others, answers) if text is not None}}
    return render(texts, slot.count)


def render(texts: dict[int, bytes], count: int) -> bytes:
    """One exposition of the workers' texts (worker index -> Prometheus text)."""
    families: dict[str, Metric] = {}
    for worker, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text.decode("utf-8")):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type,
                                                        family.unit)
            for sample in family.samples:  # a series that names its worker already keeps it
                labels = sample.labels if "worker" in sample.labels else {"worker": str(worker), **sample.labels}
                merged.samples.append(sample._replace(labels=labels))
    up = GaugeMetricFamily("nce_worker_scrape_up", "1 when the worker's series are in this answer of /metrics",
                           labels=["worker"])
    for worker in range(count):
        up.add_metric([str(worker)], 1.0 if worker in texts else 0.0)
    return generate_latest(_Families([*families.values(), up]))  # type: ignore[arg-type]


class _Families:
    """What ``generate_latest`` needs of a registry: ``collect()``."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families
